"""Skeleton pictures: 2D inputs, 3D ground truth, modes and samples."""

from __future__ import annotations

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
    k = len(keypoints_2d)
    fig = plt.figure(figsize=(12, 3.2 * k))
    cmap = plt.get_cmap("Blues")
    for i in range(k):
        ax = fig.add_subplot(k, 4, 4 * i + 1)
        kp = keypoints_2d[i].cpu()
        vis = kp[:, 2] > 0
        for a, b in _bones(H36M_16):
            if vis[a] and vis[b]:
                ax.plot([kp[a, 0], kp[b, 0]], [kp[a, 1], kp[b, 1]], "k-")
        ax.scatter(kp[vis, 0], kp[vis, 1], s=8, c="k")
        ax.set_xlim(-1, 1)
        ax.set_ylim(1, -1)
        ax.set_aspect("equal")
        ax.set_title("2D input (occluded joints hidden)", fontsize=8)
        panels = [("ground truth", joints_3d[i], "green"), ("mode f(0; c)", mode[i], "red")]
        for col, (title, joints, color) in enumerate(panels, start=2):
            ax3 = fig.add_subplot(k, 4, 4 * i + col, projection="3d")
            _draw_3d(ax3, joints, H36M_17, color)
            ax3.set_title(title, fontsize=8)
        ax3 = fig.add_subplot(k, 4, 4 * i + 4, projection="3d")
        if samples is not None:
            lp = log_prob[i]
            shade = (lp - lp.min()) / (lp.max() - lp.min() + 1e-9)
            for s in torch.argsort(lp):
                _draw_3d(ax3, samples[i, s], H36M_17, cmap(0.3 + 0.7 * float(shade[s])), lw=1.2)
            _draw_3d(ax3, joints_3d[i], H36M_17, "green", alpha=0.6, lw=1.0)
            ax3.set_title(f"{num_samples} samples (darker = higher log p), GT green", fontsize=8)
        for ax3 in fig.axes[-3:]:
            ax3.set_xlim(-900, 900)
            ax3.set_ylim(-900, 900)
            ax3.set_zlim(-900, 900)
            ax3.set_xticklabels([])
            ax3.set_yticklabels([])
            ax3.set_zticklabels([])
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
