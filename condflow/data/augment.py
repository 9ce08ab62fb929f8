"""Person crops and data augmentation in the SPIN / ProHMR conventions.

Box: a person is given by ``center`` ``[2]`` (pixels) and ``scale``, the side of the square
box being ``scale · 200`` pixels.

Pixel coordinates: pixel ``(row i, col j)`` has its centre at ``(x, y) = (j, i)``.

Normalized crop coordinates: ``[-1, 1]²`` over the crop, ``(0, 0)`` at the box centre, ``x``
right, ``y`` down. They do not depend on the crop resolution: crop pixel ``q`` (same pixel
convention) sits at ``2 (q + 0.5) / res - 1``. An image point ``p`` maps to

    n = Flip · R(-rot) · (p - center) / (scale · 100),

with ``R(a) = [[cos a, -sin a], [sin a, cos a]]`` in y-down coordinates, so a positive ``rot``
(degrees) turns the crop content counter-clockwise on screen, and ``Flip`` negates ``x``.
The rotation is applied before the flip, for images, keypoints, 3D joints and SMPL poses alike;
3D points turn by the same ``R(-rot)`` about the camera ``z`` axis and mirror ``x``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.ndimage import map_coordinates
from scipy.spatial.transform import Rotation

from condflow._checks import check_positive_int

__all__ = [
    "SMPL_JOINT_FLIP_PERM",
    "SMPL_POSE_FLIP_PERM",
    "AugmentationParams",
    "color_augment",
    "crop_image",
    "crop_pixels_to_normalized",
    "flip_keypoints_2d",
    "flip_keypoints_3d",
    "flip_smpl_pose",
    "normalized_to_crop_pixels",
    "rotate_global_orient",
    "rotate_keypoints_3d",
    "rotation_matrix_2d",
    "sample_augmentation",
    "transform_keypoints",
    "transform_keypoints_3d",
    "transform_smpl_pose",
    "untransform_keypoints",
]

#: Left/right swap of the 24 SMPL joints.
SMPL_JOINT_FLIP_PERM: tuple[int, ...] = (
    0, 2, 1, 3, 5, 4, 6, 8, 7, 9, 11, 10, 12, 14, 13, 15, 17, 16, 19, 18, 21, 20, 23, 22,
)  # fmt: skip
#: The same swap on the 72 axis-angle entries of an SMPL pose.
SMPL_POSE_FLIP_PERM: tuple[int, ...] = tuple(3 * j + k for j in SMPL_JOINT_FLIP_PERM
                                             for k in range(3))


def rotation_matrix_2d(rot: float) -> np.ndarray:
    """``[2, 2]`` matrix ``R(-rot)`` (degrees) mapping image offsets to crop offsets."""
    a = -np.deg2rad(rot)
    return np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])


def _rotation_matrix_3d(rot: float) -> np.ndarray:
    m = np.eye(3)
    m[:2, :2] = rotation_matrix_2d(rot)
    return m


def _check_box(center: object, scale: object) -> tuple[np.ndarray, float]:
    c = np.asarray(center, dtype=np.float64)
    if c.shape != (2,) or not np.isfinite(c).all():
        raise ValueError(f"center: expected 2 finite numbers, got {center!r}")
    s = float(np.asarray(scale, dtype=np.float64).max())
    if not (np.isfinite(s) and s > 0):
        raise ValueError(f"scale: expected a finite number > 0, got {scale!r}")
    return c, s


def _check_perm(flip_perm: Sequence[int] | None, k: int) -> np.ndarray:
    if flip_perm is None:
        raise ValueError("flip_perm: required when flip=True")
    perm = np.asarray(flip_perm, dtype=np.int64)
    if perm.shape != (k,) or sorted(perm.tolist()) != list(range(k)):
        raise ValueError(f"flip_perm: expected a permutation of range({k}), got {list(perm)}")
    return perm


def _check_points(name: str, x: object, dims: tuple[int, ...]) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] not in dims:
        raise ValueError(f"{name}: expected shape [K, {' or '.join(map(str, dims))}], "
                         f"got {list(arr.shape)}")
    return arr


def crop_pixels_to_normalized(q: np.ndarray, res: int) -> np.ndarray:
    """Crop pixel coordinates → normalized ``[-1, 1]`` coordinates (any leading shape)."""
    return 2.0 * (np.asarray(q, dtype=np.float64) + 0.5) / res - 1.0


def normalized_to_crop_pixels(n: np.ndarray, res: int) -> np.ndarray:
    """Normalized ``[-1, 1]`` coordinates → crop pixel coordinates (any leading shape)."""
    return (np.asarray(n, dtype=np.float64) + 1.0) * res / 2.0 - 0.5


def transform_keypoints(
    kp: np.ndarray,
    center: Sequence[float] | np.ndarray,
    scale: float,
    rot: float = 0.0,
    flip: bool = False,
    flip_perm: Sequence[int] | None = None,
) -> np.ndarray:
    """Image keypoints → normalized crop coordinates.

    Args:
        kp: ``[K, 2]`` pixels, or ``[K, 3]`` with a confidence column (kept unchanged).
        center, scale: the person box.
        rot: in-plane rotation, degrees.
        flip: mirror ``x`` and reorder joints with ``flip_perm`` (``[K]``, required then).

    Returns:
        ``[K, 2 or 3]`` float64 keypoints in ``[-1, 1]`` inside the crop.
    """
    pts = _check_points("kp", kp, (2, 3))
    c, s = _check_box(center, scale)
    out = pts.copy()
    out[:, :2] = (pts[:, :2] - c) @ rotation_matrix_2d(rot).T / (s * 100.0)
    return flip_keypoints_2d(out, flip_perm) if flip else out


def flip_keypoints_2d(kp: np.ndarray, flip_perm: Sequence[int] | None) -> np.ndarray:
    """Mirror normalized ``[K, 2 or 3]`` keypoints (``x → -x``) and swap left/right joints."""
    pts = _check_points("kp", kp, (2, 3))
    out = pts[_check_perm(flip_perm, len(pts))].copy()
    out[:, 0] = -out[:, 0]
    return out


def untransform_keypoints(
    kp: np.ndarray, center: Sequence[float] | np.ndarray, scale: float, rot: float = 0.0
) -> np.ndarray:
    """Inverse of :func:`transform_keypoints` without flip: ``[K, 2 or 3]`` → image pixels."""
    pts = _check_points("kp", kp, (2, 3))
    c, s = _check_box(center, scale)
    out = pts.copy()
    out[:, :2] = pts[:, :2] * (s * 100.0) @ rotation_matrix_2d(rot) + c
    return out


def crop_image(
    img: np.ndarray,
    center: Sequence[float] | np.ndarray,
    scale: float,
    res: int,
    rot: float = 0.0,
    flip: bool = False,
) -> np.ndarray:
    """Bilinear crop of the person box, consistent with :func:`transform_keypoints`.

    Args:
        img: ``[H, W, C]`` image (any numeric dtype).
        center, scale: the person box; rot: degrees; flip: mirror the crop horizontally.
        res: output side in pixels.

    Returns:
        ``[res, res, C]`` float32 in the value range of ``img``; outside the image is 0.
    """
    arr = np.asarray(img)
    if arr.ndim != 3:
        raise ValueError(f"img: expected shape [H, W, C], got {list(arr.shape)}")
    check_positive_int("res", res)
    c, s = _check_box(center, scale)
    n = crop_pixels_to_normalized(np.arange(res), res)
    nx, ny = np.meshgrid(n, n)  # [res, res], indexed [row, col]
    if flip:
        nx = -nx
    # Invert n = R(-rot)(p - c) / (100 s): p = c + 100 s · R(-rot)^T n.
    grid = np.stack([nx.ravel(), ny.ravel()], axis=1) * (s * 100.0) @ rotation_matrix_2d(rot) + c
    coords = np.stack([grid[:, 1], grid[:, 0]])  # (row, col) = (y, x)
    src = arr.astype(np.float32)
    out = np.empty((res * res, arr.shape[2]), dtype=np.float32)
    for ch in range(arr.shape[2]):
        out[:, ch] = map_coordinates(src[:, :, ch], coords, order=1, mode="grid-constant", cval=0.0)
    return out.reshape(res, res, arr.shape[2])


def rotate_keypoints_3d(kp3d: np.ndarray, rot: float) -> np.ndarray:
    """Turn ``[K, 3 or 4]`` camera-frame points about ``z`` like the crop (confidence kept)."""
    pts = _check_points("kp3d", kp3d, (3, 4))
    out = pts.copy()
    out[:, :3] = pts[:, :3] @ _rotation_matrix_3d(rot).T
    return out


def flip_keypoints_3d(kp3d: np.ndarray, flip_perm: Sequence[int] | None) -> np.ndarray:
    """Mirror ``x`` of ``[K, 3 or 4]`` points and swap left/right joints with ``flip_perm``."""
    pts = _check_points("kp3d", kp3d, (3, 4))
    out = pts[_check_perm(flip_perm, len(pts))].copy()
    out[:, 0] = -out[:, 0]
    return out


def transform_keypoints_3d(
    kp3d: np.ndarray, rot: float = 0.0, flip: bool = False,
    flip_perm: Sequence[int] | None = None,
) -> np.ndarray:
    """Rotation then optional flip of ``[K, 3 or 4]`` 3D keypoints (matches the crop)."""
    out = rotate_keypoints_3d(kp3d, rot)
    return flip_keypoints_3d(out, flip_perm) if flip else out


def rotate_global_orient(global_orient: np.ndarray, rot: float) -> np.ndarray:
    """Axis-angle ``[3]`` root orientation ``G`` → ``R_z · G``, the crop's in-plane rotation."""
    g = np.asarray(global_orient, dtype=np.float64)
    if g.shape != (3,):
        raise ValueError(f"global_orient: expected shape [3], got {list(g.shape)}")
    turned = Rotation.from_matrix(_rotation_matrix_3d(rot)) * Rotation.from_rotvec(g)
    return turned.as_rotvec()


def flip_smpl_pose(pose: np.ndarray) -> np.ndarray:
    """Mirror an axis-angle SMPL pose ``[72]``: swap left/right joints, negate ``y`` and ``z``."""
    p = np.asarray(pose, dtype=np.float64)
    if p.shape != (72,):
        raise ValueError(f"pose: expected shape [72], got {list(p.shape)}")
    out = p[list(SMPL_POSE_FLIP_PERM)].copy()
    out[1::3] = -out[1::3]
    out[2::3] = -out[2::3]
    return out


def transform_smpl_pose(pose: np.ndarray, rot: float = 0.0, flip: bool = False) -> np.ndarray:
    """Rotate the root of an axis-angle SMPL pose ``[72]`` with the crop, then optionally flip."""
    p = np.asarray(pose, dtype=np.float64)
    if p.shape != (72,):
        raise ValueError(f"pose: expected shape [72], got {list(p.shape)}")
    out = p.copy()
    if rot != 0:
        out[:3] = rotate_global_orient(p[:3], rot)
    return flip_smpl_pose(out) if flip else out


def color_augment(img: np.ndarray, color: np.ndarray, max_value: float = 255.0) -> np.ndarray:
    """Scale each channel of ``[H, W, 3]`` by ``color`` ``[3]`` and clip to ``[0, max_value]``."""
    pn = np.asarray(color, dtype=np.float32)
    if pn.shape != (3,):
        raise ValueError(f"color: expected shape [3], got {list(pn.shape)}")
    return np.clip(np.asarray(img, dtype=np.float32) * pn, 0.0, max_value)


@dataclass
class AugmentationParams:
    """One draw of augmentation parameters.

    Attributes:
        scale: box size multiplier; rot: degrees; flip: horizontal mirror;
        color: ``[3]`` per-channel factors; translation: ``[2]`` box-centre shift as a
        fraction of the box size.
    """

    scale: float = 1.0
    rot: float = 0.0
    flip: bool = False
    color: np.ndarray = field(default_factory=lambda: np.ones(3))
    translation: np.ndarray = field(default_factory=lambda: np.zeros(2))


def sample_augmentation(
    rng: np.random.Generator,
    scale_factor: float = 0.25,
    rot_factor: float = 30.0,
    rot_prob: float = 0.4,
    flip_prob: float = 0.5,
    color_factor: float = 0.4,
    trans_factor: float = 0.0,
) -> AugmentationParams:
    """Draw augmentation parameters (SPIN defaults; ProHMR uses 0.3, 30, 0.6, 0.5, 0.2, 0.02).

    ``scale = 1 + clip(N(0,1), -1, 1)·scale_factor``; with probability ``rot_prob`` a rotation
    ``clip(N(0,1), -2, 2)·rot_factor`` degrees, else 0; a flip with probability ``flip_prob``;
    colour factors uniform in ``[1 - color_factor, 1 + color_factor]``; a box shift of
    ``clip(N(0,1), -1, 1)·trans_factor`` box sizes per axis.
    """
    for name, v in (("scale_factor", scale_factor), ("rot_factor", rot_factor),
                    ("color_factor", color_factor), ("trans_factor", trans_factor)):
        if not (np.isfinite(v) and v >= 0):
            raise ValueError(f"{name}: expected a finite number >= 0, got {v!r}")
    if scale_factor >= 1 or color_factor > 1:
        raise ValueError("scale_factor, color_factor: expected < 1 and <= 1 "
                         f"(got {scale_factor!r}, {color_factor!r})")
    for name, v in (("rot_prob", rot_prob), ("flip_prob", flip_prob)):
        if not 0.0 <= v <= 1.0:
            raise ValueError(f"{name}: expected a probability in [0, 1], got {v!r}")
    scale = 1.0 + float(np.clip(rng.standard_normal(), -1.0, 1.0)) * scale_factor
    rot_draw = float(np.clip(rng.standard_normal(), -2.0, 2.0)) * rot_factor
    rot = rot_draw if rng.random() < rot_prob else 0.0
    flip = bool(rng.random() < flip_prob)
    color = rng.uniform(1.0 - color_factor, 1.0 + color_factor, size=3)
    translation = np.clip(rng.standard_normal(2), -1.0, 1.0) * trans_factor
    return AugmentationParams(scale=scale, rot=rot, flip=flip, color=color,
                              translation=translation)
