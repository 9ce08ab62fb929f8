"""Skeleton pictures: 2D inputs, 3D ground truth, modes and samples."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import torch
from torch import Tensor, nn

from condflow.spaces.skeleton import H36M_16, H36M_17, SkeletonLayout


def _bones(layout: SkeletonLayout) -> list[tuple[int, int]]:
    return [(j, p) for j, p in enumerate(layout.parents) if p >= 0]


def _draw_3d(ax, joints: Tensor, layout: SkeletonLayout, color, alpha=1.0, lw=2.0) -> None:  # noqa: ANN001
    # Camera frame (x right, y down, z forward) shown with z as depth and -y up.
    j = joints.detach().cpu()
    for a, b in _bones(layout):
        ax.plot(
            [j[a, 0], j[b, 0]],
            [j[a, 2], j[b, 2]],
            [-j[a, 1], -j[b, 1]],
            color=color,
            alpha=alpha,
            lw=lw,
        )


def _draw_2d(ax, keypoints: Tensor) -> None:  # noqa: ANN001
    kp = keypoints.detach().cpu()
    vis = kp[:, 2] > 0
    for a, b in _bones(H36M_16):
        if vis[a] and vis[b]:
            ax.plot([kp[a, 0], kp[b, 0]], [kp[a, 1], kp[b, 1]], "k-")
    ax.scatter(kp[vis, 0], kp[vis, 1], s=8, c="k")
    # A square window around the visible joints; image y points down.
    shown = kp[vis, :2] if vis.any() else kp[:, :2]
    lo, hi = shown.min(0).values, shown.max(0).values
    centre, half = (lo + hi) / 2, 0.6 * float((hi - lo).max().clamp_min(1e-6))
    ax.set_xlim(float(centre[0]) - half, float(centre[0]) + half)
    ax.set_ylim(float(centre[1]) + half, float(centre[1]) - half)
    ax.set_aspect("equal")
    ax.locator_params(nbins=4)
    ax.set_title("2D input (hidden joints left out)", fontsize=8)


def plot_skeleton_rows(
    keypoints_2d: Tensor,
    mode: Tensor,
    path: str | Path,
    samples: Tensor | None = None,
    log_prob: Tensor | None = None,
    ground_truth: Tensor | None = None,
) -> None:
    """One row per example: the 2D input, the ground truth (if given), the mode, and the
    samples shaded by log-probability (darker = more likely; if given).

    Shapes: ``keypoints_2d [K, 16, 3]`` (x, y, confidence); ``mode``, ``ground_truth``
    ``[K, 17, 3]`` (mm); ``samples [K, n, 17, 3]``; ``log_prob [K, n]``.
    """
    k = len(keypoints_2d)
    panels = [("ground truth", ground_truth, "green"), ("mode f(0; c)", mode, "red")]
    panels = [p for p in panels if p[1] is not None]
    cols = 1 + len(panels) + (samples is not None)
    fig = plt.figure(figsize=(3 * cols, 3.2 * k))
    cmap = plt.get_cmap("Blues")
    for i in range(k):
        _draw_2d(fig.add_subplot(k, cols, cols * i + 1), keypoints_2d[i])
        axes = []
        for col, (title, joints, color) in enumerate(panels, start=2):
            axes.append(fig.add_subplot(k, cols, cols * i + col, projection="3d"))
            _draw_3d(axes[-1], joints[i], H36M_17, color)
            axes[-1].set_title(title, fontsize=8)
        if samples is not None:
            axes.append(fig.add_subplot(k, cols, cols * (i + 1), projection="3d"))
            title = f"{samples.shape[1]} samples"
            if log_prob is not None:
                lp = log_prob[i]
                shade = (lp - lp.min()) / (lp.max() - lp.min() + 1e-9)
                order, title = torch.argsort(lp), title + " (darker = higher log p)"
            else:
                shade, order = torch.ones(samples.shape[1]), range(samples.shape[1])
            for s in order:
                _draw_3d(axes[-1], samples[i, s], H36M_17, cmap(0.3 + 0.7 * float(shade[s])),
                         lw=1.2)
            if ground_truth is not None:
                _draw_3d(axes[-1], ground_truth[i], H36M_17, "green", alpha=0.6, lw=1.0)
                title += ", GT green"
            axes[-1].set_title(title, fontsize=8)
        for ax3 in axes:
            for lim in (ax3.set_xlim, ax3.set_ylim, ax3.set_zlim):
                lim(-900, 900)
            ax3.set_xticklabels([]), ax3.set_yticklabels([]), ax3.set_zticklabels([])
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def plot_lifting(
    model: nn.Module,
    keypoints_2d: Tensor,
    joints_3d: Tensor,
    path: str,
    num_samples: int = 10,
    seed: int = 0,
) -> None:
    """For each example: the 2D input, ground truth, mode, and ``num_samples`` samples shaded
    by log-probability (darker = more likely). ``keypoints_2d [K, 16, 3]``, ``joints_3d
    [K, 17, 3]`` (mm). A deterministic model shows its single prediction."""
    from condflow.heads.skeleton import SkeletonHead

    model.eval()
    with torch.no_grad():
        if isinstance(model, SkeletonHead):
            c = model.context(keypoints_2d)
            mode = model.mode(c)
            gen = torch.Generator(device=c.device).manual_seed(seed)
            samples, log_prob = model.sample_and_log_prob(num_samples, c, gen)
        else:
            mode, samples, log_prob = model(keypoints_2d), None, None
    plot_skeleton_rows(keypoints_2d, mode, path, samples, log_prob, joints_3d)
