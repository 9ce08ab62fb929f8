"""Sub-commands of the ``condflow`` CLI: each module defines ``register(subparsers)``.

A command's ``run(args)`` writes files only through ``outputs(args)`` (see
:mod:`condflow._outputs`): claim each output path before writing it.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from condflow._outputs import OutputGuard
from condflow.tasks import task_for

if TYPE_CHECKING:
    from condflow.config import Config

__all__ = ["COMMANDS", "outputs", "print_table"]

COMMANDS = (
    "train",
    "evaluate",
    "demo",
    "configs",
    "convert_smpl",
    "export",
    "predict",
    "fit",
    "import_prohmr",
    "fuse",
)


def outputs(args: argparse.Namespace) -> OutputGuard:
    """The run's :class:`OutputGuard` (a default one when ``run`` is called without the CLI)."""
    guard = getattr(args, "outputs", None)
    if guard is None:
        guard = args.outputs = OutputGuard(getattr(args, "overwrite", False))
    return guard


def print_table(cfg: Config, metrics: dict[str, Any]) -> None:
    """The task's metrics table for ``metrics`` (:meth:`condflow.tasks.Task.table`)."""
    print(task_for(cfg).table(metrics, cfg.eval.num_samples))
