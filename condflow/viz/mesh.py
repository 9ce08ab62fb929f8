"""Mesh pictures: the mode mesh and samples overlaid on the input crop, and side views."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch
from torch import Tensor, nn

from condflow.body.camera import weak_perspective_to_translation
from condflow.data.image_datasets import IMAGENET_MEAN, IMAGENET_STD
from condflow.data.render import overlay, render_mesh

__all__ = ["denormalize_image", "plot_mesh_predictions", "render_overlay", "render_side_view"]

MODE_COLOR = (0.55, 0.75, 1.0)
SAMPLE_COLOR = (1.0, 0.75, 0.45)
GT_COLOR = (0.6, 0.9, 0.6)


def denormalize_image(image: Tensor) -> np.ndarray:
    """ImageNet-normalized ``[3, H, W]`` → ``[H, W, 3]`` floats in [0, 1]."""
    img = image.detach().cpu().float().numpy().transpose(1, 2, 0)
    return np.clip(img * IMAGENET_STD + IMAGENET_MEAN, 0.0, 1.0)


def render_overlay(
    image: np.ndarray,
    vertices: Tensor | np.ndarray,
    faces: Tensor | np.ndarray,
    cam: Tensor | np.ndarray,
    focal_length: float,
    upscale: int = 4,
    color: tuple[float, float, float] = MODE_COLOR,
    alpha: float = 0.7,
) -> np.ndarray:
    """The mesh seen by its weak-perspective camera, blended over the crop.

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
    return overlay(background, rendered, mask, alpha)


def render_side_view(
    vertices: Tensor | np.ndarray,
    faces: Tensor | np.ndarray,
    size: int = 256,
    angle_deg: float = 90.0,
    color: tuple[float, float, float] = MODE_COLOR,
) -> np.ndarray:
    """The mesh turned by ``angle_deg`` about the camera's vertical axis (through its centre)
    and framed to fit, on white: ``[size, size, 3]`` floats in [0, 1]."""
    verts = np.asarray(torch.as_tensor(vertices).detach().cpu(), dtype=np.float64)
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


def plot_mesh_predictions(
    model: nn.Module,
    images: Tensor,
    path: str,
    num_samples: int = 3,
    seed: int = 0,
    gt_rotmat: Tensor | None = None,
    gt_betas: Tensor | None = None,
    upscale: int = 4,
) -> None:
    """One row per image: the input crop, the mode mesh over it, ``num_samples`` sampled
    meshes over it, and side views of the mode (and of the ground truth when given).

    ``model`` is a :class:`condflow.heads.prohmr.ProHMRHead`; ``images`` ``[K, 3, H, W]``
    ImageNet-normalized; ``gt_rotmat`` ``[K, 24, 3, 3]`` and ``gt_betas`` ``[K, 10]``.
    """
    model.eval()
    with torch.no_grad():
        c = model.context(images)
        mode = model.mode(c, vertices=True)
        gen = torch.Generator(device=c.device).manual_seed(seed)
        samples = model.sample(num_samples, c, generator=gen, vertices=True)
        gt = None
        if gt_rotmat is not None and gt_betas is not None:
            gt = model.body(gt_rotmat[:, :1], gt_rotmat[:, 1:], gt_betas, eval_joints=False)
    faces = model.body.faces.cpu().numpy()
    focal = model.focal_length
    k = images.shape[0]
    cols = 2 + num_samples + (2 if gt is not None else 1)
    fig, axes = plt.subplots(k, cols, figsize=(2.2 * cols, 2.3 * k), squeeze=False)
    for i in range(k):
        crop = denormalize_image(images[i])
        panels = [("input", np.kron(crop, np.ones((upscale, upscale, 1))))]
        panels.append(("mode f(0; c)", render_overlay(
            crop, mode.vertices[i, 0], faces, mode.cam[i, 0].cpu(), focal, upscale)))
        for s in range(num_samples):
            panels.append((f"sample {s + 1}", render_overlay(
                crop, samples.vertices[i, s], faces, samples.cam[i, s].cpu(), focal, upscale,
                color=SAMPLE_COLOR)))
        panels.append(("mode, side view", render_side_view(mode.vertices[i, 0], faces)))
        if gt is not None:
            panels.append(("ground truth, side view",
                           render_side_view(gt.vertices[i], faces, color=GT_COLOR)))
        for ax, (title, picture) in zip(axes[i], panels, strict=True):
            ax.imshow(picture)
            ax.set_title(title, fontsize=8)
            ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
