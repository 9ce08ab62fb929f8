"""Mesh pictures: the mode mesh and samples overlaid on the input crop (or, for a head reading
2D keypoints, seen by their camera with the keypoints and their reprojections), side views,
and keypoint fits (before and after) with their residuals.

Coordinates: meshes are in the camera frame of the crop, OpenCV axes (x right, **y down**,
z forward, metres), as the body model returns them under ProHMR's camera convention; 2D
keypoints are in normalized crop coordinates (``[-1, 1]``, y down), which for a square
image are the screen normalization of 2D keypoint inputs.
:func:`render_side_view` also takes y-up meshes (SMPL's rest pose, a T-pose) with
``up="+y"``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, NamedTuple

import matplotlib.patheffects as pe
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from scipy.ndimage import binary_erosion
from torch import Tensor

from condflow._progress import progress
from condflow.body.camera import weak_perspective_to_translation
from condflow.data.render import overlay, render_mesh
from condflow.heads.prohmr import MeshHead, ProHMRPrediction
from condflow.viz import agg_figure
from condflow.viz.inputs import (
    check_inputs,
    denormalize_image,
    draw_input,
    keypoint_array,
    resolve_input_kind,
)

__all__ = [
    "MeshFitState",
    "denormalize_image",
    "mesh_fit_figure",
    "mesh_predictions_figure",
    "plot_mesh_fit",
    "plot_mesh_predictions",
    "render_overlay",
    "render_side_view",
    "render_window",
]

MODE_COLOR = (0.55, 0.75, 1.0)
SAMPLE_COLOR = (1.0, 0.75, 0.45)
GT_COLOR = (0.6, 0.9, 0.6)
FIT_COLOR = (0.95, 0.55, 0.75)


def render_overlay(
    image: np.ndarray,
    vertices: Tensor | np.ndarray,
    faces: Tensor | np.ndarray,
    cam: Tensor | np.ndarray,
    focal_length: float,
    upscale: int = 4,
    color: tuple[float, float, float] = MODE_COLOR,
    alpha: float = 0.7,
    outline: float | None = 0.1,
) -> np.ndarray:
    """The mesh seen by its weak-perspective camera, blended over the crop, its silhouette
    outlined (grey level ``outline``; ``None``: no outline) so that it stands out on
    backgrounds of its own colour.

    Args:
        image: ``[res, res, 3]`` crop, floats in [0, 1].
        vertices: ``[V, 3]`` body-frame vertices (metres); faces: ``[F, 3]``.
        cam: ``[3]`` weak-perspective camera (s, tx, ty) of the crop.
        focal_length: focal length in pixels of the crop.
        upscale: the picture is ``upscale`` times the crop (nearest-neighbour background).

    Returns:
        ``[res·upscale, res·upscale, 3]`` floats in [0, 1].
    """
    res = image.shape[0]
    side = res * upscale
    cam_t = torch.as_tensor(np.asarray(cam, dtype=np.float64))
    transl = weak_perspective_to_translation(cam_t, focal_length, res).numpy()
    verts = np.asarray(torch.as_tensor(vertices).detach().cpu(), dtype=np.float64) + transl
    background = np.kron(image, np.ones((upscale, upscale, 1)))
    rendered, mask, _ = render_mesh(verts, np.asarray(torch.as_tensor(faces).cpu()),
                                    focal_length * upscale, side,
                                    face_colors=np.broadcast_to(color, (len(faces), 3)),
                                    background=background)
    picture = overlay(background, rendered, mask, alpha)
    if outline is not None:
        picture[mask & ~binary_erosion(mask, iterations=max(1, upscale // 2))] = outline
    return picture


def render_side_view(
    vertices: Tensor | np.ndarray,
    faces: Tensor | np.ndarray,
    size: int = 256,
    angle_deg: float = 90.0,
    color: tuple[float, float, float] = MODE_COLOR,
    up: Literal["-y", "+y"] = "-y",
) -> np.ndarray:
    """The mesh turned by ``angle_deg`` about its vertical axis (through its centre) and
    framed to fit, upright on white: ``[size, size, 3]`` floats in [0, 1].

    ``vertices [V, 3]`` (metres): ``up="-y"`` for the camera frame (x right, y down, z
    forward; the body model's output under ProHMR's camera), ``up="+y"`` for y-up meshes
    (SMPL's rest pose, e.g. a T-pose). ``angle_deg=0`` looks at the mesh along +z."""
    if up not in ("-y", "+y"):
        raise ValueError(f"up: expected '-y' (y down, camera frame) or '+y' (y up), got {up!r}")
    verts = np.asarray(torch.as_tensor(vertices).detach().cpu(), dtype=np.float64)
    if up == "+y":  # a half turn about x: y up becomes y down, seen from the front
        verts = verts * np.array([1.0, -1.0, -1.0])
    verts = verts - (verts.min(0) + verts.max(0)) / 2
    a = np.deg2rad(angle_deg)
    rot = np.array([[np.cos(a), 0.0, np.sin(a)], [0.0, 1.0, 0.0], [-np.sin(a), 0.0, np.cos(a)]])
    verts = verts @ rot.T
    extent = np.ptp(verts[:, :2], axis=0).max()
    focal = 10.0 * size
    depth = focal * extent / (0.85 * size)  # the larger side spans 85% of the picture
    verts = verts + np.array([0.0, 0.0, depth])
    image, _, _ = render_mesh(verts, np.asarray(torch.as_tensor(faces).cpu()), focal, size,
                              face_colors=np.broadcast_to(color, (len(faces), 3)))
    return image


def _vertices(pred: ProHMRPrediction) -> Tensor:
    """``pred.vertices`` ``[B, n, V, 3]``, which the head computed (``vertices=True``)."""
    if pred.vertices is None:
        raise ValueError("prediction: no vertices (predict with vertices=True)")
    return pred.vertices


def render_window(
    vertices: Tensor | np.ndarray,
    faces: Tensor | np.ndarray,
    cam: Tensor | np.ndarray,
    focal_length: float,
    img_res: int,
    window: tuple[float, float, float],
    size: int = 224,
    color: tuple[float, float, float] = MODE_COLOR,
    alpha: float = 0.7,
    outline: float | None = 0.1,
) -> np.ndarray:
    """The mesh seen by its weak-perspective camera (focal ``focal_length`` px at ``img_res``
    px, as in :func:`~condflow.body.camera.project_to_crop`), on white, framed to a square
    ``window = (cx, cy, h)`` of normalized crop coordinates ([cx − h, cx + h] ×
    [cy − h, cy + h], y down): ``[size, size, 3]`` floats in [0, 1], to be drawn with
    ``imshow(..., extent=(cx - h, cx + h, cy + h, cy - h))``; silhouette outlined as by
    :func:`render_overlay`. The window ``(0, 0, 1)`` at ``size = img_res · upscale`` is
    :func:`render_overlay` on a white crop."""
    cx, cy, h = window
    cam_t = torch.as_tensor(np.asarray(cam, dtype=np.float64))
    transl = weak_perspective_to_translation(cam_t, focal_length, img_res).numpy()
    verts = np.asarray(torch.as_tensor(vertices).detach().cpu(), dtype=np.float64) + transl
    # u = (2 f / res) X / Z in normalized coordinates; pixel p's centre is at
    # u = cx − h + (p + 0.5) 2h / size.
    px_per_unit = size / (2 * h)
    focal = 2 * focal_length / img_res * px_per_unit
    centre = (h - np.array([cx, cy])) * px_per_unit - 0.5
    white = np.ones((size, size, 3))
    rendered, mask, _ = render_mesh(verts, np.asarray(torch.as_tensor(faces).cpu()), focal,
                                    size, camera_center=centre,
                                    face_colors=np.broadcast_to(color, (len(faces), 3)),
                                    background=white)
    picture = overlay(white, rendered, mask, alpha)
    if outline is not None:
        picture[mask & ~binary_erosion(mask, iterations=max(1, size // 112))] = outline
    return picture


def _keypoint_window(observed: np.ndarray, projected: np.ndarray) -> tuple[float, float, float]:
    """``(cx, cy, h)`` of the square around the seen observed keypoints ``[J, 3]`` and the
    projected ones ``[K, 2]`` (:func:`~condflow.viz.inputs.square_window`'s margin)."""
    points = np.concatenate([observed[observed[:, 2] > 0, :2], projected])
    lo, hi = points.min(0), points.max(0)
    centre = (lo + hi) / 2
    return float(centre[0]), float(centre[1]), 0.6 * max(float((hi - lo).max()), 1e-3)


def _mesh_keypoint_panel(
    ax: Axes,
    observed: np.ndarray,
    projected: np.ndarray,
    picture: np.ndarray,
    window: tuple[float, float, float],
) -> None:
    """The mesh's picture in its window, the observed keypoints ``[J, 3]`` and the mesh's
    projected keypoints ``[K, 2]`` (normalized crop coordinates), with residuals when they
    are the same keypoints (J = K)."""
    cx, cy, h = window
    ax.imshow(picture, extent=(cx - h, cx + h, cy + h, cy - h))
    if len(observed) == len(projected):
        _keypoints_and_residuals(ax, observed, projected, lambda u: u)
    else:
        ax.scatter(projected[:, 0], projected[:, 1], s=12, c="yellow", edgecolors="black",
                   linewidths=0.7, zorder=4, marker="D")
        _keypoints_and_residuals(ax, observed, None, lambda u: u)
    ax.set_xlim(cx - h, cx + h)
    ax.set_ylim(cy + h, cy - h)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])


def mesh_predictions_figure(
    model: MeshHead,
    inputs: Tensor,
    num_samples: int = 3,
    seed: int = 0,
    gt_rotmat: Tensor | None = None,
    gt_betas: Tensor | None = None,
    upscale: int = 4,
    input_kind: str | None = None,
) -> Figure:
    """One row per input: the input, the mode mesh, ``num_samples`` sampled meshes, and side
    views of the mode (and of the ground truth when given).

    ``model`` is a mesh head (:mod:`condflow.heads.prohmr`; a regression head shows no
    samples); ``inputs`` what its encoder reads, of ``input_kind`` (default
    ``model.input_kind``):

    * ``"images"``: ImageNet-normalized crops ``[K, 3, H, W]``; the meshes are overlaid on
      the crop (``upscale`` times larger);
    * ``"keypoints_2d"``: 2D keypoints ``[K, J, 3]`` (screen-normalized x, y; confidence);
      with no image to overlay, each mesh is drawn as its camera sees it on white, with the
      observed keypoints (white dots) and the mesh's projected keypoints
      (``keypoints_2d``, yellow diamonds; residual lines when J = 24, SPIN's keypoints). They
      share coordinates when the head's ``img_res``/``focal_length`` are the keypoints'
      camera (a square image of ``img_res`` px).

    ``gt_rotmat`` ``[K, 24, 3, 3]`` and ``gt_betas`` ``[K, 10]``.
    """
    kind = resolve_input_kind(model, input_kind)
    inputs = check_inputs(inputs, kind)
    model.eval()
    num_samples = num_samples if model.probabilistic else 0
    with torch.no_grad():
        c = model.context(inputs)
        mode = model.mode(c, vertices=True)
        gen = torch.Generator(device=c.device).manual_seed(seed)
        samples = model.sample(num_samples, c, generator=gen, vertices=True) \
            if num_samples else None
        gt = None
        if gt_rotmat is not None and gt_betas is not None:
            gt = model.body(gt_rotmat[:, :1], gt_rotmat[:, 1:], gt_betas, eval_joints=False)
    faces = model.body.faces.cpu().numpy()
    focal = model.focal_length
    mode_vertices = _vertices(mode)
    # (title, prediction, its index along the sample axis, colour) of the mesh panels
    meshes = [(model.point_label, mode, 0, MODE_COLOR)]
    if samples is not None:
        meshes += [(f"sample {s + 1}", samples, s, SAMPLE_COLOR) for s in range(num_samples)]
    k = inputs.shape[0]
    cols = 2 + num_samples + (2 if gt is not None else 1)
    fig = agg_figure(figsize=(2.2 * cols, 2.3 * k))
    axes = fig.subplots(k, cols, squeeze=False)
    for i in progress(range(k), desc="render",
                      unit="image" if kind == "images" else "input"):
        draw_input(axes[i, 0], inputs[i], kind, "input" if kind == "images" else None, upscale)
        if kind == "images":
            crop = denormalize_image(inputs[i])
            for ax, (title, pred, s, color) in zip(axes[i, 1:], meshes, strict=False):
                ax.imshow(render_overlay(crop, _vertices(pred)[i, s], faces,
                                         pred.cam[i, s].cpu(), focal, upscale, color=color))
                ax.set_title(title, fontsize=8)
                ax.axis("off")
        else:
            observed = keypoint_array(inputs[i])
            window = _keypoint_window(observed, mode.keypoints_2d[i, 0].cpu().double().numpy())
            for ax, (title, pred, s, color) in zip(axes[i, 1:], meshes, strict=False):
                picture = render_window(_vertices(pred)[i, s], faces, pred.cam[i, s].cpu(),
                                        focal, model.img_res, window, 56 * upscale, color)
                _mesh_keypoint_panel(ax, observed,
                                     pred.keypoints_2d[i, s].cpu().double().numpy(), picture,
                                     window)
                ax.set_title(title, fontsize=8)
        side = [(f"{model.point_label.split()[0]}, side view",
                 render_side_view(mode_vertices[i, 0], faces))]
        if gt is not None:
            side.append(("ground truth, side view",
                         render_side_view(gt.vertices[i], faces, color=GT_COLOR)))
        for ax, (title, picture) in zip(axes[i, 1 + len(meshes):], side, strict=True):
            ax.imshow(picture)
            ax.set_title(title, fontsize=8)
            ax.axis("off")
    if kind == "keypoints_2d":
        handles = [
            Line2D([], [], ls="", marker="o", mfc="white", mec="black",
                   label="input keypoint (seen)"),
            Line2D([], [], ls="", marker="D", ms=4, mfc="yellow", mec="black",
                   label="the mesh's keypoint, projected"),
            Line2D([], [], color="yellow", lw=1.2, path_effects=_OUTLINE, label="residual"),
        ]
        fig.legend(handles=handles, loc="lower center", ncol=3, fontsize=8, frameon=False)
        fig.tight_layout(rect=(0.0, 0.3 / (2.3 * k), 1.0, 1.0))
    else:
        fig.tight_layout()
    return fig


def plot_mesh_predictions(
    model: MeshHead,
    inputs: Tensor,
    path: str,
    num_samples: int = 3,
    seed: int = 0,
    gt_rotmat: Tensor | None = None,
    gt_betas: Tensor | None = None,
    upscale: int = 4,
    input_kind: str | None = None,
) -> None:
    """:func:`mesh_predictions_figure` written to ``path`` (PNG)."""
    fig = mesh_predictions_figure(model, inputs, num_samples, seed, gt_rotmat, gt_betas,
                                  upscale, input_kind)
    fig.savefig(path, dpi=90)


# -- keypoint fits ----------------------------------------------------------------------------
class MeshFitState(NamedTuple):
    """One side of a fit (before or after), per person: ``vertices [P, V, 3]`` (metres, body
    frame), ``cam [P, 3]`` weak-perspective (s, tx, ty), ``keypoints_2d [P, K, 2]``
    (normalized crop coordinates, in [-1, 1])."""

    vertices: Tensor
    cam: Tensor
    keypoints_2d: Tensor


_OUTLINE = [pe.withStroke(linewidth=2.6, foreground="black")]


def _keypoints_and_residuals(
    ax: Axes,
    observed: np.ndarray,
    predicted: np.ndarray | None,
    to_px: Callable[[np.ndarray], np.ndarray],
) -> float | None:
    """Observed keypoints (white dots, black edge) and, with ``predicted``, residual lines
    to the prediction (yellow, outlined) and its points; returns the mean residual in the
    pixels of ``to_px``."""
    seen = observed[:, 2] > 0
    obs = to_px(observed[:, :2])
    err = None
    if predicted is not None:
        pred = to_px(predicted)
        for j in np.flatnonzero(seen):
            ax.plot(*zip(obs[j], pred[j], strict=True), color="yellow", lw=1.2,
                    path_effects=_OUTLINE)
        ax.scatter(pred[seen, 0], pred[seen, 1], s=12, c="yellow", edgecolors="black",
                   linewidths=0.7, zorder=4, marker="D")
        err = float(np.linalg.norm(obs[seen] - pred[seen], axis=1).mean()) if seen.any() else 0.0
    ax.scatter(obs[seen, 0], obs[seen, 1], s=22, c="white", edgecolors="black", linewidths=1.0,
               zorder=5)
    return err


def mesh_fit_figure(
    images: Tensor,
    keypoints_2d: Tensor,
    faces: Tensor | np.ndarray,
    focal_length: float,
    before: MeshFitState,
    after: MeshFitState,
    rows: int = 4,
    upscale: int = 4,
) -> Figure:
    """One row per person (at most ``rows``): the crop with the observed keypoints, the mesh
    before the fit (the mode) and after it over the crop, each with its keypoint residuals
    (observed → reprojected, mean in crop pixels in the title), and the fitted mesh from the
    side.

    ``images [P, 3, H, W]`` ImageNet-normalized crops; ``keypoints_2d [P, K, 3]`` observed
    (normalized crop coordinates, confidence); ``focal_length`` in pixels of the crop.
    """
    n = min(rows, len(images))
    res = images.shape[-1]
    faces = np.asarray(torch.as_tensor(faces).cpu())
    obs = keypoints_2d.detach().cpu().double().numpy()

    def to_px(u: np.ndarray) -> np.ndarray:  # normalized crop coordinates → picture pixels
        return (np.asarray(u, dtype=np.float64) + 1) * res / 2 * upscale - 0.5

    fig = agg_figure(figsize=(3.0 * 4, 3.1 * n + 0.4), layout="constrained")
    axes = fig.subplots(n, 4, squeeze=False)
    for i in progress(range(n), desc="render", unit="person"):
        crop = denormalize_image(images[i])
        panels: list[tuple[str, np.ndarray, np.ndarray | None]] = [
            ("input crop, observed keypoints", np.kron(crop, np.ones((upscale, upscale, 1))),
             None)]
        for name, state, color in (("before (mode)", before, MODE_COLOR),
                                   ("after (fit)", after, FIT_COLOR)):
            picture = render_overlay(crop, state.vertices[i], faces, state.cam[i].cpu(),
                                     focal_length, upscale, color=color)
            panels.append((name, picture, state.keypoints_2d[i].detach().cpu().double().numpy()))
        for ax, (title, picture, predicted) in zip(axes[i, :3], panels, strict=True):
            ax.imshow(picture)
            err = _keypoints_and_residuals(ax, obs[i], predicted, to_px)
            ax.set_title(title if err is None else f"{title}: {err / upscale:.1f} px",
                         fontsize=8)
            ax.set_xlim(-0.5, res * upscale - 0.5)
            ax.set_ylim(res * upscale - 0.5, -0.5)
            ax.axis("off")
        axes[i, 3].imshow(render_side_view(after.vertices[i], faces, res * upscale,
                                           color=FIT_COLOR))
        axes[i, 3].set_title("after (fit), side view", fontsize=8)
        axes[i, 3].axis("off")
        axes[i, 0].text(-0.04, 0.5, f"person {i}", transform=axes[i, 0].transAxes,
                        rotation=90, va="center", ha="right", fontsize=9)
    handles = [
        Line2D([], [], ls="", marker="o", mfc="white", mec="black", label="observed keypoint"),
        Line2D([], [], ls="", marker="D", ms=4, mfc="yellow", mec="black",
               label="reprojected keypoint"),
        Line2D([], [], color="yellow", lw=1.2, path_effects=_OUTLINE,
               label="residual (mean: crop px)"),
        Line2D([], [], ls="", marker="s", mfc=MODE_COLOR, mec="none", label="mode mesh"),
        Line2D([], [], ls="", marker="s", mfc=FIT_COLOR, mec="none", label="fitted mesh"),
    ]
    fig.legend(handles=handles, loc="outside upper center", ncol=len(handles), fontsize=8,
               frameon=False)
    return fig


def plot_mesh_fit(
    images: Tensor, keypoints_2d: Tensor, faces: Tensor | np.ndarray, focal_length: float,
    before: MeshFitState, after: MeshFitState, path: str, rows: int = 4,
) -> None:
    """:func:`mesh_fit_figure` written to ``path`` (PNG)."""
    fig = mesh_fit_figure(images, keypoints_2d, faces, focal_length, before, after, rows)
    fig.savefig(path, dpi=90)
