"""``condflow eval CONFIG CHECKPOINT``: metrics table, JSON and a picture."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from condflow.commands import outputs
from condflow.commands.train import add_overrides


def print_table(cfg, metrics: dict) -> None:  # noqa: ANN001
    from condflow.tasks import get_task

    task = get_task(cfg.task)
    print(
        task.table(metrics, cfg.eval.num_samples)
        if hasattr(task, "table")
        else json.dumps(metrics, indent=2)
    )


def run(args: argparse.Namespace) -> int:
    from condflow.config import load_config
    from condflow.train import evaluate

    cfg = load_config(args.config, args.set)
    guard = outputs(args)
    out = guard.claim(args.out or Path(cfg.output_dir) / "eval.json")
    if not args.no_picture:
        guard.claim(out.with_suffix(".png"))
    metrics = evaluate(cfg, args.checkpoint, out, picture=not args.no_picture)
    print_table(cfg, metrics)
    print(f"\nJSON: {out}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="evaluate a checkpoint; prints a table, writes JSON + PNG")
    p.add_argument("config")
    p.add_argument("checkpoint")
    p.add_argument("--out", default=None, help="JSON path (default <output_dir>/eval.json)")
    add_overrides(p)
    p.add_argument("--no-picture", action="store_true")
    p.set_defaults(func=run)
