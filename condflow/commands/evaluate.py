"""``condflow eval CHECKPOINT [--config CONFIG] [--set KEY=VALUE ...]``: metrics table, JSON
and a picture, from the configuration stored in the checkpoint.

The checkpoint's own config (the one it was trained with) is the base: a ``--config`` file and
``--set`` overrides only change the keys they name, so the evaluation uses the training run's
data settings unless told otherwise, and says which of them differ. ``condflow eval CONFIG
CHECKPOINT`` (the older form) reads as ``--config CONFIG``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from condflow._progress import set_progress
from condflow.checkpoint import load_checkpoint
from condflow.commands import outputs, print_table
from condflow.commands.train import add_fast_dev_run, add_overrides
from condflow.config import changed_keys, config_to_dict, merge_config, read_config
from condflow.tasks import describe, load_config
from condflow.train import evaluate, fast_dev_run_config

__all__ = ["register", "run"]


def run(args: argparse.Namespace) -> int:
    set_progress(not args.no_progress)
    if len(args.paths) > 2:
        raise ValueError(f"eval: expected CHECKPOINT (or CONFIG CHECKPOINT), got {args.paths}")
    config, checkpoint = args.paths if len(args.paths) == 2 else (args.config, args.paths[0])
    stored = load_checkpoint(checkpoint)["config"]
    raw = merge_config(stored, read_config(config)) if config else stored
    cfg = fast_dev_run_config(raw, args.set) if args.fast_dev_run else load_config(raw, args.set)
    before = config_to_dict(load_config(stored))["data"]  # an old config as its parts
    changed = [f"{k}: {a!r} -> {b!r}"
               for k, a, b in changed_keys(before, config_to_dict(cfg)["data"], "data")]
    print(
        f"evaluating {checkpoint} ({describe(cfg)}) on the {cfg.data.source} test set; data "
        "settings "
        + ("as in training" if not changed else "changed from training: " + "; ".join(changed))
    )
    guard = outputs(args)
    out = guard.claim(args.out or Path(cfg.output_dir) / "eval.json")
    if not args.no_picture:
        guard.claim(out.with_suffix(".png"))
        guard.claim(out.with_name(out.stem + "_calibration.png"))
    metrics = evaluate(cfg, checkpoint, out, picture=not args.no_picture)
    print_table(cfg, metrics)
    print(f"\nJSON: {out}")
    if not args.no_picture:
        print(f"picture: {out.with_suffix('.png')}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    help_ = "evaluate a checkpoint (with its own config); prints a table, writes JSON + PNG"
    p = sub.add_parser("eval", help=help_)
    p.add_argument("paths", nargs="+", metavar="CHECKPOINT", help="the checkpoint to evaluate")
    p.add_argument(
        "--config", default=None, help="YAML (or installed name) overriding the stored config"
    )
    p.add_argument("--out", default=None, help="JSON path (default <output_dir>/eval.json)")
    add_overrides(p)
    add_fast_dev_run(p)
    p.add_argument("--no-picture", action="store_true")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run)
