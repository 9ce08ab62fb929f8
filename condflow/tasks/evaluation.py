"""The evaluation shared by the tasks: one loop over the test set (:func:`evaluate_head`),
min-of-n as the paper measures it, and what the predicted uncertainty is worth.

Per test batch, :meth:`SampleEvaluation.add` draws ``max(num_samples)`` samples per example
in chunks (memory stays bounded for n = 4096) and keeps, per example, the min-of-n errors,
the mode's error, the predicted spread (mean distance of the first ``uncertainty_samples``
samples from the mode, per joint) and −log p(mode | c); the region coverage of those
samples is accumulated. :meth:`SampleEvaluation.metrics` reduces them:

- ``min_of_<n>/<metric>``: mean over examples of the min over the first n samples;
- ``spearman/spread_vs_error``: rank correlation over examples between predicted spread
  and the mode's MPJPE (positive: the model knows when it is wrong);
- ``spearman/neg_mode_log_prob_vs_error``: the same for −log p(mode | c), only when the
  flow's volume depends on c (otherwise it is one number for every input);
- ``mode_log_prob/std``: its spread over the test set (0 up to rounding for ProHMR's
  blocks);
- ``calibration/coverage``: fraction of ground-truth joints inside the per-joint q-regions
  of the samples, for ``calibration/levels`` q (see :func:`condflow.metrics.region_coverage`).

:func:`evaluate_head` is the one evaluation loop of every task, through the head interface
(:class:`~condflow.heads.base.Head`): the task says, in a :class:`Measurement`, where the
inputs and targets are in a batch, which joints are measured, and any terms of its own.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from condflow._checks import check_int, is_int_at_least
from condflow._progress import progress
from condflow.heads.base import Head, Prediction
from condflow.metrics import (
    CALIBRATION_LEVELS,
    min_of_n,
    mpjpe,
    pa_mpjpe,
    region_coverage,
    sample_errors,
    sample_spread,
    spearman,
)
from condflow.tasks.base import to_device

__all__ = [
    "EvalSettings",
    "Measurement",
    "SampleEvaluation",
    "evaluate_head",
    "lifting_table",
    "mesh_table",
    "uncertainty_lines",
]


class SampleEvaluation:
    """Accumulates sample-based metrics over test batches (see the module docstring).

    Args:
        num_samples: the n of min-of-n (e.g. ``[1, 5, 10, 25, 100, 4096]``).
        uncertainty_samples: how many of the first samples give the spread and coverage.
        chunk: samples drawn and scored at once.
        root_index: joint MPJPE is aligned at (``None``: joints as given).
        region_joints: joints scored by the coverage (leave out joints fixed by
            construction, e.g. a root at the origin); ``None``: all.
        levels: the calibration levels q.
    """

    def __init__(
        self,
        num_samples: Sequence[int],
        uncertainty_samples: int = 100,
        chunk: int = 64,
        root_index: int | None = 0,
        region_joints: Sequence[int] | None = None,
        levels: Sequence[float] = CALIBRATION_LEVELS,
    ) -> None:
        ns = list(num_samples)
        if not ns or not all(is_int_at_least(n, 1) for n in ns):
            raise ValueError(f"eval.num_samples: expected integers >= 1, got {ns!r}")
        check_int("eval.uncertainty_samples", uncertainty_samples, 2)
        self.ns, self.n_max = ns, max(ns)
        self.uncertainty_samples = min(uncertainty_samples, self.n_max)
        self.chunk, self.root_index = chunk, root_index
        self.region_joints = None if region_joints is None else list(region_joints)
        self.levels = tuple(levels)
        self.per_example: dict[str, list[Tensor]] = {}
        self.coverage_sum = torch.zeros(len(self.levels), dtype=torch.float64)
        self.count = 0

    def _keep(self, name: str, value: Tensor) -> None:
        self.per_example.setdefault(name, []).append(value.detach().double().cpu())

    def add(
        self,
        draw: Callable[[int], Tensor],
        gt: Tensor,
        mode_error: Tensor,
        mode: Tensor,
        mode_log_prob: Tensor | None,
    ) -> None:
        """One batch: ``draw(k) -> [B, k, J, 3]`` new samples (mm), ``gt``/``mode``
        ``[B, J, 3]`` (mm), ``mode_error`` ``[B]`` (mm), ``mode_log_prob`` ``[B]`` or None."""
        kept: list[Tensor] = []

        def keeping(k: int) -> Tensor:
            samples = draw(k)
            if sum(s.shape[1] for s in kept) < self.uncertainty_samples:
                kept.append(samples)
            return samples

        errors = sample_errors(keeping, gt, self.n_max, root_index=self.root_index,
                               chunk=self.chunk)
        for metric, err in errors.items():
            for n in self.ns:
                self._keep(f"min_of_{n}/{metric}", min_of_n(err[:, :n]))
        first = torch.cat(kept, 1)[:, : self.uncertainty_samples]
        self._keep("mode_error", mode_error)
        self._keep("spread", sample_spread(first, mode))
        if mode_log_prob is not None:
            self._keep("mode_log_prob", mode_log_prob)
        joints = self.region_joints
        region_s = first if joints is None else first[:, :, joints]
        region_gt = gt if joints is None else gt[:, joints]
        b = gt.shape[0]
        self.coverage_sum += region_coverage(region_s, region_gt, self.levels).cpu() * b
        self.count += b

    def metrics(self, volume_varies: bool) -> dict[str, Any]:
        """The reduced metrics; ``volume_varies``: whether log p(mode | c) can differ
        between inputs (the flow's ``volume_depends_on_context``)."""
        cat = {k: torch.cat(v) for k, v in self.per_example.items()}
        out: dict[str, Any] = {}
        for n in self.ns:
            for metric in ("mpjpe", "pa_mpjpe"):
                out[f"min_of_{n}/{metric}"] = cat[f"min_of_{n}/{metric}"].mean().item()
        err = cat["mode_error"]
        out["spread_mm"] = cat["spread"].mean().item()
        out["spearman/spread_vs_error"] = spearman(cat["spread"], err)
        if "mode_log_prob" in cat:
            out["mode_log_prob/mean"] = cat["mode_log_prob"].mean().item()
            out["mode_log_prob/std"] = cat["mode_log_prob"].std().item()
            if volume_varies:
                out["spearman/neg_mode_log_prob_vs_error"] = spearman(-cat["mode_log_prob"], err)
        out["calibration/levels"] = list(self.levels)
        out["calibration/coverage"] = (self.coverage_sum / max(self.count, 1)).tolist()
        return out


def _joints_mm(prediction: Prediction) -> Tensor:
    return prediction.joints_mm


@dataclass(frozen=True)
class Measurement:
    """What differs between tasks in :func:`evaluate_head`.

    Attributes:
        name: the task's name (progress bar).
        inputs: the batch key of the encoder's inputs.
        targets: ``targets(model, batch) -> (target, gt)``: the ground truth in the output
            space's native representation ``[B, *native]`` (what ``model.log_prob`` scores)
            and the measured ground-truth joints ``[B, J, 3]`` (mm).
        joints: a prediction ``[B, n, ...]`` → its measured joints ``[B, n, J, 3]`` (mm);
            default ``prediction.joints_mm``.
        root_index: the joint MPJPE aligns at (``None``: the joints as given).
        region_joints: the joints the calibration coverage scores (``None``: all).
        extra_terms: ``extra_terms(model, batch, mode, target, gt) -> {name: [B]}``: terms of
            the task's own per example (``mode`` is ``model.mode(c)``, ``[B, 1, ...]``),
            averaged over the test set like the mode's errors.
    """

    name: str
    inputs: str
    targets: Callable[[Head, dict[str, Tensor]], tuple[Tensor, Tensor]]
    joints: Callable[[Prediction], Tensor] = _joints_mm
    root_index: int | None = 0
    region_joints: Sequence[int] | None = None
    extra_terms: Callable[
        [Head, dict[str, Tensor], Prediction, Tensor, Tensor], dict[str, Tensor]
    ] | None = None


class EvalSettings(Protocol):
    """The evaluation settings every task's ``eval`` section has."""

    num_samples: list[int]
    batch_size: int
    uncertainty_samples: int
    sample_chunk: int


@torch.no_grad()
def evaluate_head(
    model: Head,
    data: Dataset,
    device: torch.device,
    measurement: Measurement,
    settings: EvalSettings,
    seed: int,
) -> dict[str, Any]:
    """The metrics of ``model`` on ``data`` (batches of ``settings.batch_size``).

    Every model: the mode's ``mode/mpjpe`` and ``mode/pa_mpjpe`` (mm, on the joints of
    ``measurement``) and ``measurement.extra_terms``, each the mean over examples. A
    probabilistic model (``model.probabilistic``) also: the test NLL ``nll`` (nats, −log p of
    the native target) and the sample-based metrics of :class:`SampleEvaluation` (samples
    drawn from a generator seeded with ``seed``); ``examples`` is the number of examples.
    """
    model.eval()
    gen = torch.Generator(device=device).manual_seed(seed)
    m = measurement
    samples_eval = SampleEvaluation(settings.num_samples, settings.uncertainty_samples,
                                    settings.sample_chunk, root_index=m.root_index,
                                    region_joints=m.region_joints)
    sums: dict[str, float] = {}
    count = 0
    batches = DataLoader(data, batch_size=settings.batch_size)
    for raw in progress(batches, desc=f"eval {m.name}", unit="batch"):
        batch = to_device(raw, device)
        target, gt = m.targets(model, batch)
        b = gt.shape[0]
        c = model.context(batch[m.inputs])
        mode = model.mode(c)
        pred = m.joints(mode)[:, 0]
        terms = {"mode/mpjpe": mpjpe(pred, gt, m.root_index), "mode/pa_mpjpe": pa_mpjpe(pred, gt)}
        if model.probabilistic:
            terms["nll"] = -model.log_prob(target, c)
            # log p(mode | c) from the flow's own forward pass, set by every probabilistic mode.
            mode_log_prob = mode.outputs()["log_prob"][:, 0]

            def draw(k: int, c: Tensor = c) -> Tensor:
                return m.joints(model.sample(k, c, generator=gen))

            samples_eval.add(draw, gt, terms["mode/mpjpe"], pred, mode_log_prob)
        if m.extra_terms is not None:
            terms.update(m.extra_terms(model, batch, mode, target, gt))
        for k, v in terms.items():
            sums[k] = sums.get(k, 0.0) + v.mean().item() * b
        count += b
    metrics: dict[str, Any] = {k: v / count for k, v in sums.items()}
    if model.probabilistic:
        metrics.update(samples_eval.metrics(model.volume_depends_on_context))
    metrics["examples"] = count
    return metrics


def uncertainty_lines(metrics: dict[str, Any]) -> list[str]:
    """Markdown lines summarizing the uncertainty metrics of a task's evaluation."""
    lines = []
    if "spearman/spread_vs_error" in metrics:
        line = (f"Spearman ρ over test examples, predicted spread vs mode MPJPE: "
                f"{metrics['spearman/spread_vs_error']:.3f}")
        if "spearman/neg_mode_log_prob_vs_error" in metrics:
            line += (f"; −log p(mode | c) vs mode MPJPE: "
                     f"{metrics['spearman/neg_mode_log_prob_vs_error']:.3f}")
        if "mode_log_prob/std" in metrics:
            std = metrics["mode_log_prob/std"]
            line += f" (std of log p(mode | c) over the test set {std:.3g})"
        lines.append(line)
    if "calibration/coverage" in metrics:
        pairs = zip(metrics["calibration/levels"], metrics["calibration/coverage"], strict=True)
        lines.append("Coverage of per-joint q-regions (q: fraction of GT joints inside): "
                     + ", ".join(f"{q:.1f}: {c:.3f}" for q, c in pairs))
    return lines


def lifting_table(metrics: dict[str, Any], num_samples: list[int]) -> str:
    """A markdown table: rows mode and min-of-n, columns MPJPE and PA-MPJPE (mm)."""
    rows = ["| prediction | MPJPE (mm) | PA-MPJPE (mm) |", "|---|---:|---:|"]
    names = ["mode"] + [f"min_of_{n}" for n in num_samples]
    for name in names:
        if f"{name}/mpjpe" in metrics:
            label = name.replace("_", "-")
            rows.append(
                f"| {label} | {metrics[f'{name}/mpjpe']:.1f} | {metrics[f'{name}/pa_mpjpe']:.1f} |"
            )
    if "nll" in metrics and math.isfinite(metrics["nll"]):
        rows.append(
            f"\ntest NLL {metrics['nll']:.2f} nats (joints in mm), {metrics['examples']} examples"
        )
    rows += uncertainty_lines(metrics)
    return "\n".join(rows)


def mesh_table(metrics: dict[str, Any], num_samples: list[int]) -> str:
    """A markdown table: rows mode (and its pose with the true shape), min-of-n and the
    mean-pose baseline; columns MPJPE and PA-MPJPE on the 14 LSP joints (mm)."""
    rows = ["| prediction | MPJPE (mm) | PA-MPJPE (mm) |", "|---|---:|---:|"]
    labels = {"mode": "mode", "mode_gt_shape": "mode pose with GT shape",
              "mean_pose": "mean-pose baseline (GT orientation)"}
    names = ["mode", "mode_gt_shape"] + [f"min_of_{n}" for n in num_samples] + ["mean_pose"]
    for name in names:
        if f"{name}/mpjpe" in metrics:
            label = labels.get(name, name.replace("_", "-"))
            rows.append(
                f"| {label} | {metrics[f'{name}/mpjpe']:.1f} | {metrics[f'{name}/pa_mpjpe']:.1f} |"
            )
    notes = []
    if "nll" in metrics and math.isfinite(metrics["nll"]):
        notes.append(f"test NLL {metrics['nll']:.1f} nats (144-d 6D pose)")
    if "mode/keypoints_2d_px" in metrics:
        notes.append(f"mode 2D keypoint error {metrics['mode/keypoints_2d_px']:.2f} px")
    if "examples" in metrics:
        notes.append(f"{metrics['examples']} test examples")
    if notes:
        rows.append("\n" + ", ".join(notes))
    rows += uncertainty_lines(metrics)
    return "\n".join(rows)
