"""Training curves: the terms of a training run's ``log.csv`` against the step."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from condflow.viz import agg_figure

__all__ = ["plot_training_log", "read_training_log", "training_log_figure"]

#: Columns of ``log.csv`` that are bookkeeping, not curves of their own (``lr`` gets one).
_NOT_TERMS = ("step", "seconds")


def read_training_log(path: str | Path) -> dict[str, np.ndarray]:
    """``{column: [rows]}`` of a training ``log.csv`` (header ``step, lr, seconds, loss, ...``);
    empty cells become NaN."""
    path = Path(path)
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows or "step" not in rows[0]:
        raise ValueError(f"{path}: expected a training log with a header and rows, starting "
                         "with a 'step' column")
    return {k: np.array([float(r[k]) if r.get(k) not in (None, "") else math.nan
                         for r in rows]) for k in rows[0]}


def training_log_figure(log: dict[str, np.ndarray], title: str | None = None) -> Figure:
    """One panel per logged term (``loss`` first, then the others, then the learning rate),
    against the optimizer step; a term spanning more than two decades of positive values
    is drawn on a log scale."""
    terms = [k for k in log if k not in _NOT_TERMS and k != "lr"]
    terms = sorted(terms, key=lambda k: k != "loss") + (["lr"] if "lr" in log else [])
    cols = min(3, len(terms))
    rows = math.ceil(len(terms) / cols)
    fig = agg_figure(figsize=(3.6 * cols, 2.6 * rows + 0.3), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False)
    step = log["step"]
    for ax, name in zip(axes.flat, terms, strict=False):
        y = log[name]
        ax.plot(step, y, marker="o" if len(y) < 3 else None, lw=1.3,
                color="tab:gray" if name == "lr" else "tab:blue")
        finite = y[np.isfinite(y)]
        if len(finite) and finite.min() > 0 and finite.max() / finite.min() > 100:
            ax.set_yscale("log")
        ax.set_title("learning rate" if name == "lr" else name, fontsize=9)
        ax.set_xlabel("step", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3, lw=0.5)
    for ax in list(axes.flat)[len(terms):]:
        ax.set_visible(False)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def plot_training_log(csv_path: str | Path, png_path: str | Path,
                      title: str | None = None) -> Path:
    """:func:`training_log_figure` of ``csv_path`` written to ``png_path``; returns it."""
    fig = training_log_figure(read_training_log(csv_path), title)
    fig.savefig(png_path, dpi=90)
    return Path(png_path)
