"""Fitting wall time: keypoint fitting with the learned image-conditioned prior (optimizing
the latent z, :func:`condflow.fitting.fit_keypoints`) vs the SMPLify-style fit with a
generic prior (:func:`condflow.fitting.fit_keypoints_generic`), on the mesh model, and what
each speed lever of the learned fit (``--levers``) gives.

For each batch size B, on the same contexts and 2D keypoints, the SMPLify-style fit and the
learned fit in each lever's setting (``reference``: the default L-BFGS; ``cache``: the
context parts computed once per fit; ``frozen``: the flow compiled once per fit with its
backward written out; ``fixed``: fixed-shape L-BFGS; ``bf16``: the flow in
bfloat16, then the full-precision polish; ``lm``: ``--lm-iters`` Levenberg–Marquardt
iterations, then L-BFGS; ``lmbf16``: the same with the Levenberg–Marquardt Jacobian through
the flow in bfloat16; ``every3`` (with ``lm`` or ``lmbf16``): a fresh Jacobian only every
third Levenberg–Marquardt iteration; ``pre`` (with ``lm`` or ``lmbf16``): the L-BFGS
after them in the metric of their last damped Gauss–Newton matrix; combinations joined by
``+``):

- **converge**: wall time of the whole fit (its stopping rule, at most ``--iters``
  iterations), batched iterations and flow evaluations (batched calls and rows);
- **to SMPLify's final E_J**: wall time until the mean keypoint error E_J is first at most
  SMPLify's final mean E_J (times ``1 + --within``), from a traced run (E_J recorded after
  every iteration by the fit's callback, the recording time not counted), and its ratio to
  SMPLify's converge time, the mean of SMPLify's fits timed right before and after the
  lever's (the JSON also holds the ratio to the first SMPLify row): the goal is ≤ ⅓;
- **to own final E_J**: the same for the fit's own final E_J;
- **MPJPE / PA-MPJPE** of the fitted 3D joints against the poses the keypoints come from.

Without ``--checkpoint`` the model is ProHMR at the paper's sizes (flow d = 144, 4 blocks,
coupling width 1024, context 2048) with untrained weights, ActNorms initialized on
generated poses, random contexts, and keypoints of poses drawn from the model itself (z ~
0.5·N(0, I)) plus noise. With ``--checkpoint`` (a trained mesh model): the test images'
contexts and their ground-truth 2D keypoints (MPJPE where the data has 3D joints).

    python benchmarks/bench_fitting.py                         # paper-sized, untrained
    python benchmarks/bench_fitting.py --levers reference,cache --batch 64
    python benchmarks/bench_fitting.py --checkpoint runs/mesh/checkpoints/last.pt
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import init_actnorms_on_poses, machine, median, sync

import condflow.fitting.latent as latent
from condflow._checks import set_finite_checks
from condflow.bijectors.nets import ContextResidualNet
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
from condflow.metrics import mpjpe, pa_mpjpe

SMPLIFY = "SMPLify-style"
#: The learned fit's speed levers: FitConfig / OptimizerConfig fields of each.
LEVERS: dict[str, dict[str, Any]] = {
    "reference": {},
    "cache": {"cache_context": True},
    "frozen": {"frozen_flow": True},
    "fixed": {"fixed_shape": True},
    "bf16": {"flow_dtype": "bfloat16"},
    "int8": {"flow_dtype": "int8"},
    "lm": {"method": "lm+lbfgs"},
    "lmbf16": {"method": "lm+lbfgs", "jacobian_dtype": "bfloat16"},
    "every3": {"jacobian_every": 3},
    "pre": {"precondition": True},
}
OPTIMIZER_FIELDS = ("fixed_shape", "method", "lm_iters", "jacobian_every", "precondition")
PAPER_CONFIG = Path(__file__).resolve().parents[1] / "examples" / "mesh_recovery" / "paper.yaml"

Problem = tuple[nn.Module, Tensor, Tensor, Tensor | None]
"""(head, contexts [B, C], keypoints [B, 24, 3], true 3D joints [B, 17, 3] mm or None)."""


def lever_settings(name: str) -> dict[str, Any]:
    """The FitConfig and OptimizerConfig fields of a lever name like ``"cache+fixed"``."""
    settings: dict[str, Any] = {}
    for part in name.split("+"):
        if part not in LEVERS:
            raise SystemExit(f"--levers: unknown lever {part!r}; expected names from "
                             f"{sorted(LEVERS)} joined by '+'")
        settings |= LEVERS[part]
    return settings


def untrained_problem(batch: int, device: torch.device, seed: int = 0) -> Problem:
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
        truth = head.generate(z, context)
    kp2d = truth.keypoints_2d[:, 0]
    kp2d = kp2d + 0.005 * torch.randn(kp2d.shape, generator=g).to(device)
    return (head, context, torch.cat([kp2d, torch.ones_like(kp2d[..., :1])], -1),
            truth.joints_mm[:, 0])


def checkpoint_problem(path: str, batch: int, device: torch.device) -> Problem:
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
    joints = batch_data.get("joints_3d")
    return (model, context, batch_data["keypoints_2d"].to(device),
            None if joints is None else joints.to(device))


class RowCounter:
    """Counts the flow's evaluations: calls of its first coupling net, or of the compiled
    flow (``frozen_flow``), and the rows they carried (a batched objective evaluation is one
    call), except while ``paused``."""

    def __init__(self, head: nn.Module) -> None:
        self.calls = self.rows = 0
        self.paused = False
        net = next(m for m in head.modules() if isinstance(m, ContextResidualNet))
        self.hook = net.register_forward_hook(lambda m, args, out: self._count(args[0]))
        self.frozen_generate = latent.frozen_generate

        def counted(program: Any, z: Tensor, index: Tensor | None = None) -> Tensor:
            self._count(z)
            return self.frozen_generate(program, z, index)

        latent.frozen_generate = counted

    def _count(self, z: Tensor) -> None:
        if not self.paused:
            self.calls += 1
            self.rows += int(z.shape[0])

    def close(self) -> None:
        self.hook.remove()
        latent.frozen_generate = self.frozen_generate


def run_fit(method: str, head: nn.Module, context: Tensor, kp: Tensor, prior: nn.Module,
            args: argparse.Namespace, max_iters: int,
            trace: list[tuple[float, float]] | None = None, counter: RowCounter | None = None
            ) -> tuple[KeypointFit, float]:
    """One fit (``method``: SMPLify or a lever of the learned fit) and its wall time. With
    ``trace``, append ``(seconds so far, mean E_J)`` after every iteration; the time spent
    computing E_J for the trace is not counted, nor its flow evaluations by ``counter``."""
    settings = {} if method == SMPLIFY else lever_settings(method)
    opt = OptimizerConfig(**({"method": "lbfgs", "max_iters": max_iters, "tol": args.tol,
                              "lm_iters": args.lm_iters}
                             | {k: v for k, v in settings.items() if k in OPTIMIZER_FIELDS}))
    common = {"keypoint_weight": args.keypoint_weight, "sigma": args.sigma, "optimizer": opt}
    device = context.device
    excluded = 0.0

    def record(progress: FitProgress) -> None:
        nonlocal excluded
        sync(device)
        now = time.perf_counter()
        if counter is not None:
            counter.paused = True
        e_j = progress.keypoint_energy().mean().item()
        if counter is not None:
            counter.paused = False
        trace.append((now - t0 - excluded, e_j))
        excluded += time.perf_counter() - now

    callback = record if trace is not None else None
    sync(device)
    t0 = time.perf_counter()
    if method == SMPLIFY:
        fit = fit_keypoints_generic(head, context, kp, prior, GenericFitConfig(**common),
                                    callback=callback)
    else:
        fit = fit_keypoints(head, context, kp, FitConfig(
            **common, **{k: v for k, v in settings.items() if k not in OPTIMIZER_FIELDS}),
            callback=callback)
    sync(device)
    return fit, time.perf_counter() - t0 - excluded


def first_reach(trace: list[tuple[float, float]], target: float) -> tuple[int, float] | None:
    """The first iteration (1-based) whose mean E_J ≤ ``target`` and its time, or ``None``."""
    for k, (seconds, e_j) in enumerate(trace, 1):
        if e_j <= target:
            return k, seconds
    return None


def measure(problem: Problem, prior: nn.Module, args: argparse.Namespace,
            label: str = "") -> list[dict[str, Any]]:
    """SMPLify, then every lever, on one problem: converge (median of ``--repeats`` runs,
    ``--smplify-repeats`` for SMPLify; 0: the traced run's time), then one traced run for
    the times to reach SMPLify's final E_J and the own final E_J."""
    head, context, kp, truth = problem
    rows: list[dict[str, Any]] = []
    smplify_final = smplify_seconds = None

    def smplify_clock() -> float:
        run_fit(SMPLIFY, head, context, kp, prior, args, 2)
        return run_fit(SMPLIFY, head, context, kp, prior, args, args.iters)[1]

    for m in (SMPLIFY, *args.levers):
        # SMPLify timed right before and after each lever: the machine's speed drifts by up
        # to 2x within minutes, and SMPLify's small products drift more than the flow's.
        before = smplify_clock() if m != SMPLIFY else None
        # Warm-up right before the timings: the first fit after one of the other method pays
        # for its first iterations again (up to a second measured at B = 1, on the CPU).
        run_fit(m, head, context, kp, prior, args, 2)
        repeats = args.smplify_repeats if m == SMPLIFY else args.repeats
        runs = [run_fit(m, head, context, kp, prior, args, args.iters) for _ in range(repeats)]
        trace: list[tuple[float, float]] = []
        counter = RowCounter(head)  # the traced run's evaluations (all runs are alike)
        traced, traced_seconds = run_fit(m, head, context, kp, prior, args, args.iters, trace,
                                         counter)
        counter.close()
        adjacent = [before, smplify_clock()] if before is not None else []
        fit = runs[0][0] if runs else traced
        seconds = median([t for _, t in runs]) if runs else traced_seconds
        final = fit.keypoint_energy.mean().item()
        if m == SMPLIFY:
            smplify_final, smplify_seconds = final, seconds
        assert smplify_final is not None and smplify_seconds is not None
        own = first_reach(trace, final * (1 + args.within))
        reach = first_reach(trace, smplify_final * (1 + args.within))
        denominator = sum(adjacent) / 2 if adjacent else smplify_seconds
        joints = fit.outputs["joints_mm"]
        rows.append({
            "method": m, "batch": len(context), "seconds_converge": seconds,
            "seconds_converge_runs": [t for _, t in runs],
            "iterations": int(fit.iterations.max()),
            "mean_iterations": fit.iterations.float().mean().item(),
            "converged": fit.converged.float().mean().item(),
            "iterations_per_s": int(fit.iterations.max()) / seconds,
            "flow_calls": counter.calls if m != SMPLIFY else 0,
            "flow_rows": counter.rows if m != SMPLIFY else 0,
            "final_keypoint_energy": final,
            "final_objective": fit.objective.mean().item(),
            "mpjpe_mm": None if truth is None else mpjpe(joints, truth).mean().item(),
            "pa_mpjpe_mm": None if truth is None else pa_mpjpe(joints, truth).mean().item(),
            "iterations_to_own_final": own[0] if own else None,
            "seconds_to_own_final": own[1] if own else None,
            "smplify_final_keypoint_energy": smplify_final,
            "iterations_to_smplify_final": reach[0] if reach else None,
            "seconds_to_smplify_final": reach[1] if reach else None,
            "smplify_seconds_adjacent": adjacent,
            "smplify_final_over_smplify_converge":
                reach[1] / denominator if reach else None,
            "smplify_final_over_first_smplify_converge":
                reach[1] / smplify_seconds if reach else None,
            "trace_seconds_converge": traced_seconds,
            "trace_seconds_keypoint_energy": [[round(t, 4), e] for t, e in trace],
        })
        print(table_row(rows[-1] | {"method": m + label}), flush=True)
    return rows


def profile(args: argparse.Namespace, prior: nn.Module, device: torch.device,
            iterations: int = 10) -> None:
    """Where a fit's time goes: ``iterations`` L-BFGS iterations of SMPLify and of each lever
    under ``torch.profiler``, the top operators by self CPU time, kernel launches and host
    syncs."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda"
                                           else [])
    for batch in args.batch:
        problem = (checkpoint_problem(args.checkpoint, batch, device) if args.checkpoint
                   else untrained_problem(batch, device))
        for m in (SMPLIFY, *args.levers):
            run_fit(m, *problem[:3], prior, args, 2)
            with torch_profile(activities=activities) as prof:
                fit, seconds = run_fit(m, *problem[:3], prior, args, iterations)
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


def _fmt(value: float | None, spec: str = ".2f") -> str:
    return "–" if value is None else format(value, spec)


def _reached(row: dict[str, Any], level: str) -> str:
    seconds = row[f"seconds_to_{level}"]
    return "not reached" if seconds is None else (
        f"{seconds:.3f} ({row[f'iterations_to_{level}']} it)")


HEADER = ("| B | method | converge (s) | iterations | flow calls / rows | final E_J | "
          "MPJPE / PA-MPJPE (mm) | to SMPLify's final E_J (s) | ÷ SMPLify converge | "
          "to own final E_J (s) |\n|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|")


def table_row(row: dict[str, Any]) -> str:
    calls = ("–" if row["method"].startswith(SMPLIFY)
             else f"{row['flow_calls']} / {row['flow_rows']}")
    return (f"| {row['batch']} | {row['method']} | {row['seconds_converge']:.3f} "
            f"| {row['iterations']} | {calls} | {row['final_keypoint_energy']:.2e} "
            f"| {_fmt(row['mpjpe_mm'], '.1f')} / {_fmt(row['pa_mpjpe_mm'], '.1f')} "
            f"| {_reached(row, 'smplify_final')} "
            f"| {_fmt(row['smplify_final_over_smplify_converge'])} "
            f"| {_reached(row, 'own_final')} |")


def summary(results: list[dict[str, Any]]) -> str:
    """Per batch size and method over the seeds: the median ratio of the time to SMPLify's
    final E_J, how many seeds met the goal, and the final objective and errors (a fit from
    the mode ends in another minimum on some seeds, so the mean alone misleads)."""
    lines = ["| B | method | seeds | ÷ SMPLify converge, median (min–max) | ≤ ⅓ | "
             "final objective, median / mean | mean MPJPE / PA-MPJPE (mm) |",
             "|---:|---|---:|---:|---:|---:|---:|"]
    keys = dict.fromkeys((r["batch"], r["method"]) for r in results)
    for batch, method in keys:
        rows = [r for r in results if (r["batch"], r["method"]) == (batch, method)]
        ratios = [r["smplify_final_over_smplify_converge"] for r in rows]
        reached = [v for v in ratios if v is not None]
        spread = (f"{median(reached):.2f} ({min(reached):.2f}–{max(reached):.2f})"
                  if reached else "not reached")
        met = sum(v <= 1 / 3 for v in reached)

        def mean(key: str, spec: str = ".1f", rows: list[dict[str, Any]] = rows) -> str:
            values = [r[key] for r in rows if r[key] is not None]
            return _fmt(sum(values) / len(values) if values else None, spec)

        lines.append(f"| {batch} | {method} | {len(rows)} | {spread} | {met}/{len(rows)} | "
                     f"{median([r['final_objective'] for r in rows]):.2f} / "
                     f"{mean('final_objective', '.2f')} | {mean('mpjpe_mm')} / "
                     f"{mean('pa_mpjpe_mm')} |")
    return "\n".join(lines)


def load() -> str:
    """The 1-, 5- and 15-minute load averages, for the report."""
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", default=None, help="a trained mesh model (default: "
                   "paper-sized untrained model, keypoints drawn from it)")
    p.add_argument("--batch", type=lambda s: [int(v) for v in s.split(",")], default=[1, 64])
    p.add_argument("--levers", type=lambda s: s.split(","),
                   default=["reference", "cache", "cache+fixed", "cache+bf16"],
                   help=f"settings of the learned fit, comma-separated; each one of "
                   f"{sorted(LEVERS)} or several joined by '+'")
    p.add_argument("--iters", type=int, default=500, help="iteration cap of a fit")
    p.add_argument("--lm-iters", type=int, default=5,
                   help="Levenberg–Marquardt iterations before L-BFGS (levers lm, lmbf16)")
    p.add_argument("--tol", type=float, default=1e-7, help="stopping rule (relative change)")
    p.add_argument("--keypoint-weight", type=float, default=1000.0, help="λ_J")
    p.add_argument("--sigma", type=float, default=0.1, help="Geman–McClure scale")
    p.add_argument("--within", type=float, default=0.01,
                   help="'reached' = mean E_J within this fraction of the level")
    p.add_argument("--repeats", type=int, default=1,
                   help="untraced timings per fit (median); 0: time the traced run only")
    p.add_argument("--seeds", type=int, default=1,
                   help="problems per batch size (model, contexts and keypoints drawn with "
                   "seeds 0, 1, ...), summarized by the median ratio and mean errors")
    p.add_argument("--smplify-repeats", type=int, default=3,
                   help="converge runs of SMPLify for its own row (median); the levers' "
                   "ratios are to SMPLify timed right before and after each")
    p.add_argument("--gmm-components", type=int, default=8)
    p.add_argument("--gmm-samples", type=int, default=20000,
                   help="pose-generator samples the SMPLify GMM is fitted to")
    p.add_argument("--profile", action="store_true",
                   help="profile 10 iterations of each method instead of timing")
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads (torch.set_num_threads; default: torch's); on a shared "
                   "CPU 1 keeps timings from stalling on a busy core")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--json", default=None, help="default benchmarks/results/fitting_<dev>.json")
    args = p.parse_args(argv)
    for name in args.levers:
        lever_settings(name)
    for name in ("repeats", "smplify_repeats"):
        if getattr(args, name) < 0:
            raise SystemExit(f"--{name.replace('_', '-')}: expected a count >= 0")
    if args.seeds < 1 or (args.seeds > 1 and args.checkpoint):
        raise SystemExit("--seeds: expected a count >= 1 (1 with --checkpoint: its test "
                         "images are one problem)")
    device = torch.device(args.device)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    set_finite_checks(False)
    info = machine() | {"device": str(device), "load_before": load(),
                        "started": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
    print(" | ".join(f"{k}: {v}" for k, v in info.items()))
    prior = pose_prior(args.gmm_components, args.gmm_samples).to(device)

    if args.profile:
        profile(args, prior, device)
        return
    results = []
    print("\n" + HEADER)
    for batch in args.batch:
        for seed in range(args.seeds):
            if args.checkpoint:
                problem = checkpoint_problem(args.checkpoint, batch, device)
            else:
                problem = untrained_problem(batch, device, seed=seed)
            label = f" (seed {seed})" if args.seeds > 1 else ""
            results += [r | {"seed": seed} for r in measure(problem, prior, args, label)]
    if args.seeds > 1:
        print("\n" + summary(results))
    info["load_after"] = load()
    info["finished"] = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    print(f"\nload average (1, 5, 15 min) before: {info['load_before']}, after: "
          f"{info['load_after']}")

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
