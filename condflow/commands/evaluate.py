"""``condflow eval CONFIG CHECKPOINT``: metrics table, JSON and a picture."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

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
    from condflow._progress import set_progress
    from condflow.config import load_config
    from condflow.train import evaluate

    set_progress(not args.no_progress)
    cfg = load_config(args.config, args.set)
    metrics = evaluate(cfg, args.checkpoint, args.out, picture=not args.no_picture)
    print_table(cfg, metrics)
    json_path = Path(args.out) if args.out else Path(cfg.output_dir) / "eval.json"
    print(f"\nJSON: {json_path}")
    if not args.no_picture:
        print(f"picture: {json_path.with_suffix('.png')}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="evaluate a checkpoint; prints a table, writes JSON + PNG")
    p.add_argument("config")
    p.add_argument("checkpoint")
    p.add_argument("--out", default=None, help="JSON path (default <output_dir>/eval.json)")
    add_overrides(p)
    p.add_argument("--no-picture", action="store_true")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run)
