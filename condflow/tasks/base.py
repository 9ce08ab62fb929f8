"""What a task supplies to the shared training loop and evaluation."""

from __future__ import annotations

import json
from typing import Any, ClassVar

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from condflow.config import Config
from condflow.losses.objective import Objective


class Task:
    """A task plugs data, a model and an objective into :func:`condflow.train.train`.

    Subclasses set ``name``, the dataclasses of their config sections, and implement the
    methods below. The model is any ``nn.Module``; the objective an
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

    def build_model(self, train_data: Dataset | None = None) -> nn.Module:
        """The model; ``train_data`` (when given) supplies normalization statistics."""
        raise NotImplementedError

    def datasets(self) -> tuple[Dataset, Dataset]:
        """``(train, test)`` datasets yielding dicts of tensors."""
        raise NotImplementedError

    def objective(self, model: nn.Module) -> Objective:
        """The training objective of ``model``."""
        raise NotImplementedError

    def evaluate(self, model: nn.Module, data: Dataset, device: torch.device) -> dict[str, Any]:
        """Metrics on ``data`` as a flat dict of numbers (and lists)."""
        raise NotImplementedError

    def picture(self, model: nn.Module, data: Dataset, path: str, device: torch.device) -> None:
        """Write a PNG illustrating predictions on a few examples of ``data``."""
        raise NotImplementedError

    @staticmethod
    def table(metrics: dict[str, Any], num_samples: list[int]) -> str:
        """:meth:`evaluate`'s ``metrics`` for people (``num_samples``: the min-of-n rows);
        JSON unless the task has a table of its own."""
        return json.dumps(metrics, indent=2)


def to_device(batch: dict[str, Tensor], device: torch.device) -> dict[str, Tensor]:
    return {
        k: v.to(device, non_blocking=True) if isinstance(v, Tensor) else v for k, v in batch.items()
    }
