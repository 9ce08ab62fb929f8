"""The task registry: built-in tasks by name, a user's own Task, and its sections typed at load."""

from dataclasses import dataclass

import pytest
from torch import nn

from condflow._checks import PositiveInt
from condflow.saving import load_head, load_with_config, save
from condflow.tasks import LiftingTask, MeshTask, Task, get_task, load_config, register_task
from condflow.tasks import base as task_base


@dataclass
class ToyModel:
    width: PositiveInt = 4


@dataclass
class Empty:
    pass


class ToyTask(Task):
    name = "toy"
    data_config = Empty
    model_config = ToyModel
    loss_config = Empty
    eval_config = Empty


@pytest.fixture
def registry(monkeypatch):
    monkeypatch.setattr(task_base, "_TASKS", dict(task_base._TASKS))


def test_built_in_tasks_are_registered():
    assert get_task("lifting") is LiftingTask and get_task("mesh") is MeshTask


def test_a_user_task_is_loaded_with_its_own_sections(registry):
    assert register_task(ToyTask) is ToyTask
    cfg = load_config({"task": "toy", "model": {"width": 7}}, ["train.steps=5"])
    assert isinstance(cfg.model, ToyModel) and cfg.model.width == 7 and cfg.train.steps == 5
    with pytest.raises(ValueError, match=r"model\.width"):
        load_config({"task": "toy", "model": {"width": 0}})
    with pytest.raises(ValueError, match=r"model: unknown key\(s\) \['depth'\]"):
        load_config({"task": "toy", "model": {"depth": 1}})


def test_unknown_task_names_the_known_ones():
    with pytest.raises(ValueError, match=r"task: unknown task 'toy'; expected one of .*'lifting'"):
        load_config({"task": "toy"})


def test_register_task_refuses_what_is_not_a_named_task(registry):
    with pytest.raises(TypeError, match="expected a Task subclass"):
        register_task(ToyModel)

    class Nameless(Task):
        pass

    with pytest.raises(ValueError, match=r"Nameless\.name"):
        register_task(Nameless)


class LinearTask(ToyTask):
    name = "linear"

    def build_model(self, train_data=None):
        return nn.Linear(self.cfg.model.width, 1)


def test_the_commands_refuse_a_saved_model_that_is_not_a_head(registry, tmp_path):
    register_task(LinearTask)
    cfg = load_config({"task": "linear", "model": {"width": 3}})
    path = save(nn.Linear(3, 1), tmp_path / "linear.pt", cfg)
    assert isinstance(load_with_config(path)[1], nn.Linear)
    with pytest.raises(ValueError, match=r"linear\.pt: its config builds a Linear, not a "
                                         r"condflow head"):
        load_head(path)
