"""What a task supplies to the shared training loop and evaluation; the registry of tasks by
name, and loading a run's config through the task it names."""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from condflow.config import Config, apply_overrides, from_dict, read_config
from condflow.losses.objective import Objective

__all__ = ["Task", "get_task", "load_config", "register_task", "to_device"]

#: The kind of model a task builds (every method that takes a model takes this kind).
M = TypeVar("M", bound=nn.Module)


class Task(Generic[M]):
    """A task plugs data, a model and an objective into :func:`condflow.train.train`.

    Subclasses set ``name``, the dataclasses of their config sections, and implement the
    methods below. The model is any ``nn.Module`` (``Task[M]``: a task of models ``M``); the
    objective an
    :class:`~condflow.losses.objective.Objective` (losses, and any state of its own that the
    loop checkpoints and updates after each step).
    """

    name: ClassVar[str]
    #: ``--set``-style overrides that make a run tiny for ``--fast-dev-run`` (small data, few
    #: evaluation samples); the loop's own (steps, logging, output folder) are added to them.
    fast_dev_run: ClassVar[tuple[str, ...]] = ()
    data_config: ClassVar[type]
    model_config: ClassVar[type]
    loss_config: ClassVar[type]
    eval_config: ClassVar[type]

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg

    @classmethod
    def config_types(cls) -> dict[str, type]:
        return {
            "data": cls.data_config,
            "model": cls.model_config,
            "loss": cls.loss_config,
            "eval": cls.eval_config,
        }

    def build_model(self, train_data: Dataset | None = None) -> M:
        """The model; ``train_data`` (when given) supplies normalization statistics."""
        raise NotImplementedError

    def datasets(self) -> tuple[Dataset, Dataset]:
        """``(train, test)`` datasets yielding dicts of tensors."""
        raise NotImplementedError

    def objective(self, model: M) -> Objective:
        """The training objective of ``model``."""
        raise NotImplementedError

    def evaluate(self, model: M, data: Dataset, device: torch.device) -> dict[str, Any]:
        """Metrics on ``data`` as a flat dict of numbers (and lists)."""
        raise NotImplementedError

    def picture(self, model: M, data: Dataset, path: str, device: torch.device) -> None:
        """Write a PNG illustrating predictions on a few examples of ``data``."""
        raise NotImplementedError

    @staticmethod
    def table(metrics: dict[str, Any], num_samples: list[int]) -> str:
        """:meth:`evaluate`'s ``metrics`` for people (``num_samples``: the min-of-n rows);
        JSON unless the task has a table of its own."""
        return json.dumps(metrics, indent=2)


_TASKS: dict[str, type[Task[Any]]] = {}

T = TypeVar("T", bound="type[Task[Any]]")


def register_task(cls: T) -> T:
    """Make ``cls`` (a :class:`Task` subclass) the task of configs with ``task: <cls.name>``;
    returns it, so it also serves as a class decorator. Re-registering a name replaces it."""
    if not (isinstance(cls, type) and issubclass(cls, Task)):
        raise TypeError(f"register_task: expected a Task subclass, got {cls!r}")
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not name:
        raise ValueError(f"register_task: {cls.__name__}.name must be a non-empty string, "
                         f"got {name!r}")
    _TASKS[name] = cls
    return cls


def get_task(name: str) -> type[Task[Any]]:
    """The :class:`Task` class registered under ``name``."""
    if name not in _TASKS:
        raise ValueError(f"task: unknown task {name!r}; expected one of {sorted(_TASKS)}")
    return _TASKS[name]


def load_config(source: str | Path | dict[str, Any], overrides: Sequence[str] = ()) -> Config:
    """Read a YAML file, an installed configuration by name (:mod:`condflow.configs`) or a
    dict, apply ``--set`` overrides, and type every section.

    The task named by ``task:`` supplies the dataclasses of ``data``, ``model``, ``loss`` and
    ``eval`` (:meth:`Task.config_types`).
    """
    raw = copy.deepcopy(source) if isinstance(source, dict) else read_config(source)
    raw = apply_overrides(raw, list(overrides))
    if "task" not in raw:
        raise ValueError("config: missing key 'task'")
    if not isinstance(raw["task"], str):
        raise ValueError(f"task: expected a string, got {raw['task']!r}")
    task = get_task(raw["task"])
    sections = {name: raw.pop(name, None) for name in ("data", "model", "loss", "eval")}
    cfg = from_dict(Config, raw)
    for name, cls in task.config_types().items():
        setattr(cfg, name, from_dict(cls, sections[name], name))
    return cfg


def to_device(batch: dict[str, Tensor], device: torch.device) -> dict[str, Tensor]:
    return {
        k: v.to(device, non_blocking=True) if isinstance(v, Tensor) else v for k, v in batch.items()
    }
