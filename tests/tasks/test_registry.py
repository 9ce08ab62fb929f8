"""A config's parts: built-in families, sections typed by the parts they name, impossible
pairs refused naming the key, old ``task:`` configs read as parts, and a user's own family."""

import dataclasses
import warnings
from dataclasses import dataclass

import pytest
from torch import nn

from condflow import register_space
from condflow.config import config_to_dict
from condflow.data.sources import SyntheticImagesSource, SyntheticLiftingSource
from condflow.encoders.registry import MLPLifterSettings, SmallCNNSettings
from condflow.saving import load_head, load_with_config, save
from condflow.spaces import SkeletonSpace
from condflow.spaces.registry import SPACES
from condflow.tasks import (
    JointsTask,
    SMPLTask,
    Task,
    get_task,
    load_config,
    register_task,
    task_for,
)
from condflow.tasks import base as task_base

LIFTING = {"data": {"source": "synthetic_lifting"},
           "model": {"encoder": "mlp_lifter", "space": {"kind": "skeleton"}}}


def parts(data=None, encoder="mlp_lifter", space="skeleton", **model):
    return {"data": {"source": "synthetic_lifting", **(data or {})},
            "model": {"encoder": encoder, "space": space, **model}}


def test_the_space_chooses_the_family_and_every_section_is_typed():
    assert get_task("joints") is JointsTask and get_task("smpl") is SMPLTask
    cfg = load_config(parts(encoder={"kind": "mlp_lifter", "hidden": 64}), ["train.steps=5"])
    assert isinstance(task_for(cfg), JointsTask)
    assert isinstance(cfg.data, SyntheticLiftingSource) and cfg.data.source == "synthetic_lifting"
    assert isinstance(cfg.model.encoder, MLPLifterSettings) and cfg.model.encoder.hidden == 64
    assert cfg.model.encoder.kind == "mlp_lifter" and cfg.train.steps == 5
    image = load_config({"data": {"source": "synthetic_images"},
                         "model": {"encoder": "small_cnn", "space": "smpl_6d"}})
    assert isinstance(task_for(image), SMPLTask) and isinstance(image.data, SyntheticImagesSource)
    assert isinstance(image.model.encoder, SmallCNNSettings)
    # written back as read: {kind: ..., settings}; loading that gives the same config
    again = load_config(config_to_dict(cfg))
    assert config_to_dict(again) == config_to_dict(cfg)
    assert config_to_dict(cfg)["model"]["encoder"]["kind"] == "mlp_lifter"


@pytest.mark.parametrize("raw, message", [
    (parts(encoder="small_cnn"),
     r"model.encoder.kind: 'small_cnn' reads images, but data.source 'synthetic_lifting' gives "
     r"keypoints_2d \[16, 3\]"),
    (parts(space="smpl_6d"),
     r"data.source: 'synthetic_lifting' does not give \[.*'betas'.*\], which model.space "
     r"'smpl_6d' is trained on"),
    (parts(encoder="mlp_lifterr"), r"model.encoder.kind: expected a registered encoder"),
    (parts(space={"kind": "skeleton", "layout": "h36m_18"}), r"model.space.layout"),
    (parts(space={"kind": "skeleton", "depth": 1}),
     r"model.space: unknown key\(s\) \['depth'\]"),
    (parts(data={"source": "synthetic_liftin"}), r"data.source: expected a registered data "
                                                 r"source \('synthetic_lifting'"),
    (parts(data={"res": 64}), r"data: unknown key\(s\) \['res'\]"),
    (parts(flow_hiden=8), r"model: unknown key\(s\) \['flow_hiden'\]"),
    ({"model": LIFTING["model"]}, r"data.source: missing"),
    ({"data": LIFTING["data"], "model": {"encoder": "mlp_lifter"}}, r"model: needs 'encoder' "
                                                                    r"and 'space'"),
    (parts(space={"layout": "h36m_17"}), r"model.space.kind: missing"),
    ({**LIFTING, "task": "toy"}, r"task: 'toy' is not a configuration any more"),
])
def test_impossible_configs_name_the_key(raw, message):
    with pytest.raises(ValueError, match=message):
        task_for(load_config(raw)).build_model()


def test_old_task_configs_are_read_as_their_parts():
    with pytest.warns(DeprecationWarning, match="task: lifting is read as its parts"):
        old = load_config({"task": "lifting", "model": {"lifter_hidden": 64, "flow_blocks": 2},
                           "data": {"train_size": 10, "h36m_stride": 1}})
    new = load_config(parts(data={"train_size": 10}, flow_hidden=256, flow_blocks=2,
                            encoder={"kind": "mlp_lifter", "hidden": 64},
                            space={"kind": "skeleton", "layout": "h36m_17"}))
    assert config_to_dict(old) == config_to_dict(new)
    with pytest.warns(DeprecationWarning):
        mesh = load_config({"task": "mesh", "data": {"res": 32},
                            "model": {"cnn_width": 8, "pretrained": None, "focal_length": 2240.0,
                                      "point_hidden": 16}})
    assert mesh.data.source == "synthetic_images" and mesh.model.encoder.width == 8
    assert mesh.model.space.point_hidden == 16 and mesh.eval.batch_size == 50
    assert mesh.model.space.focal_length == pytest.approx(2240.0 * 32 / 224)  # px at 32 px
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_config(config_to_dict(mesh))  # what a new checkpoint stores is not old


@dataclass
class Empty:
    pass


class LinearTask(Task):
    name = "linear"
    loss_config = Empty

    def build_model(self, train_data=None):
        return nn.Linear(3, 1)


@pytest.fixture
def registries(monkeypatch):
    monkeypatch.setattr(task_base, "_TASKS", dict(task_base._TASKS))
    monkeypatch.setattr(SPACES, "_entries", dict(SPACES._entries))


def test_register_task_refuses_what_is_not_a_named_task(registries):
    with pytest.raises(TypeError, match="expected a Task subclass"):
        register_task(Empty)

    class Nameless(Task):
        pass

    with pytest.raises(ValueError, match=r"Nameless\.name"):
        register_task(Nameless)


def test_a_users_family_and_the_commands_refuse_a_model_that_is_not_a_head(registries,
                                                                           tmp_path):
    register_task(LinearTask)
    register_space("line", Empty, lambda s: SkeletonSpace(), family="linear")
    cfg = load_config(parts(space="line"))
    assert isinstance(cfg.loss, Empty) and isinstance(task_for(cfg), LinearTask)
    path = save(nn.Linear(3, 1), tmp_path / "linear.pt", cfg)
    assert isinstance(load_with_config(path)[1], nn.Linear)
    with pytest.raises(ValueError, match=r"linear\.pt: its config builds a Linear, not a "
                                         r"condflow head"):
        load_head(path)
    register_space("orphan", Empty, lambda s: SkeletonSpace(), family="nobody")
    with pytest.raises(ValueError, match=r"family: no task for 'nobody'"):
        load_config(parts(space="orphan"))
    assert dataclasses.is_dataclass(cfg.model)
