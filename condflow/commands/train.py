"""``condflow train CONFIG [--resume [CHECKPOINT]] [--set KEY=VALUE ...]``."""

from __future__ import annotations

import argparse


def add_overrides(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key, e.g. train.steps=100 (repeatable)",
    )


def run(args: argparse.Namespace) -> int:
    from condflow._progress import set_progress
    from condflow.config import load_config
    from condflow.train import train

    set_progress(not args.no_progress)
    cfg = load_config(args.config, args.set)
    resume = True if args.resume == "" else (args.resume or False)
    print(f"checkpoint: {train(cfg, resume=resume, progress=not args.no_progress)}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a model from a YAML config")
    p.add_argument("config")
    p.add_argument(
        "--resume",
        nargs="?",
        const="",
        default=None,
        metavar="CHECKPOINT",
        help="continue from <output_dir>/checkpoints/last.pt or CHECKPOINT",
    )
    add_overrides(p)
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run)
