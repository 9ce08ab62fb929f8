"""The ``condflow`` command line (also ``python -m condflow``).

Expected failures (bad arguments, files, configs, checkpoints; a refused output; a
non-finite loss) end in one line ``condflow <command>: error: ...`` and exit status 2;
only a bug in condflow shows a traceback. Every command writes through one
:class:`condflow._outputs.OutputGuard`: the files named on its command line (other than by
an output argument, :data:`OUTPUT_ARGS`) are its inputs and are never written, and no
existing file is replaced without ``--overwrite``.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path
from typing import Any

from condflow._outputs import OutputGuard
from condflow._registry import load_plugins
from condflow.commands import COMMANDS
from condflow.flow import ModeNotAvailableError

__all__ = ["build_parser", "main"]

#: Errors that describe bad input rather than a bug; shown as one line, without traceback.
EXPECTED_ERRORS = (ValueError, OSError, ArithmeticError, ModeNotAvailableError)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="condflow", description="Conditional normalizing flows for 3D human pose and shape."
    )
    parser.add_argument(
        "--plugin", action="append", default=[], metavar="MODULE",
        help="import MODULE (a module name or a .py file) first, so that the encoders, output "
        "spaces and data sources it registers can be named in configs (repeatable; installed "
        "packages' 'condflow.plugins' entry points are imported too)",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        importlib.import_module(f"condflow.commands.{name}").register(sub)
    for p in sub.choices.values():
        if "--overwrite" not in p._option_string_actions:
            p.add_argument(
                "--overwrite",
                action="store_true",
                help="replace existing output files (never the command's inputs)",
            )
    return parser


#: Arguments that name what a command writes; every other file argument is an input.
OUTPUT_ARGS = ("out", "dst", "output")


def _input_files(args: argparse.Namespace) -> list[Path]:
    """The existing files named by any argument but the outputs: never written."""
    values: list[Any] = []
    for name, value in vars(args).items():
        if name not in OUTPUT_ARGS:
            values.extend(value if isinstance(value, list | tuple) else [value])
    return [Path(v) for v in values if isinstance(v, str) and v and Path(v).is_file()]


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.outputs = OutputGuard(args.overwrite, _input_files(args))
    try:
        load_plugins(args.plugin)
        return args.func(args)
    except EXPECTED_ERRORS as err:
        print(f"condflow {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"condflow {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
