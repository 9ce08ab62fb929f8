"""Sub-commands of the ``condflow`` CLI: each module defines ``register(subparsers)``.

A command's ``run(args)`` writes files only through ``outputs(args)`` (see
:mod:`condflow._outputs`): claim each output path before writing it.
"""

from __future__ import annotations

import argparse

from condflow._outputs import OutputGuard

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
)


def outputs(args: argparse.Namespace) -> OutputGuard:
    """The run's :class:`OutputGuard` (a default one when ``run`` is called without the CLI)."""
    guard = getattr(args, "outputs", None)
    if guard is None:
        guard = args.outputs = OutputGuard(getattr(args, "overwrite", False))
    return guard
