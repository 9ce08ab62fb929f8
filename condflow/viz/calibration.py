"""Reliability diagram of per-joint sample regions (:func:`condflow.metrics.region_coverage`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from condflow.viz import agg_figure

__all__ = ["plot_reliability"]


def plot_reliability(
    curves: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    path: str | Path,
    title: str = "Calibration of per-joint sample regions",
) -> None:
    """Observed coverage against the nominal level q, one line per model, and the diagonal
    of a calibrated model. Below the diagonal: over-confident (regions too small).

    Args:
        curves: ``{label: (levels, coverage)}``, each a sequence of numbers in [0, 1].
        path: the PNG to write.
        title: the figure title.
    """
    if not curves:
        raise ValueError("curves: expected at least one (levels, coverage) curve")
    fig = agg_figure(figsize=(4.6, 4.6), dpi=110)
    ax = fig.subplots()
    ax.plot([0, 1], [0, 1], color="0.6", ls="--", lw=1, label="calibrated")
    for label, (levels, coverage) in curves.items():
        if len(levels) != len(coverage):
            raise ValueError(
                f"curves[{label!r}]: {len(levels)} levels but {len(coverage)} coverages"
            )
        ax.plot(list(levels), list(coverage), marker="o", ms=4, lw=1.5, label=label)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_aspect("equal")
    ax.set_xlabel("nominal level q (fraction of samples in the region)")
    ax.set_ylabel("fraction of ground-truth joints inside")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
