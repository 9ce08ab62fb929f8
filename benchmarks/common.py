"""Timing helpers: interleaved repeats, medians, the matmul rate (roofline), FLOP counts."""

from __future__ import annotations

import contextlib
import os
import platform
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_interleaved(fns: dict[str, Callable[[], object]], device: torch.device,
                     repeats: int = 5, warmup: int = 1,
                     budget_s: float | None = None) -> dict[str, list[float]]:
    """Seconds per call of each ``fn``, run round-robin (a, b, c, a, b, c, …) so that
    background load and frequency drift hit every contender alike. Stops early (after at
    least 3 rounds) once ``budget_s`` is spent."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    sync(device)
    times: dict[str, list[float]] = {name: [] for name in fns}
    start = time.perf_counter()
    for i in range(repeats):
        for name, fn in fns.items():
            sync(device)
            t0 = time.perf_counter()
            fn()
            sync(device)
            times[name].append(time.perf_counter() - t0)
        if budget_s is not None and i >= 2 and time.perf_counter() - start > budget_s:
            break
    return times


@contextlib.contextmanager
def path_context(path: str, device: torch.device) -> Iterator[None]:
    """Inference mode, bf16 autocast for the ``*bf16`` paths and TF32 (matmul and cuDNN)
    for the ``tf32`` path only; the TF32 flags are restored afterwards."""
    tf32 = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = path == "tf32"
    try:
        with torch.inference_mode(), torch.autocast(device.type, torch.bfloat16,
                                                    enabled=path.endswith("bf16")):
            yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = tf32


def compile_for(fn: Callable, device: torch.device) -> Callable:
    """``torch.compile`` for fixed shapes; on CUDA with CUDA graphs ("reduce-overhead")."""
    return torch.compile(fn, mode="reduce-overhead" if device.type == "cuda" else None,
                         dynamic=False)


def median(xs: list[float]) -> float:
    return statistics.median(xs)


def matmul_rate(rows: int, hidden: int, device: torch.device, dtype: torch.dtype,
                repeats: int = 5) -> float:
    """Achieved FLOP/s of ``torch.mm`` on ``[rows, hidden] x [hidden, hidden]``, the shape that
    dominates the coupling nets: the roofline the flow is measured against."""
    a = torch.randn(rows, hidden, device=device, dtype=dtype)
    b = torch.randn(hidden, hidden, device=device, dtype=dtype)
    out = torch.empty(rows, hidden, device=device, dtype=dtype)
    calls = max(1, int(2e10 // (2 * rows * hidden * hidden)))  # ≈ 20 GFLOP per timing
    def run() -> None:
        for _ in range(calls):
            torch.mm(a, b, out=out)
    t = median(time_interleaved({"mm": run}, device, repeats=repeats)["mm"])
    return 2 * rows * hidden * hidden * calls / t


def init_actnorms_on_poses(head: torch.nn.Module, count: int = 1024, seed: int = 0) -> None:
    """Data-dependent ActNorm init of a ProHMR head's flow on generated poses (as its first
    training step does), so that an untrained head's mode f(0; c) is near the mean pose
    rather than near the degenerate 6D vector 0."""
    from condflow.body.poses import PoseGenerator

    poses = PoseGenerator(seed=seed).sample(count)
    pose_6d = head.space.from_axis_angle(poses.global_orient, poses.body_pose)
    was_training = head.training
    head.train()
    with torch.no_grad():
        head.flow.log_prob(pose_6d, torch.randn(count, head.flow.context_features))
    head.train(was_training)


def rel_err(a: torch.Tensor, ref: torch.Tensor) -> float:
    """max |a − ref| / max |ref|, computed in float64."""
    a, ref = a.double(), ref.double()
    return ((a - ref).abs().max() / ref.abs().max().clamp_min(1e-30)).item()


@dataclass(frozen=True)
class FlowShape:
    """The architecture whose matmul FLOPs are counted."""

    features: int
    context: int
    blocks: int = 4
    hidden: int = 1024
    residual_blocks: int = 2

    def flops(self, context_rows: int, rows: int) -> float:
        """Matmul FLOPs (2·M·N·K per linear) of one pass of ``rows`` samples. The context part
        of each coupling's input layer runs on ``context_rows`` rows: once per context row
        when shared (condflow; once per chunk when sampling is chunked), once per sample
        otherwise (nflows, zuko)."""
        d, h = self.features, self.hidden
        per_row = (2 * d * d  # LU linear
                   + 2 * (d // 2) * h + 2 * h * (d - d // 2)  # coupling input (z part), output
                   + self.residual_blocks * 2 * 2 * h * h)
        return self.blocks * (rows * per_row + context_rows * 2 * self.context * h)


def machine() -> dict[str, str]:
    """Device, CPU model, cores and versions, for the report."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if "model name" in line)
    except (OSError, StopIteration):
        pass
    info = {"cpu": cpu, "cores": str(os.cpu_count()), "threads": str(torch.get_num_threads()),
            "torch": torch.__version__, "date": time.strftime("%Y-%m-%d")}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
    return info
