"""Cameras: weak-perspective crop cameras and perspective projection (HMR/SPIN convention),
the least-squares translation that puts 3D points onto 2D keypoints, and random look-at
cameras for synthetic data.

A network predicts a weak-perspective camera ``(s, tx, ty)`` for a square crop of ``img_res``
pixels. It is turned into the translation of a perspective camera with a large fixed focal
length whose principal point is the crop centre. Normalised crop coordinates map the crop to
``[-1, 1]``: ``u = 2 p / img_res - 1`` for pixel coordinates ``p`` in ``[0, img_res]``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from condflow._checks import check_tensor, check_trailing

__all__ = [
    "DEFAULT_FOCAL_LENGTH",
    "DEFAULT_IMG_RES",
    "CameraSample",
    "backproject_pixels",
    "look_at_cameras",
    "normalized_to_pixels",
    "perspective_projection",
    "pinhole_translation",
    "pixels_to_normalized",
    "project_to_crop",
    "weak_perspective_to_translation",
]

DEFAULT_FOCAL_LENGTH = 5000.0
DEFAULT_IMG_RES = 224
# Keeps the depth finite for a zero scale, as in HMR/SPIN/ProHMR.
_SCALE_EPS = 1e-9


def _check_img_res(img_res: object) -> float:
    if isinstance(img_res, bool) or not isinstance(img_res, int | float) or img_res <= 0:
        raise ValueError(f"img_res: expected a positive number, got {img_res!r}")
    return float(img_res)


def _focal_xy(focal_length: float | Tensor, ref: Tensor) -> Tensor:
    """Focal lengths as a tensor broadcastable to ``[..., 2]``."""
    if isinstance(focal_length, Tensor):
        check_trailing("focal_length", focal_length, (2,), finite=False)
        return focal_length.to(dtype=ref.dtype)
    if isinstance(focal_length, bool) or not isinstance(focal_length, int | float):
        raise ValueError(
            f"focal_length: expected a number or a [..., 2] tensor, "
            f"got {type(focal_length).__name__}"
        )
    if focal_length <= 0:
        raise ValueError(f"focal_length: expected a positive number, got {focal_length}")
    return ref.new_full((2,), float(focal_length))


def weak_perspective_to_translation(
    cam: Tensor, focal_length: float = DEFAULT_FOCAL_LENGTH, img_res: float = DEFAULT_IMG_RES
) -> Tensor:
    """Weak-perspective cameras ``[..., 3]`` (s, tx, ty) to camera translations ``[..., 3]``.

    Returns ``(tx, ty, 2 f / (img_res s))``: the depth at which a perspective camera of focal
    length ``f`` images the body at scale ``s`` in normalised crop coordinates.
    """
    check_trailing("cam", cam, (3,), finite=False)
    res = _check_img_res(img_res)
    if isinstance(focal_length, bool) or not isinstance(focal_length, int | float):
        raise ValueError(f"focal_length: expected a number, got {type(focal_length).__name__}")
    s, tx, ty = cam.unbind(-1)
    tz = 2 * float(focal_length) / (res * s + _SCALE_EPS)
    return torch.stack([tx, ty, tz], dim=-1)


def perspective_projection(
    points: Tensor,
    translation: Tensor,
    focal_length: float | Tensor = DEFAULT_FOCAL_LENGTH,
    camera_center: Tensor | None = None,
    rotation: Tensor | None = None,
) -> Tensor:
    """Project 3D points with a pinhole camera.

    Args:
        points: ``[..., K, 3]`` points in the body frame.
        translation: ``[..., 3]`` camera translation (body frame to camera frame).
        focal_length: a number, or ``[..., 2]`` per-example (fx, fy).
        camera_center: ``[..., 2]`` principal point in pixels; ``None`` means (0, 0).
        rotation: ``[..., 3, 3]`` camera rotation applied before the translation; ``None``
            means the identity.

    Returns:
        ``[..., K, 2]`` pixel coordinates ``f * (X / Z) + c`` of ``X = R p + t``.
    """
    check_trailing("points", points, (3,), finite=False)
    check_trailing("translation", translation, (3,), finite=False)
    if rotation is not None:
        check_trailing("rotation", rotation, (3, 3), finite=False)
        points = points @ rotation.transpose(-1, -2)
    cam_points = points + translation[..., None, :]
    f = _focal_xy(focal_length, points)
    pixels = f[..., None, :] * cam_points[..., :2] / cam_points[..., 2:]
    if camera_center is not None:
        check_trailing("camera_center", camera_center, (2,), finite=False)
        pixels = pixels + camera_center[..., None, :]
    return pixels


def backproject_pixels(
    pixels: Tensor,
    depth: Tensor,
    focal_length: float | Tensor = DEFAULT_FOCAL_LENGTH,
    camera_center: Tensor | None = None,
) -> Tensor:
    """Invert ``perspective_projection`` (no rotation, zero translation) given the depth.

    Args:
        pixels: ``[..., K, 2]`` pixel coordinates.
        depth: ``[..., K]`` camera-frame depths Z.
        focal_length: a number, or ``[..., 2]`` per-example (fx, fy).
        camera_center: ``[..., 2]`` principal point; ``None`` means (0, 0).

    Returns:
        ``[..., K, 3]`` camera-frame points.
    """
    check_trailing("pixels", pixels, (2,), finite=False)
    check_tensor("depth", depth, finite=False)
    if depth.shape != pixels.shape[:-1]:
        raise ValueError(
            f"depth: expected shape {list(pixels.shape[:-1])}, got {list(depth.shape)}"
        )
    if camera_center is not None:
        check_trailing("camera_center", camera_center, (2,), finite=False)
        pixels = pixels - camera_center[..., None, :]
    f = _focal_xy(focal_length, pixels)
    xy = pixels / f[..., None, :] * depth[..., None]
    return torch.cat([xy, depth[..., None]], dim=-1)


def pixels_to_normalized(pixels: Tensor, img_res: float = DEFAULT_IMG_RES) -> Tensor:
    """Crop pixel coordinates ``[..., 2]`` in ``[0, img_res]`` to ``[-1, 1]``: ``2 p / img_res -
    1``."""
    check_trailing("pixels", pixels, (2,), finite=False)
    return 2.0 * pixels / _check_img_res(img_res) - 1.0


def normalized_to_pixels(uv: Tensor, img_res: float = DEFAULT_IMG_RES) -> Tensor:
    """Normalised crop coordinates ``[..., 2]`` back to pixels: ``(u + 1) img_res / 2``."""
    check_trailing("uv", uv, (2,), finite=False)
    return (uv + 1.0) * (_check_img_res(img_res) / 2.0)


def project_to_crop(
    points: Tensor,
    cam: Tensor,
    focal_length: float = DEFAULT_FOCAL_LENGTH,
    img_res: float = DEFAULT_IMG_RES,
) -> Tensor:
    """Project body-frame points ``[..., K, 3]`` seen by weak-perspective cameras ``[..., 3]``
    into normalised crop coordinates ``[..., K, 2]``.

    For points near the body's origin this is close to the weak-perspective projection
    ``s * (X_xy + (tx, ty))``.
    """
    res = _check_img_res(img_res)
    translation = weak_perspective_to_translation(cam, focal_length, res)
    center = points.new_full((2,), res / 2.0)
    pixels = perspective_projection(points, translation, focal_length, camera_center=center)
    return pixels_to_normalized(pixels, res)


def pinhole_translation(
    points: Tensor,
    keypoints: Tensor,
    focal: float,
    default_depth: float = 5.0,
    ridge: float = 1e-8,
) -> Tensor:
    """Least-squares translation T ``[B, 3]`` so that ``points + T`` project onto ``keypoints``.

    With ``u = f (X + T)_xy / (X + T)_z`` each visible keypoint gives two equations linear in
    T: ``f T_x − u_x T_z = u_x X_z − f X_x`` (and the same for y), weighted by the confidence.
    A small ridge towards ``(0, 0, default_depth)`` keeps examples with fewer than two visible
    keypoints well posed; the depth is kept ≥ 0.1 · ``default_depth``.

    Args:
        points: ``[B, K, 3]`` 3D points (metres) before translation.
        keypoints: ``[B, K, 3]`` observed ``(u, v, confidence)``.
        focal: focal length in the units of ``u`` (normalized: 2 · focal_px / image_size).
    """
    w = keypoints[..., 2]
    u = keypoints[..., :2] * (w > 0)[..., None]
    zero, f = torch.zeros_like(u[..., 0]), torch.full_like(u[..., 0], focal)
    rows_x = torch.stack([f, zero, -u[..., 0]], -1)  # [B, K, 3]
    rows_y = torch.stack([zero, f, -u[..., 1]], -1)
    a = torch.cat([rows_x, rows_y], 1)
    b = torch.cat([u[..., 0] * points[..., 2] - focal * points[..., 0],
                   u[..., 1] * points[..., 2] - focal * points[..., 1]], 1)
    ww = torch.cat([w, w], 1)
    ata = torch.einsum("bki,bk,bkj->bij", a, ww, a)
    atb = torch.einsum("bki,bk,bk->bi", a, ww, b)
    lam = ridge * (1.0 + ata.diagonal(dim1=-2, dim2=-1).sum(-1))[:, None, None]
    prior = points.new_tensor([0.0, 0.0, default_depth])
    t = torch.linalg.solve(ata + lam * torch.eye(3, dtype=a.dtype, device=a.device),
                           atb + lam[..., 0] * prior)
    depth = t[:, 2].clamp_min(0.1 * default_depth)
    return torch.cat([t[:, :2], depth[:, None]], 1)


@dataclass
class CameraSample:
    """``rotation [N, 3, 3]`` (world → camera, OpenCV axes: x right, y down, z forward) and
    camera ``position [N, 3]`` in world coordinates (metres); ``x_cam = R (x_world - position)``.
    """

    rotation: np.ndarray
    position: np.ndarray

    def to_camera(self, points: np.ndarray) -> np.ndarray:
        """World points ``[N, K, 3]`` → camera coordinates ``[N, K, 3]``."""
        return np.einsum("nij,nkj->nki", self.rotation, points - self.position[:, None])


def look_at_cameras(
    rng: np.random.Generator,
    n: int,
    elevation_deg: tuple[float, float] = (-10.0, 40.0),
    distance_m: tuple[float, float] = (3.5, 7.0),
    target_jitter_m: float = 0.2,
    azimuth_rad: np.ndarray | None = None,
) -> CameraSample:
    """Cameras at uniform azimuths (all of [0, 2π)), elevations and distances around the
    origin (SMPL world: y up), each looking at the origin plus a random jitter.
    ``azimuth_rad [n]``: the azimuths to use instead of drawing them."""
    if azimuth_rad is None:
        azimuth = rng.uniform(0, 2 * np.pi, n)
    else:
        azimuth = np.asarray(azimuth_rad, dtype=np.float64)
        if azimuth.shape != (n,):
            raise ValueError(f"azimuth_rad: expected shape ({n},), got {azimuth.shape}")
    elevation = np.deg2rad(rng.uniform(*elevation_deg, n))
    distance = rng.uniform(*distance_m, n)
    target = rng.normal(0, target_jitter_m, (n, 3))
    direction = np.stack(
        [
            np.sin(azimuth) * np.cos(elevation),
            np.sin(elevation),
            np.cos(azimuth) * np.cos(elevation),
        ],
        -1,
    )
    position = target + distance[:, None] * direction
    forward = -direction
    right = np.cross(forward, np.array([0.0, 1.0, 0.0]))
    right /= np.linalg.norm(right, axis=-1, keepdims=True)
    down = np.cross(forward, right)
    return CameraSample(np.stack([right, down, forward], axis=1), position)
