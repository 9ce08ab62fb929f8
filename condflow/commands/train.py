"""``condflow train CONFIG [--resume [CHECKPOINT]] [--set KEY=VALUE ...] [--fast-dev-run]``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from condflow._outputs import OutputGuard
from condflow._progress import set_progress
from condflow.commands import outputs, print_table
from condflow.tasks import load_config
from condflow.train import checkpoint_path, evaluate, fast_dev_run_config, train

if TYPE_CHECKING:
    from condflow.config import Config

__all__ = ["add_fast_dev_run", "add_overrides", "claim_run", "register", "run"]


def add_overrides(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key, e.g. train.steps=100 (repeatable)",
    )


def add_fast_dev_run(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--fast-dev-run",
        action="store_true",
        help="smoke test in seconds: tiny data, a few steps, under <output_dir>/fast_dev_run "
        "(--set still applies on top)",
    )


def claim_run(guard: OutputGuard, cfg: Config) -> None:
    """Refuse to start a fresh run over the checkpoint and log of another (without
    ``--overwrite``): they would be replaced at the first checkpoint."""
    try:
        for path in (checkpoint_path(cfg), Path(cfg.output_dir) / "log.csv"):
            guard.claim(path, "output_dir")
    except FileExistsError as err:
        raise FileExistsError(f"{err} (or --resume to continue that run)") from None


def run(args: argparse.Namespace) -> int:
    set_progress(not args.no_progress)
    if args.fast_dev_run:
        cfg = fast_dev_run_config(args.config, args.set)
    else:
        cfg = load_config(args.config, args.set)
    resume = True if args.resume == "" else (args.resume or False)
    guard = outputs(args)
    if not resume:
        claim_run(guard, cfg)
    if args.fast_dev_run:
        for name in ("eval.json", "eval.png", "eval_calibration.png"):
            guard.claim(Path(cfg.output_dir) / name, "output_dir")
    checkpoint = train(cfg, resume=resume, progress=not args.no_progress)
    print(f"checkpoint: {checkpoint}")
    if args.fast_dev_run:
        print_table(cfg, evaluate(cfg, checkpoint))
        print(f"evaluation: {cfg.output_dir}/eval.json, picture: {cfg.output_dir}/eval.png")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a model from a YAML config (or an installed name)")
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
    add_fast_dev_run(p)
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run)
