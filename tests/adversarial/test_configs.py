"""Configs: every field typed and range-checked at load, the full dotted key in the message."""

from __future__ import annotations

import dataclasses

import pytest

from condflow._checks import PositiveInt
from condflow.config import Config, TrainConfig, from_dict, validate
from condflow.tasks import load_config, task_for

BAD_OVERRIDES = [
    ("train.batch_size=-8", r"train\.batch_size: expected an integer >= 1, got -8"),
    ("train.batch_size=0", r"train\.batch_size: expected an integer >= 1, got 0"),
    ("train.batch_size=2.5", r"train\.batch_size: expected int, got 2\.5"),
    ("train.batch_size=true", r"train\.batch_size: expected int, got True"),
    ("train.batch_size=many", r"train\.batch_size: expected int, got 'many'"),
    ("train.steps=0", r"train\.steps: expected an integer >= 1, got 0"),
    ("train.steps=-1", r"train\.steps: expected an integer >= 1, got -1"),
    ("train.steps=1.5", r"train\.steps: expected int, got 1\.5"),
    ("train.steps=[1]", r"train\.steps: expected int, got \[1\]"),
    ("train.steps=null", r"train\.steps: expected int, got None"),
    ("train.lr=0", r"train\.lr: expected a number > 0, got 0\.0"),
    ("train.lr=-1e-3", r"train\.lr: expected a number > 0, got -0\.001"),
    ("train.lr=.nan", r"train\.lr: expected a finite float, got nan"),
    ("train.lr=.inf", r"train\.lr: expected a finite float, got inf"),
    ("train.lr=fast", r"train\.lr: expected float, got 'fast'"),
    ("train.weight_decay=-0.1", r"train\.weight_decay: expected a number >= 0"),
    ("train.schedule=linear", r"train\.schedule: expected one of \['cosine', 'constant'\]"),
    ("train.warmup_steps=-1", r"train\.warmup_steps: expected an integer >= 0"),
    ("train.grad_clip=-1", r"train\.grad_clip: expected a number >= 0"),
    ("train.log_every=0", r"train\.log_every: expected an integer >= 1"),
    ("train.checkpoint_every=0", r"train\.checkpoint_every: expected an integer >= 1"),
    ("train.num_workers=-2", r"train\.num_workers: expected an integer >= 0"),
    ("train.device=gpu", r"train\.device: expected 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'"),
    ("train.device=7", r"train\.device: expected str, got 7"),
    ("train.threads=-1", r"train\.threads: expected an integer >= 0"),
    ("train.stpes=3", r"train: unknown key\(s\) \['stpes'\]"),
    ("seed=-1", r"^seed: expected an integer >= 0"),
    ("output_dir=''", r"^output_dir: expected a non-empty string"),
    ("output_dir=3", r"^output_dir: expected str, got 3"),
    ("data.train_size=0", r"data\.train_size: expected an integer >= 1, got 0"),
    ("data.train_size=100.5", r"data\.train_size: expected int, got 100\.5"),
    ("data.test_size=-5", r"data\.test_size: expected an integer >= 1"),
    ("data.source=coco", r"data\.source: expected a registered data source "
                         r"\('synthetic_lifting', 'synthetic_lifting_smpl', 'h36m'"),
    ("data.h36m_stride=2", r"data: unknown key\(s\) \['h36m_stride'\]"),
    ("data.synthetic.joint_dropout=1.5", r"data\.synthetic\.joint_dropout: expected a number "
                                         r">= 0 and <= 1"),
    ("data.synthetic.noise_px=-1", r"data\.synthetic\.noise_px: expected a number >= 0"),
    ("data.synthetic.elevation_deg=[1]", r"data\.synthetic\.elevation_deg: expected 2 values"),
    ("data.synthetic.image_size=0", r"data\.synthetic\.image_size: expected an integer >= 1"),
    ("model.flow_hidden=0", r"model\.flow_hidden: expected an integer >= 1, got 0"),
    ("model.flow_hidden=-16", r"model\.flow_hidden: expected an integer >= 1"),
    ("model.flow_hidden=16.5", r"model\.flow_hidden: expected int, got 16\.5"),
    ("model.encoder.hidden=0", r"model\.encoder\.hidden: expected an integer >= 1"),
    ("model.encoder.kind=mlp", r"model\.encoder\.kind: expected a registered encoder"),
    ("model.space.layout=coco", r"model\.space\.layout: expected one of"),
    ("model.flow_blocks=0", r"model\.flow_blocks: expected an integer >= 1"),
    ("model.flow_dropout=1.5", r"model\.flow_dropout: expected a number >= 0 and <= 1"),
    ("model.kind=gan", r"model\.kind: expected one of \['flow', 'regression'\]"),
    ("model.batch_norm=yes please", r"model\.batch_norm: expected bool"),
    ("model.batch_norm=1", r"model\.batch_norm: expected bool"),
    ("loss.nll=-1", r"loss\.nll: expected a number >= 0"),
    ("eval.num_samples=[1, 0]", r"eval\.num_samples\[1\]: expected an integer >= 1, got 0"),
    ("eval.batch_size=0", r"eval\.batch_size: expected an integer >= 1"),
    ("train=5", r"^train: expected a mapping, got int 5"),
    ("train.steps.deep=1", r"--set train\.steps\.deep: train\.steps is 2000, not a section"),
    ("train.warmup_steps.deep=1", r"train\.warmup_steps: expected int, got \{'deep': 1\}"),
    ("train..steps=1", r"--set: expected KEY=VALUE with a dotted key"),
    ("train.steps", r"--set: expected KEY=VALUE"),
    ("train.lr=[unclosed", r"--set train\.lr: invalid YAML"),
]


@pytest.mark.parametrize("override, match", BAD_OVERRIDES, ids=[o for o, _ in BAD_OVERRIDES])
def test_bad_override_names_the_key(override, match):
    with pytest.raises(ValueError, match=match):
        task_for(load_config("lifting", [override])).build_model()


H36M_BAD = [
    ("data.h36m_stride=0", r"data\.h36m_stride: expected an integer >= 1"),
    ("data.h36m_train_subjects=S1", r"data\.h36m_train_subjects: expected a list"),
    ("data.h36m_train_subjects=[1]", r"data\.h36m_train_subjects\[0\]: expected str, got 1"),
    ("data.train_size=10", r"data: unknown key\(s\) \['train_size'\]"),
]


@pytest.mark.parametrize("override, match", H36M_BAD, ids=[o for o, _ in H36M_BAD])
def test_bad_h36m_override_names_the_key(override, match):
    with pytest.raises(ValueError, match=match):
        load_config("lifting_h36m", [override])


MESH_BAD = [
    ("data.source=coco", r"data\.source: expected a registered data source"),
    ("data.res=0", r"data\.res: expected an integer >= 1"),
    ("data.augmentation.flip_prob=2", r"data\.augmentation\.flip_prob: expected a number >= 0 "
                                      r"and <= 1"),
    ("data.synthetic.size=0", r"data\.synthetic\.size: expected an integer >= 1"),
    ("model.encoder.context_features=0", r"model\.encoder\.context_features: expected an "
                                         r"integer >= 1"),
    ("model.space.focal_length=0", r"model\.space\.focal_length: expected"),
    ("loss.keypoint_loss=l3", r"loss\.keypoint_loss: expected one of \['l1', 'l2'\]"),
    ("loss.disc_lr=0", r"loss\.disc_lr: expected a number > 0"),
]


@pytest.mark.parametrize("override, match", MESH_BAD, ids=[o for o, _ in MESH_BAD])
def test_bad_mesh_override_names_the_key(override, match):
    with pytest.raises(ValueError, match=match):
        load_config("mesh_recovery", [override])


GOOD = [
    ("train.lr=1e-3", lambda c: c.train.lr == 1e-3 and isinstance(c.train.lr, float)),
    ("train.lr=5E-4", lambda c: c.train.lr == 5e-4),
    ("train.lr=2", lambda c: c.train.lr == 2.0 and isinstance(c.train.lr, float)),
    ("train.weight_decay=1.5e-2", lambda c: c.train.weight_decay == 0.015),
    ("train.steps=1e4", lambda c: c.train.steps == 10000 and isinstance(c.train.steps, int)),
    ("train.device=cuda:1", lambda c: c.train.device == "cuda:1"),
    ("model.flow_dropout=1e-1", lambda c: c.model.flow_dropout == 0.1),
]


@pytest.mark.parametrize("override, check", GOOD, ids=[o for o, _ in GOOD])
def test_good_override_is_read_with_its_type(override, check):
    assert check(load_config({"task": "lifting"}, [override]))


def test_e_notation_in_a_yaml_file(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("task: lifting\ntrain:\n  lr: 3e-4\n  weight_decay: 1E-5\n")
    cfg = load_config(path)
    assert cfg.train.lr == 3e-4 and cfg.train.weight_decay == 1e-5


YAML_FILES = [
    ("task: lifting\ntrain: [1, 2\n", r"config: .*c\.yaml: invalid YAML"),
    ("just a string\n", r"config: .*c\.yaml must hold a mapping of keys.*got str"),
    ("42\n", r"config: .*c\.yaml must hold a mapping of keys.*got int"),
    ("- task: lifting\n", r"config: .*c\.yaml must hold a mapping of keys.*got list"),
    ("train:\n  steps: 3\n", r"data\.source: missing"),
    ("task: [lifting]\n", r"^task: \['lifting'\] is not a configuration any more"),
    ("task: lifting\ntrain: 3\n", r"^train: expected a mapping"),
    ("task: lifting\n\tsteps: 3\n", r"config: .*c\.yaml: invalid YAML"),
]


@pytest.mark.parametrize("text, match", YAML_FILES)
def test_bad_yaml_file_is_named(tmp_path, text, match):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match=match):
        load_config(path)


def test_binary_config_file_is_named(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ValueError, match=r"config: .*c\.yaml is not a text file"):
        load_config(path)


def test_overrides_do_not_write_into_the_callers_dict():
    raw = {"task": "lifting", "train": {"steps": 3}}
    load_config(raw, ["train.steps=5"])
    assert raw == {"task": "lifting", "train": {"steps": 3}}


@pytest.mark.parametrize("field, value, match", [
    ("batch_size", -8, r"train\.batch_size: expected an integer >= 1, got -8"),
    ("steps", 0, r"train\.steps: expected an integer >= 1"),
    ("schedule", "linear", r"train\.schedule: expected one of"),
])
def test_a_config_built_in_python_is_validated_too(field, value, match):
    cfg = load_config({"task": "lifting"})
    cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, **{field: value}))
    with pytest.raises(ValueError, match=match):
        validate(cfg)


@dataclasses.dataclass
class NewSection:
    width: PositiveInt = 4
    ratio: float = 0.5


def test_override_below_a_value_is_refused():
    with pytest.raises(ValueError, match=r"--set train\.steps\.deep: train\.steps is 5, not a "
                                         "section"):
        load_config({"task": "lifting"}, ["train.steps=5", "train.steps.deep=1"])


def test_a_section_added_later_is_validated_from_its_annotations():
    """The mechanism is generic: a new dataclass field is checked with no code in config.py."""
    with pytest.raises(ValueError, match=r"extra\.width: expected an integer >= 1, got 0"):
        from_dict(NewSection, {"width": 0}, "extra")
    with pytest.raises(ValueError, match=r"extra\.ratio: expected float, got '1e-3x'"):
        from_dict(NewSection, {"ratio": "1e-3x"}, "extra")
    assert from_dict(NewSection, {"ratio": 1}, "extra").ratio == 1.0


def test_train_refuses_an_invalid_python_config_before_looping(tmp_path):
    from condflow.train import train

    cfg = load_config({"task": "lifting", "output_dir": str(tmp_path / "r")})
    cfg.train = TrainConfig(batch_size=-8)
    with pytest.raises(ValueError, match=r"train\.batch_size: expected an integer >= 1"):
        train(cfg, progress=False)
    assert isinstance(cfg, Config)
