"""``condflow demo``: the lifting flow and its regression baseline on synthetic data."""

from __future__ import annotations

import argparse
from pathlib import Path

from condflow._progress import set_progress
from condflow.commands import outputs
from condflow.commands.train import add_overrides, claim_run
from condflow.tasks import load_config
from condflow.tasks.evaluation import lifting_table
from condflow.train import evaluate, train

__all__ = ["register", "run"]


def run(args: argparse.Namespace) -> int:
    set_progress(not args.no_progress)
    out = Path(args.out)
    results = {}
    for kind in ("flow", "regression"):
        overrides = [f"output_dir={out / kind}", f"model.kind={kind}", *args.set]
        if args.steps:
            overrides.append(f"train.steps={args.steps}")
        cfg = load_config("lifting", overrides)  # examples/lifting/config.yaml
        claim_run(outputs(args), cfg)
        for name in ("eval.json", "eval.png"):
            outputs(args).claim(Path(cfg.output_dir) / name)
        print(f"== training the {kind} model ({cfg.train.steps} steps) ==")
        results[kind] = evaluate(cfg, train(cfg, progress=not args.no_progress))
    print("\n## 2D→3D lifting on the synthetic test set\n")
    print("Probabilistic model (conditional Glow):\n")
    print(lifting_table(results["flow"], cfg.eval.num_samples))
    print("\nRegression baseline (same lifter, direct 3D output, same data and budget):\n")
    print(lifting_table(results["regression"], cfg.eval.num_samples))
    print(f"\npicture: {out / 'flow' / 'eval.png'}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="lifting flow vs regression baseline on synthetic data")
    p.add_argument("--out", default="runs/demo")
    p.add_argument("--steps", type=int, default=None, help="default: the config's train.steps")
    add_overrides(p)
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run)
