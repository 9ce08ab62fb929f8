"""``condflow convert-smpl SRC DST``: an official SMPL .pkl rewritten without chumpy."""

from __future__ import annotations

import argparse
from pathlib import Path

from condflow.body.convert import convert_smpl_pkl
from condflow.commands import outputs

__all__ = ["register", "run"]


def run(args: argparse.Namespace) -> int:
    if not Path(args.src).is_file():  # named before any complaint about DST
        raise FileNotFoundError(f"SRC: no such file {args.src}")
    print(f"wrote {convert_smpl_pkl(args.src, outputs(args).claim(args.dst, 'DST'))}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("convert-smpl", help="rewrite an official SMPL .pkl without chumpy")
    p.add_argument("src")
    p.add_argument("dst")
    p.set_defaults(func=run)
