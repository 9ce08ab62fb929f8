"""The ``condflow`` command line: train, eval, demo, convert-smpl."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

DEMO_STEPS = 3000


def _train(args: argparse.Namespace) -> int:
    from condflow.config import load_config
    from condflow.train import train

    cfg = load_config(args.config, args.set)
    resume = args.resume if args.resume not in (None, "") else (args.resume == "")
    path = train(cfg, resume=resume, progress=not args.no_progress)
    print(f"checkpoint: {path}")
    return 0


def _eval(args: argparse.Namespace) -> int:
    from condflow.config import load_config
    from condflow.train import evaluate

    cfg = load_config(args.config, args.set)
    metrics = evaluate(cfg, args.checkpoint, args.out, picture=not args.no_picture)
    _print_table(cfg, metrics)
    out = args.out or Path(cfg.output_dir) / "eval.json"
    print(f"\nJSON: {out}")
    return 0


def _print_table(cfg, metrics: dict) -> None:  # noqa: ANN001
    from condflow.tasks import get_task

    task = get_task(cfg.task)
    if hasattr(task, "table"):
        print(task.table(metrics, cfg.eval.num_samples))
    else:
        print(json.dumps(metrics, indent=2))


def _demo(args: argparse.Namespace) -> int:
    """Train the lifting flow and its regression baseline on synthetic data; compare."""
    from condflow.config import load_config
    from condflow.tasks.lifting import table
    from condflow.train import evaluate, train

    out = Path(args.out)
    results = {}
    for kind in ("flow", "regression"):
        cfg = load_config(
            {"task": "lifting", "output_dir": str(out / kind), "model": {"kind": kind}},
            [f"train.steps={args.steps}", *args.set],
        )
        print(f"== training the {kind} model ({cfg.train.steps} steps) ==")
        ckpt = train(cfg, progress=not args.no_progress)
        results[kind] = evaluate(cfg, ckpt)
    print("\n## Lifting on the synthetic test set\n")
    print("Probabilistic model (conditional Glow):\n")
    print(table(results["flow"], cfg.eval.num_samples))
    print("\nRegression baseline (same lifter, direct 3D output):\n")
    print(table(results["regression"], cfg.eval.num_samples))
    print(f"\npicture: {out / 'flow' / 'eval.png'}")
    return 0


def _convert_smpl(args: argparse.Namespace) -> int:
    from condflow.body.convert import convert_smpl_pkl

    print(f"wrote {convert_smpl_pkl(args.src, args.dst)}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="condflow", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    overrides = {
        "action": "append",
        "default": [],
        "metavar": "KEY=VALUE",
        "help": "override a config key, e.g. train.steps=100 (repeatable)",
    }

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
    p.add_argument("--set", **overrides)
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_train)

    p = sub.add_parser("eval", help="evaluate a checkpoint; prints a table, writes JSON + PNG")
    p.add_argument("config")
    p.add_argument("checkpoint")
    p.add_argument("--out", default=None, help="JSON path (default <output_dir>/eval.json)")
    p.add_argument("--set", **overrides)
    p.add_argument("--no-picture", action="store_true")
    p.set_defaults(func=_eval)

    p = sub.add_parser("demo", help="lifting flow vs regression baseline on synthetic data")
    p.add_argument("--out", default="runs/demo")
    p.add_argument("--steps", type=int, default=DEMO_STEPS)
    p.add_argument("--set", **overrides)
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_demo)

    p = sub.add_parser("convert-smpl", help="rewrite an official SMPL .pkl without chumpy")
    p.add_argument("src")
    p.add_argument("dst")
    p.set_defaults(func=_convert_smpl)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError) as err:
        print(f"condflow {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
