"""Inference throughput: images/s of ProHMR mode prediction (ResNet-50 + flow head + body
model) and skeletons/s of the lifter (MLP lifter + flow head), at the paper's sizes.

The models are built from the example configs (``examples/mesh_recovery/paper.yaml``,
``examples/lifting/paper.yaml``) with their initial weights: throughput does not depend on
the values (batch-norm statistics are randomized and the mesh flow's ActNorms initialized on
generated poses, so that the outputs look like a trained model's). Every path (bf16
autocast, channels-last, TF32, torch.compile) is compared with a float64 copy of the model;
its error is printed beside its time and flagged when over its tolerance. FLOPs are counted by
``torch.utils.flop_counter`` and compared with the ``torch.mm`` rate measured in the same run.

    python benchmarks/bench_inference.py                 # both models, default batches
    python benchmarks/bench_inference.py --compile       # add torch.compile paths
    python benchmarks/bench_inference.py --models mesh --batch 64 --repeats 9
"""

from __future__ import annotations

import argparse
import copy
import json
import re
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (
    compile_for,
    init_actnorms_on_poses,
    machine,
    matmul_rate,
    median,
    path_context,
    rel_err,
    time_interleaved,
)

from condflow._checks import set_finite_checks
from condflow.tasks import load_config, task_for

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
CONFIGS = {"mesh": EXAMPLES / "mesh_recovery" / "paper.yaml",
           "lifting": EXAMPLES / "lifting" / "paper.yaml"}
UNIT = {"mesh": "images", "lifting": "skeletons"}
DEFAULT_BATCH = {"mesh": [64], "lifting": [64, 1024]}
TOLERANCE = {"fp32": 1e-4, "channels_last": 1e-4, "tf32": 1e-2, "bf16": 5e-2,
             "channels_last+bf16": 5e-2, "compile": 1e-4, "compile+bf16": 5e-2}


def build(name: str) -> nn.Module:
    cfg = load_config(str(CONFIGS[name]))
    model = task_for(cfg).build_model()
    if name == "mesh":
        init_actnorms_on_poses(model)
    model.eval()
    # Trained-looking statistics: batch norms at identity would make every path agree trivially.
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.running_mean.normal_(0.0, 0.1, generator=gen)
                m.running_var.uniform_(0.5, 1.5, generator=gen)
    return model


def make_inputs(name: str, batch: int, device: torch.device, gen: torch.Generator) -> Tensor:
    if name == "mesh":
        return torch.randn(batch, 3, 224, 224, generator=gen).to(device)
    kp = torch.rand(batch, 16, 3, generator=gen) * 2 - 1
    kp[..., 2] = 1.0
    return kp.to(device)


def output(name: str, model: nn.Module, inputs: Tensor) -> Tensor:
    """What is compared: 3D keypoints (mesh: through the body model) or joints (lifting)."""
    out = model(inputs)
    return out.keypoints_3d if name == "mesh" else out.joints[:, 0]


def paths_for(name: str, args: argparse.Namespace, device: torch.device) -> list[str]:
    paths = ["fp32", "bf16"]
    if name == "mesh":
        paths += ["channels_last", "channels_last+bf16"]
    if device.type == "cuda":
        paths.append("tf32")
    if args.compile:
        paths += ["compile", "compile+bf16"]
    return [p for p in paths if re.search(args.paths, p)]


def runner(name: str, model: nn.Module, path: str, device: torch.device
           ) -> Callable[[Tensor], Tensor]:
    """``inputs -> output`` on ``path``; channels-last paths get a channels-last model copy
    and convert their inputs (the conversion is timed)."""
    fn: Callable[[Tensor], Tensor] = lambda x: output(name, model, x)  # noqa: E731
    if path.startswith("channels_last"):
        model = copy.deepcopy(model).to(memory_format=torch.channels_last)
        fn = lambda x: output(name, model, x.contiguous(memory_format=torch.channels_last))  # noqa: E731
    if path.startswith("compile"):
        fn = compile_for(fn, device)

    def run(x: Tensor) -> Tensor:
        with path_context(path, device):
            return fn(x)
    return run


def flops(name: str, model: nn.Module, inputs: Tensor) -> float:
    counter = FlopCounterMode(display=False)
    with counter, torch.inference_mode():
        output(name, model, inputs)
    return float(counter.get_total_flops())


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", type=lambda s: s.split(","), default=list(CONFIGS))
    p.add_argument("--batch", type=lambda s: [int(v) for v in s.split(",")], default=None,
                   help="batch sizes (default: mesh 64, lifting 64,1024)")
    p.add_argument("--paths", default="", help="regex over paths (fp32, bf16, channels_last…)")
    p.add_argument("--compile", action="store_true", help="add torch.compile paths")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--budget", type=float, default=60.0, help="seconds per case (≥ 3 rounds)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--json", default=None, help="default benchmarks/results/inference_<dev>.json")
    args = p.parse_args(argv)
    device = torch.device(args.device)
    set_finite_checks(False)
    torch._dynamo.config.recompile_limit = 64  # one compiled lambda serves every path and shape
    info = machine() | {"device": str(device)}
    print(" | ".join(f"{k}: {v}" for k, v in info.items()))
    rates = {dt: matmul_rate(6400, 1024, device, dt) for dt in (torch.float32, torch.bfloat16)}
    for dt, r in rates.items():
        print(f"roofline {dt}: torch.mm [6400, 1024] x [1024, 1024] {r / 1e9:.1f} GFLOP/s")

    results, gen = [], torch.Generator().manual_seed(0)
    print("\n| model | batch | path | ms / batch | items/s | GFLOP / item | GFLOP/s | % roof "
          "| × fp32 | rel err |\n|---|---:|---|---:|---:|---:|---:|---:|---:|---:|")
    for name in args.models:
        model = build(name).to(device)
        ref = copy.deepcopy(model).double()
        paths = paths_for(name, args, device)
        check_in = make_inputs(name, 8, device, gen)
        with torch.inference_mode():
            expected = output(name, ref, check_in.double())
        runs = {path: runner(name, model, path, device) for path in paths}
        errors = {path: rel_err(run(check_in), expected) for path, run in runs.items()}
        for batch in args.batch or DEFAULT_BATCH[name]:
            x = make_inputs(name, batch, device, gen)
            flop = flops(name, model, x)
            fns = {path: partial(run, x) for path, run in runs.items()}
            times = time_interleaved(fns, device, args.repeats, budget_s=args.budget)
            for path in paths:
                t = median(times[path])
                rate = rates[torch.bfloat16 if path.endswith("bf16") else torch.float32]
                row = {"model": name, "unit": UNIT[name], "batch": batch, "path": path,
                       "ms": 1e3 * t, "times_s": times[path], "items_per_s": batch / t,
                       "gflop_per_item": flop / batch / 1e9, "gflops": flop / t / 1e9,
                       "roofline_pct": 100 * flop / t / rate,
                       "speedup_vs_fp32": median(times["fp32"]) / t if "fp32" in times else None,
                       "rel_err": errors[path], "within_tolerance": errors[path] <= TOLERANCE[path]}
                results.append(row)
                speed = row["speedup_vs_fp32"]
                print(f"| {name} | {batch} | {path} | {row['ms']:.1f} | {row['items_per_s']:,.0f} "
                      f"{UNIT[name]} | {row['gflop_per_item']:.3f} | {row['gflops']:.0f} "
                      f"| {row['roofline_pct']:.0f} | {'—' if speed is None else f'{speed:.2f}'} "
                      f"| {errors[path]:.1e}{'' if row['within_tolerance'] else ' (over tol)'} |",
                      flush=True)

    out = Path(args.json or Path(__file__).parent / "results" / f"inference_{device.type}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"machine": info, "roofline_flops": {str(k): v for k, v in
                                                                   rates.items()},
                               "tolerance": TOLERANCE, "results": results}, indent=1))
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
