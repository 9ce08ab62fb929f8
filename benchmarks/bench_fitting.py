"""Fitting wall time: keypoint fitting with the learned image-conditioned prior (optimizing
the latent z, :func:`condflow.fitting.fit_keypoints`) vs the SMPLify-style fit with a
generic prior (:func:`condflow.fitting.fit_keypoints_generic`), on the mesh model.

For each method and batch size B, on the same contexts and 2D keypoints:

- **converge**: wall time of the whole fit (its stopping rule, at most ``--iters``
  iterations) and batched iterations/s;
- **to own final E_J**: wall time until the mean keypoint error E_J is first within
  ``--within`` of the fit's final mean E_J, from a traced run (E_J recorded after every
  iteration by the fit's callback, the recording time not counted);
- **to common E_J**: the same for the worse of the two methods' final errors (a level both
  reach), so that a fit that stops early at a high error does not look fast;
- **learned to own final / SMPLify converge**: the ratio the target speaks of (≤ ⅓).

Without ``--checkpoint`` the model is ProHMR at the paper's sizes (flow d = 144, 4 blocks,
coupling width 1024, context 2048) with untrained weights, ActNorms initialized on
generated poses, random contexts, and keypoints of poses drawn from the model itself (z ~
0.5·N(0, I)) plus noise. With ``--checkpoint`` (a trained mesh model): the test images'
contexts and their ground-truth 2D keypoints.

    python benchmarks/bench_fitting.py                         # paper-sized, untrained
    python benchmarks/bench_fitting.py --checkpoint runs/mesh/checkpoints/last.pt
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import init_actnorms_on_poses, machine, median, sync

from condflow._checks import set_finite_checks
from condflow.fitting import (
    FitConfig,
    FitProgress,
    GenericFitConfig,
    KeypointFit,
    OptimizerConfig,
    fit_keypoints,
    fit_keypoints_generic,
    pose_prior,
)

METHODS = ("learned prior", "SMPLify-style")
PAPER_CONFIG = Path(__file__).resolve().parents[1] / "examples" / "mesh_recovery" / "paper.yaml"


def untrained_problem(batch: int, device: torch.device, seed: int = 0
                      ) -> tuple[nn.Module, Tensor, Tensor]:
    from condflow.tasks import load_config, task_for

    torch.manual_seed(seed)
    cfg = load_config(str(PAPER_CONFIG))
    head = task_for(cfg).build_model()
    head.encoder = nn.Identity()  # fitting starts from contexts; the ResNet is not needed
    init_actnorms_on_poses(head, seed=seed)
    head = head.eval().to(device)
    g = torch.Generator().manual_seed(seed + 1)
    context = torch.randn(batch, head.flow.context_features, generator=g).to(device)
    z = (0.5 * torch.randn(batch, 1, 144, generator=g)).to(device)
    with torch.no_grad():
        kp2d = head.generate(z, context).keypoints_2d[:, 0]
    kp2d = kp2d + 0.005 * torch.randn(kp2d.shape, generator=g).to(device)
    return head, context, torch.cat([kp2d, torch.ones_like(kp2d[..., :1])], -1)


def checkpoint_problem(path: str, batch: int, device: torch.device
                       ) -> tuple[nn.Module, Tensor, Tensor]:
    from torch.utils.data import DataLoader, Subset

    from condflow.saving import load_with_config
    from condflow.tasks import SMPLTask, describe, task_for

    cfg, model = load_with_config(path, str(device))
    task = task_for(cfg)
    if not isinstance(task, SMPLTask):
        raise SystemExit(f"--checkpoint: expected a mesh model, got {describe(cfg)}")
    test = task.datasets()[1]
    batch_data = next(iter(DataLoader(Subset(test, range(batch)), batch_size=batch)))
    with torch.no_grad():
        context = model.context(batch_data["img"].to(device))
    return model, context, batch_data["keypoints_2d"].to(device)


def run_fit(method: str, head: nn.Module, context: Tensor, kp: Tensor, prior: nn.Module,
            args: argparse.Namespace, max_iters: int, trace: list[tuple[float, float]] | None = None
            ) -> tuple[KeypointFit, float]:
    """One fit and its wall time. With ``trace``, append ``(seconds so far, mean E_J)`` after
    every iteration; the time spent computing E_J for the trace is not counted."""
    opt = OptimizerConfig(method="lbfgs", max_iters=max_iters, tol=args.tol)
    common = {"keypoint_weight": args.keypoint_weight, "sigma": args.sigma, "optimizer": opt}
    device = context.device
    excluded = 0.0

    def record(progress: FitProgress) -> None:
        nonlocal excluded
        sync(device)
        now = time.perf_counter()
        e_j = progress.keypoint_energy().mean().item()
        trace.append((now - t0 - excluded, e_j))
        excluded += time.perf_counter() - now

    callback = record if trace is not None else None
    sync(device)
    t0 = time.perf_counter()
    if method == METHODS[0]:
        fit = fit_keypoints(head, context, kp, FitConfig(**common), callback=callback)
    else:
        fit = fit_keypoints_generic(head, context, kp, prior, GenericFitConfig(**common),
                                    callback=callback)
    sync(device)
    return fit, time.perf_counter() - t0 - excluded


def first_reach(trace: list[tuple[float, float]], target: float) -> tuple[int, float] | None:
    """The first iteration (1-based) whose mean E_J ≤ ``target`` and its time, or ``None``."""
    for k, (seconds, e_j) in enumerate(trace, 1):
        if e_j <= target:
            return k, seconds
    return None


def measure(problem: tuple[nn.Module, Tensor, Tensor], prior: nn.Module,
            args: argparse.Namespace) -> list[dict[str, Any]]:
    """Both methods on one problem: converge (median of ``--repeats`` runs), then one traced
    run for the time to reach the own final E_J and the common E_J (the worse of the two
    final errors: a level both fits attain)."""
    full = {}
    for m in METHODS:
        runs = [run_fit(m, *problem, prior, args, args.iters) for _ in range(args.repeats)]
        full[m] = runs[0][0], median([t for _, t in runs])
    finals = {m: fit.keypoint_energy.mean().item() for m, (fit, _) in full.items()}
    common = max(finals.values()) * (1 + args.within)
    rows = []
    for m in METHODS:
        fit, seconds = full[m]
        trace: list[tuple[float, float]] = []
        run_fit(m, *problem, prior, args, args.iters, trace)
        trips = int(fit.iterations.max())
        own = first_reach(trace, finals[m] * (1 + args.within))
        both = first_reach(trace, common)
        rows.append({
            "method": m, "batch": len(problem[1]), "seconds_converge": seconds,
            "iterations": trips, "mean_iterations": fit.iterations.float().mean().item(),
            "converged": fit.converged.float().mean().item(),
            "iterations_per_s": trips / seconds, "final_keypoint_energy": finals[m],
            "iterations_to_own_final": own[0] if own else None,
            "seconds_to_own_final": own[1] if own else None,
            "common_keypoint_energy": common,
            "iterations_to_common": both[0] if both else None,
            "seconds_to_common": both[1] if both else None,
            "trace_seconds_converge": trace[-1][0] if trace else 0.0,
            "trace_seconds_keypoint_energy": [[round(t, 4), e] for t, e in trace],
        })
    return rows


def profile(args: argparse.Namespace, prior: nn.Module, device: torch.device,
            iterations: int = 10) -> None:
    """Where a fit's time goes: ``iterations`` L-BFGS iterations of each method under
    ``torch.profiler``, the top operators by self CPU time, kernel launches and host syncs."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda"
                                           else [])
    for batch in args.batch:
        problem = (checkpoint_problem(args.checkpoint, batch, device) if args.checkpoint
                   else untrained_problem(batch, device))
        for m in METHODS:
            run_fit(m, *problem, prior, args, 2)
            with torch_profile(activities=activities) as prof:
                fit, seconds = run_fit(m, *problem, prior, args, iterations)
            trips = int(fit.iterations.max())
            events = prof.key_averages()
            count = {e.key: e.count for e in events}
            launches = sum(v for k, v in count.items() if "LaunchKernel" in k)
            syncs = sum(v for k, v in count.items() if "Synchronize" in k or "Memcpy" in k)
            print(f"\n## B = {batch}, {m}: {trips} iterations in {seconds:.3f} s "
                  f"({1e3 * seconds / max(trips, 1):.1f} ms per iteration); per iteration "
                  f"{launches / max(trips, 1):.0f} kernel launches, "
                  f"{syncs / max(trips, 1):.1f} host syncs/copies")
            print(events.table(sort_by="self_cpu_time_total", row_limit=12))


def _fmt(value: float | None) -> str:
    return "not reached" if value is None else f"{value:.2f}"


def _reached(row: dict[str, Any], level: str) -> str:
    seconds = row[f"seconds_to_{level}"]
    return "not reached" if seconds is None else (
        f"{seconds:.3f} ({row[f'iterations_to_{level}']} it)")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", default=None, help="a trained mesh model (default: "
                   "paper-sized untrained model, keypoints drawn from it)")
    p.add_argument("--batch", type=lambda s: [int(v) for v in s.split(",")], default=[1, 64])
    p.add_argument("--iters", type=int, default=500, help="iteration cap of a fit")
    p.add_argument("--tol", type=float, default=1e-7, help="stopping rule (relative change)")
    p.add_argument("--keypoint-weight", type=float, default=1000.0, help="λ_J")
    p.add_argument("--sigma", type=float, default=0.1, help="Geman–McClure scale")
    p.add_argument("--within", type=float, default=0.01,
                   help="'reached' = mean E_J within this fraction of the final one")
    p.add_argument("--repeats", type=int, default=3, help="timings per run (median)")
    p.add_argument("--gmm-components", type=int, default=8)
    p.add_argument("--gmm-samples", type=int, default=20000,
                   help="pose-generator samples the SMPLify GMM is fitted to")
    p.add_argument("--profile", action="store_true",
                   help="profile 10 iterations of each method instead of timing")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--json", default=None, help="default benchmarks/results/fitting_<dev>.json")
    args = p.parse_args(argv)
    device = torch.device(args.device)
    set_finite_checks(False)
    info = machine() | {"device": str(device)}
    print(" | ".join(f"{k}: {v}" for k, v in info.items()))
    prior = pose_prior(args.gmm_components, args.gmm_samples).to(device)

    if args.profile:
        profile(args, prior, device)
        return
    results = []
    print("\n| B | method | converge (s) | iterations | iter/s | final E_J | to own final E_J "
          "(s) | to common E_J (s) | to own final / SMPLify converge |\n"
          "|---:|---|---:|---:|---:|---:|---:|---:|---:|")
    for batch in args.batch:
        if args.checkpoint:
            problem = checkpoint_problem(args.checkpoint, batch, device)
        else:
            problem = untrained_problem(batch, device)
        for m in METHODS:  # warm-up (allocator, caches)
            run_fit(m, *problem, prior, args, 2)
        rows = measure(problem, prior, args)
        smplify = rows[1]["seconds_converge"]
        for row in rows:
            own = row["seconds_to_own_final"]
            row["own_final_over_smplify_converge"] = own / smplify if own is not None else None
            results.append(row)
            print(f"| {batch} | {row['method']} | {row['seconds_converge']:.3f} "
                  f"| {row['iterations']} | {row['iterations_per_s']:.1f} "
                  f"| {row['final_keypoint_energy']:.2e} "
                  f"| {_reached(row, 'own_final')} | {_reached(row, 'common')} "
                  f"| {_fmt(row['own_final_over_smplify_converge'])} |", flush=True)

    out = Path(args.json or Path(__file__).parent / "results" / f"fitting_{device.type}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    settings = {k: v for k, v in vars(args).items() if k not in ("json", "device")}
    out.write_text(json.dumps({"machine": info, "settings": settings,
                               "optimizer": asdict(OptimizerConfig(max_iters=args.iters,
                                                                   tol=args.tol)),
                               "results": results}, indent=1))
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
