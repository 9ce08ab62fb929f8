"""Skeleton pictures: the input (2D keypoints or an image crop), 3D ground truth, the point
prediction and samples.

Coordinates are the camera frame of the lifting task: x right, y down, z forward (depth),
root-relative, in millimetres. Every 3D skeleton is shown three ways, on the same
equal-aspect scale sized to the skeleton: an oblique 3D view, the **camera view** (x–y, what
the 2D input constrains) and the **side view** (z–y, where the depth ambiguity of lifting
shows). Limbs are coloured by side (left blue, right red, centre grey). Samples are drawn
faintly, coloured by their log-density (a colour bar per row), with the point prediction
and the ground truth (black, dashed) on top; ellipses in the camera and side views show
each joint's spread over the samples (2 standard deviations).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast, overload

import matplotlib
import numpy as np
import torch
from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.layout_engine import ConstrainedLayoutEngine
from matplotlib.lines import Line2D
from matplotlib.patches import Ellipse
from matplotlib.ticker import MaxNLocator
from mpl_toolkits.mplot3d.axes3d import Axes3D
from torch import Tensor

from condflow.heads.base import Head
from condflow.spaces.base import OutputSpace
from condflow.spaces.skeleton import H36M_16, H36M_17, SkeletonLayout
from condflow.viz import agg_figure
from condflow.viz.inputs import (
    LEFT_COLOR,
    RIGHT_COLOR,
    bone_colors,
    check_input_kind,
    check_inputs,
    draw_input,
    resolve_input_kind,
    square_window,
)

__all__ = [
    "LEFT_COLOR",
    "RIGHT_COLOR",
    "VIEWS",
    "bone_colors",
    "lifting_figure",
    "lifting_fit_figure",
    "lifting_model_figure",
    "plot_lifting",
    "plot_lifting_fit",
    "plot_skeleton_rows",
    "space_layout",
]

GT_STYLE: dict[str, Any] = {"color": "black", "ls": (0, (3, 2)), "lw": 1.3}
SAMPLE_CMAP = "viridis"
SPREAD_SD = 2.0  # ellipse half-axes, in standard deviations

#: The orthographic views: (title, horizontal axis, vertical axis, labels). Image y points
#: down, so the vertical axis is inverted wherever y is shown.
VIEWS: dict[str, tuple[str, int, int, str, str]] = {
    "camera": ("camera view", 0, 1, "x (mm)", "y, down (mm)"),
    "side": ("side view", 2, 1, "z, depth (mm)", "y, down (mm)"),
    "top": ("top view", 0, 2, "x (mm)", "z, depth (mm)"),
}


@overload
def _np(x: None) -> None: ...
@overload
def _np(x: Tensor | np.ndarray) -> np.ndarray: ...
@overload
def _np(x: Tensor | np.ndarray | None) -> np.ndarray | None: ...
def _np(x: Tensor | np.ndarray | None) -> np.ndarray | None:
    if x is None:
        return None
    return x.detach().cpu().double().numpy() if isinstance(x, Tensor) else np.asarray(x, float)


# -- drawing one skeleton ---------------------------------------------------------------------
def _draw(ax: Axes, joints: np.ndarray, layout: SkeletonLayout, view: str | None,
          color: str | tuple | None = None, **style: Any) -> None:
    """Bones of ``joints [J, 3]`` (mm) in an orthographic ``view`` or, with ``view=None``, in
    3D axes (x, z, −y). ``color=None`` colours bones by side."""
    for j, p, side_color in bone_colors(layout):
        c = side_color if color is None else color
        seg = joints[[p, j]]
        if view is None:
            ax.plot(seg[:, 0], seg[:, 2], -seg[:, 1], color=c, **style)
        else:
            _, h, v, _, _ = VIEWS[view]
            ax.plot(seg[:, h], seg[:, v], color=c, **style)


def _spread(ax: Axes, samples: np.ndarray, view: str) -> None:
    """Per-joint 2 s.d. ellipses of ``samples [n, J, 3]`` projected into ``view``."""
    _, h, v, _, _ = VIEWS[view]
    pts = samples[..., [h, v]]
    for j in range(pts.shape[1]):
        cov = np.cov(pts[:, j].T)
        if not np.all(np.isfinite(cov)) or cov.max() <= 1e-9:
            continue
        vals, vecs = np.linalg.eigh(cov)
        angle = np.degrees(np.arctan2(vecs[1, 1], vecs[0, 1]))
        w, hgt = 2 * SPREAD_SD * np.sqrt(np.maximum(vals[::-1], 0.0))
        ax.add_patch(Ellipse(tuple(pts[:, j].mean(0)), w, hgt, angle=angle, fill=False,
                             lw=0.6, ec="0.35", alpha=0.55))


def _frame(skeletons: list[np.ndarray], samples: np.ndarray | None) -> tuple[np.ndarray, float]:
    """Centre ``[3]`` and half-side (mm) of a cube holding the skeletons and, robustly, the
    samples (95 % of their joints), so the skeleton fills the box."""
    pts = np.concatenate([s.reshape(-1, 3) for s in skeletons])
    lo, hi = pts.min(0), pts.max(0)
    if samples is not None and len(samples) > 1:
        flat = samples.reshape(-1, 3)
        lo = np.minimum(lo, np.quantile(flat, 0.025, axis=0))
        hi = np.maximum(hi, np.quantile(flat, 0.975, axis=0))
    centre = (lo + hi) / 2
    return centre, 0.55 * max(float((hi - lo).max()), 1.0)


def _style_view(ax: Axes, view: str, centre: np.ndarray, half: float) -> None:
    title, h, v, xlabel, ylabel = VIEWS[view]
    ax.set_xlim(centre[h] - half, centre[h] + half)
    ax.set_ylim(centre[v] - half, centre[v] + half)
    if v == 1:  # image y points down
        ax.invert_yaxis()
    ax.set_aspect("equal")
    ax.set_xlabel(xlabel, fontsize=7)
    ax.set_ylabel(ylabel, fontsize=7, labelpad=1)
    ax.tick_params(labelsize=6)
    ax.locator_params(nbins=4)
    ax.grid(alpha=0.25, lw=0.5)


def _style_3d(ax: Axes3D, centre: np.ndarray, half: float) -> None:
    """Limits, labels and view of 3D axes (``add_subplot(projection="3d")``, which
    matplotlib's stubs type as 2D ``Axes``, hence the casts to ``Axes3D``)."""
    ax.set_xlim(centre[0] - half, centre[0] + half)
    ax.set_ylim(centre[2] - half, centre[2] + half)
    ax.set_zlim(-centre[1] - half, -centre[1] + half)
    ax.set_box_aspect((1, 1, 1), zoom=1.1)
    ax.set_xlabel("x (mm)", fontsize=7, labelpad=-4)
    ax.set_ylabel("z, depth (mm)", fontsize=7, labelpad=-4)
    ax.set_zlabel("−y, up (mm)", fontsize=7, labelpad=-4)
    ax.tick_params(labelsize=5, pad=-2)
    for axis in (ax.xaxis, ax.yaxis, ax.zaxis):
        axis.set_major_locator(MaxNLocator(3))
    ax.view_init(elev=15, azim=-60)


def _legend(fig: Figure, point_label: str, samples: bool, ground_truth: bool) -> None:
    handles: list[Artist] = [
        Line2D([], [], color=LEFT_COLOR, lw=2, label=f"{point_label}: left"),
        Line2D([], [], color=RIGHT_COLOR, lw=2, label=f"{point_label}: right")]
    if ground_truth:
        handles.append(Line2D([], [], **GT_STYLE, label="ground truth"))
    if samples:
        handles.append(Line2D([], [], color=matplotlib.colormaps[SAMPLE_CMAP](0.6), lw=1, alpha=0.6,
                              label="samples (colour: log p)"))
        handles.append(Ellipse((0, 0), 1, 1, fill=False, ec="0.35",
                               label=f"per-joint spread ({SPREAD_SD:g} s.d.)"))
    fig.legend(handles=handles, loc="outside upper center", ncol=len(handles), fontsize=8,
               frameon=False)


# -- lifting rows -----------------------------------------------------------------------------
def lifting_figure(
    inputs: Tensor,
    prediction: Tensor,
    samples: Tensor | None = None,
    log_prob: Tensor | None = None,
    ground_truth: Tensor | None = None,
    point_label: str = "mode f(0; c)",
    input_kind: str = "keypoints_2d",
    layout: SkeletonLayout = H36M_17,
) -> Figure:
    """One row per example: the input (:func:`~condflow.viz.inputs.draw_input`), then the 3D
    skeletons (bones of ``layout``) in an oblique view, the camera view and the side view,
    and (with ``log_prob``) a colour bar of log p.

    Shapes: ``inputs`` of ``input_kind``: ``"keypoints_2d"`` ``[K, J, 3]`` (normalized x, y;
    confidence; J = 16 or 24 draws bones) or ``"images"`` ``[K, 3, R, R]`` (ImageNet-normalized
    crops); ``prediction``, ``ground_truth`` ``[K, 17, 3]`` (mm, camera frame);
    ``samples [K, n, 17, 3]``; ``log_prob [K, n]`` (nats, over joints in mm). ``point_label``
    names the prediction (e.g. "mode f(0; c)" for a flow, "regression" for a deterministic
    model).
    """
    kind = check_input_kind(input_kind)
    inputs = check_inputs(inputs, kind)
    pred = _np(prediction)
    smp, lp, gt = _np(samples), _np(log_prob), _np(ground_truth)
    k = len(inputs)
    shaded = smp is not None and lp is not None
    widths = [1, 1.3, 1, 1] + ([0.05] if shaded else [])
    fig = agg_figure(figsize=(3.2 * 4.3 + 0.6 * shaded, 3.1 * k + 0.4), layout="constrained")
    # The engine of layout="constrained" (matplotlib's stubs return the base class).
    cast(ConstrainedLayoutEngine, fig.get_layout_engine()).set(wspace=0.06)
    grid = fig.add_gridspec(k, len(widths), width_ratios=widths)
    cmap = matplotlib.colormaps[SAMPLE_CMAP]
    for i in range(k):
        draw_input(fig.add_subplot(grid[i, 0]), inputs[i], kind,
                   "2D input (hidden joints left out)" if kind == "keypoints_2d"
                   else "input crop", layout=layout)
        ax3 = cast(Axes3D, fig.add_subplot(grid[i, 1], projection="3d"))
        views = {v: fig.add_subplot(grid[i, col]) for col, v in ((2, "camera"), (3, "side"))}
        shown = [pred[i]] + ([gt[i]] if gt is not None else [])
        centre, half = _frame(shown, None if smp is None else smp[i])
        norm = None
        if smp is not None:
            n = smp.shape[1]
            if lp is not None:  # shaded
                norm = Normalize(float(lp[i].min()), float(lp[i].max()))
                order = np.argsort(lp[i])  # most likely drawn last
            else:
                order = np.arange(n)
            alpha = float(np.clip(4.0 / n, 0.12, 0.5))
            for s in order:
                color = cmap(norm(lp[i, s])) if norm is not None and lp is not None else "0.5"
                for view, ax in [(None, ax3), *views.items()]:
                    _draw(ax, smp[i, s], layout, view, color, lw=0.8, alpha=alpha)
            if n > 1:
                for view, ax in views.items():
                    _spread(ax, smp[i], view)
        for view, ax in [(None, ax3), *views.items()]:
            if gt is not None:
                _draw(ax, gt[i], layout, view, **GT_STYLE)
            _draw(ax, pred[i], layout, view, lw=2.2)
        _style_3d(ax3, centre, half)
        ax3.set_title("3D", fontsize=8)
        for view, ax in views.items():
            _style_view(ax, view, centre, half)
            ax.set_title(VIEWS[view][0], fontsize=8)
        if norm is not None:
            cax = fig.add_subplot(grid[i, 4], label="colorbar")
            bar = fig.colorbar(ScalarMappable(norm, cmap), cax=cax)
            bar.set_label("sample log p (nats)", fontsize=7)
            bar.ax.tick_params(labelsize=6)
    _legend(fig, point_label, smp is not None, gt is not None)
    return fig


def plot_skeleton_rows(
    inputs: Tensor,
    mode: Tensor,
    path: str | Path,
    samples: Tensor | None = None,
    log_prob: Tensor | None = None,
    ground_truth: Tensor | None = None,
    point_label: str = "mode f(0; c)",
    input_kind: str = "keypoints_2d",
    layout: SkeletonLayout = H36M_17,
) -> None:
    """:func:`lifting_figure` written to ``path`` (PNG)."""
    fig = lifting_figure(inputs, mode, samples, log_prob, ground_truth, point_label,
                         input_kind, layout)
    fig.savefig(path, dpi=90)


def lifting_model_figure(
    model: Head,
    inputs: Tensor,
    joints_3d: Tensor | None = None,
    num_samples: int = 10,
    seed: int = 0,
    input_kind: str | None = None,
) -> Figure:
    """:func:`lifting_figure` of a skeleton head on ``inputs`` (against ``joints_3d
    [K, 17, 3]``, mm): its point prediction, named by ``model.point_label``, and, for a
    probabilistic head (``model.probabilistic``), ``num_samples`` samples with their
    log-densities.

    ``inputs`` are what the encoder reads, of ``input_kind`` (default ``model.input_kind``):
    2D keypoints ``[K, J, 3]`` (``"keypoints_2d"``) or ImageNet-normalized crops
    ``[K, 3, R, R]`` (``"images"``)."""
    kind = resolve_input_kind(model, input_kind)
    inputs = check_inputs(inputs, kind)
    model.eval()
    samples = log_prob = None
    with torch.no_grad():
        c = model.context(inputs)
        mode = model.mode(c).joints_mm[:, 0]
        if model.probabilistic:
            gen = torch.Generator(device=c.device).manual_seed(seed)
            samples, log_prob = model.sample_and_log_prob(num_samples, c, gen)
    return lifting_figure(inputs, mode, samples, log_prob, joints_3d,
                          point_label=model.point_label, input_kind=kind,
                          layout=space_layout(model.space))


def space_layout(space: OutputSpace) -> SkeletonLayout:
    """The joints of a joint space as a layout to draw (its own, for a skeleton space)."""
    layout = getattr(space, "layout", None)
    if isinstance(layout, SkeletonLayout) and layout.num_joints == len(space.joint_names):
        return layout
    roots = tuple(j for j, p in enumerate(space.parents) if p == -1) or (0,)
    n = len(space.joint_names)
    return SkeletonLayout("space", tuple(space.joint_names), tuple(space.parents),
                          tuple(range(n)), roots)


def plot_lifting(
    model: Head,
    inputs: Tensor,
    joints_3d: Tensor,
    path: str,
    num_samples: int = 10,
    seed: int = 0,
    input_kind: str | None = None,
) -> None:
    """:func:`lifting_model_figure` written to ``path`` (PNG)."""
    fig = lifting_model_figure(model, inputs, joints_3d, num_samples, seed, input_kind)
    fig.savefig(path, dpi=90)


# -- lifting fit ------------------------------------------------------------------------------
def lifting_fit_figure(
    keypoints_2d: Tensor,
    mode_2d: Tensor,
    fit_2d: Tensor,
    mode: Tensor,
    fit: Tensor,
    rows: int = 4,
) -> Figure:
    """One row per person (at most ``rows``): the observed keypoints with the mode's and the
    fit's reprojections, then the fitted skeleton (bones by side) over the mode (grey) in an
    oblique 3D view and the side view.

    Shapes: ``keypoints_2d [P, 16, 3]``, ``mode_2d``/``fit_2d [P, 16, 2]`` (normalized screen
    coordinates); ``mode``/``fit [P, 17, 3]`` (mm, root-relative camera frame).
    """
    kp, m2, f2, m3, f3 = (_np(x) for x in (keypoints_2d, mode_2d, fit_2d, mode, fit))
    n = min(rows, len(kp))
    fig = agg_figure(figsize=(10.5, 3.3 * n + 0.4), layout="constrained")
    # The engine of layout="constrained" (matplotlib's stubs return the base class).
    cast(ConstrainedLayoutEngine, fig.get_layout_engine()).set(wspace=0.06)
    grid = fig.add_gridspec(n, 3, width_ratios=[1, 1.3, 1])
    grey: dict[str, Any] = {"color": "0.55", "lw": 1.4, "ls": (0, (3, 2))}
    for i in range(n):
        ax = fig.add_subplot(grid[i, 0])
        seen = kp[i, :, 2] > 0
        for j, p, color in bone_colors(H36M_16):
            ax.plot(m2[i, [p, j], 0], m2[i, [p, j], 1], **grey)
            ax.plot(f2[i, [p, j], 0], f2[i, [p, j], 1], color=color, lw=1.8)
        ax.scatter(kp[i, seen, 0], kp[i, seen, 1], s=16, c="k", edgecolors="w",
                   linewidths=0.6, zorder=3)
        square_window(ax, np.concatenate([kp[i, seen, :2], m2[i], f2[i]]))
        ax.set_xlabel("x (normalized image)", fontsize=7)
        ax.set_ylabel("y, down (normalized image)", fontsize=7, labelpad=1)
        ax.tick_params(labelsize=6)
        ax.locator_params(nbins=4)
        ax.set_title(f"person {i}: 2D reprojections", fontsize=8)
        ax3 = cast(Axes3D, fig.add_subplot(grid[i, 1], projection="3d"))
        side = fig.add_subplot(grid[i, 2])
        centre, half = _frame([m3[i], f3[i]], None)
        for view, a in ((None, ax3), ("side", side)):
            _draw(a, m3[i], H36M_17, view, **grey)
            _draw(a, f3[i], H36M_17, view, lw=2.2)
        _style_3d(ax3, centre, half)
        ax3.set_title(f"person {i}: 3D", fontsize=8)
        _style_view(side, "side", centre, half)
        side.set_title(f"person {i}: side view", fontsize=8)
    handles = [Line2D([], [], ls="", marker="o", mfc="k", mec="w", label="observed keypoints"),
               Line2D([], [], **grey, label="mode (before the fit)"),
               Line2D([], [], color=LEFT_COLOR, lw=2, label="fit: left"),
               Line2D([], [], color=RIGHT_COLOR, lw=2, label="fit: right")]
    fig.legend(handles=handles, loc="outside upper center", ncol=4, fontsize=8, frameon=False)
    return fig


def plot_lifting_fit(
    keypoints_2d: Tensor, mode_2d: Tensor, fit_2d: Tensor, mode: Tensor, fit: Tensor,
    path: str | Path, rows: int = 4,
) -> None:
    """:func:`lifting_fit_figure` written to ``path`` (PNG)."""
    fig = lifting_fit_figure(keypoints_2d, mode_2d, fit_2d, mode, fit, rows)
    fig.savefig(path, dpi=90)
