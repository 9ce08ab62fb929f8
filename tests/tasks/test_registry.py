"""The task registry: built-in tasks by name, a user's own Task, and its sections typed at load."""

from dataclasses import dataclass

import pytest

from condflow._checks import PositiveInt
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
