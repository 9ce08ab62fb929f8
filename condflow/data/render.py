"""A small perspective z-buffer rasterizer (numpy) for meshes and body-part-coloured bodies.

Conventions
-----------
Camera frame (OpenCV): metres, ``x`` right, ``y`` down, ``+z`` forward into the scene. A point
``(x, y, z)`` projects to ``u = f x / z + cx``, ``v = f y / z + cy``.

Pixel coordinates: pixel ``(row i, col j)`` has its centre at ``(u, v) = (j, i)``, the same
convention as the keypoints of :mod:`condflow.data.augment`. The default principal point is the
image centre ``((W - 1) / 2, (H - 1) / 2)``, so keypoints obtained with :func:`project_points`
land exactly on the rendered pixels.

A pixel is covered by a face when its centre lies inside (or on the border of) the projected
triangle; the nearest covering face wins (z-buffer). Faces with a vertex at ``z <= near`` are
culled, not clipped. Faces are two-sided: the normal is turned towards the camera before the
Lambertian shading.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from condflow._checks import check_positive_int
from condflow.joints import SMPL_JOINT_NAMES

__all__ = [
    "BODY_PART_PALETTE",
    "SMPL_PART_NAMES",
    "default_camera_center",
    "face_part_labels",
    "overlay",
    "project_points",
    "rasterize",
    "render_body_part_colors",
    "render_mesh",
]

#: Names of the 24 SMPL skinning parts: one per joint, in SMPL order.
SMPL_PART_NAMES: tuple[str, ...] = SMPL_JOINT_NAMES

#: ``[24, 3]`` RGB in [0, 1] per SMPL part: left parts warm (red → yellow), right parts cool
#: (blue → green), torso violet/grey, head skin-coloured.
BODY_PART_PALETTE: np.ndarray = np.array([
    [0.60, 0.60, 0.60],  # pelvis
    [0.90, 0.15, 0.15],  # left_hip (thigh)
    [0.10, 0.30, 0.90],  # right_hip (thigh)
    [0.55, 0.45, 0.70],  # spine1
    [0.95, 0.45, 0.10],  # left_knee (shin)
    [0.10, 0.60, 0.95],  # right_knee (shin)
    [0.50, 0.40, 0.75],  # spine2
    [0.95, 0.70, 0.10],  # left_ankle (foot)
    [0.10, 0.80, 0.80],  # right_ankle (foot)
    [0.45, 0.35, 0.80],  # spine3
    [0.90, 0.90, 0.20],  # left_foot (toes)
    [0.20, 0.80, 0.40],  # right_foot (toes)
    [0.75, 0.70, 0.55],  # neck
    [0.80, 0.10, 0.40],  # left_collar
    [0.20, 0.20, 0.65],  # right_collar
    [0.95, 0.82, 0.65],  # head
    [0.90, 0.30, 0.50],  # left_shoulder (upper arm)
    [0.30, 0.45, 1.00],  # right_shoulder (upper arm)
    [1.00, 0.55, 0.55],  # left_elbow (forearm)
    [0.40, 0.75, 1.00],  # right_elbow (forearm)
    [0.70, 0.20, 0.10],  # left_wrist (hand)
    [0.10, 0.50, 0.35],  # right_wrist (hand)
    [0.60, 0.35, 0.10],  # left_hand (fingers)
    [0.30, 0.65, 0.25],  # right_hand (fingers)
])  # fmt: skip
BODY_PART_PALETTE.setflags(write=False)

_DEFAULT_COLOR = (0.70, 0.75, 0.85)


def _as_array(
    name: str, x: Any, shape: tuple[int | None, ...], dtype: Any = np.float64
) -> np.ndarray:
    """Numpy copy of ``x`` (array or tensor); ``ValueError`` naming ``name`` on bad shape."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    arr = np.asarray(x)
    ok = arr.ndim == len(shape) and all(s is None or arr.shape[i] == s for i, s in enumerate(shape))
    if not ok:
        want = "[" + ", ".join("*" if s is None else str(s) for s in shape) + "]"
        raise ValueError(f"{name}: expected shape {want}, got {list(arr.shape)}")
    if np.issubdtype(arr.dtype, np.floating) and not np.isfinite(arr).all():
        raise ValueError(f"{name}: contains NaN or Inf values")
    return arr.astype(dtype)


def _as_colors(name: str, x: Any, n: int) -> np.ndarray:
    """``[n, 3]`` colours in [0, 1]; integer inputs are read as 0..255."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    arr = np.asarray(x)
    is_int = np.issubdtype(arr.dtype, np.integer)
    arr = _as_array(name, arr, (n, 3))
    return arr / 255.0 if is_int else arr


def default_camera_center(img_size: int) -> np.ndarray:
    """Principal point at the image centre, ``[2]`` = ``((S - 1) / 2, (S - 1) / 2)``."""
    return np.full(2, (img_size - 1) / 2.0)


def project_points(
    points: np.ndarray, focal_length: float, camera_center: np.ndarray
) -> np.ndarray:
    """Pinhole projection ``[N, 3]`` camera-frame points → ``[N, 2]`` pixels (``z > 0`` assumed)."""
    points = np.asarray(points, dtype=np.float64)
    return focal_length * points[:, :2] / points[:, 2:3] + np.asarray(camera_center)


def rasterize(
    vertices: Any,
    faces: Any,
    focal_length: float,
    img_size: int,
    camera_center: Any = None,
    near: float = 1e-3,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Z-buffer rasterization.

    Args:
        vertices: ``[V, 3]`` camera-frame positions (metres).
        faces: ``[F, 3]`` vertex indices.
        focal_length: focal length in pixels.
        img_size: output is ``img_size × img_size``.
        camera_center: ``[2]`` principal point in pixels; default :func:`default_camera_center`.
        near: faces with any vertex at ``z <= near`` are culled.

    Returns:
        ``face_index`` ``[H, W]`` int64 (``-1`` where uncovered), perspective-correct
        ``barycentric`` ``[H, W, 3]`` (zeros where uncovered) and ``depth`` ``[H, W]``
        (camera ``z`` in metres, ``0`` where uncovered).
    """
    check_positive_int("img_size", img_size)
    if not (np.isfinite(focal_length) and focal_length > 0):
        raise ValueError(f"focal_length: expected a finite number > 0, got {focal_length!r}")
    if not (np.isfinite(near) and near > 0):
        raise ValueError(f"near: expected a finite number > 0, got {near!r}")
    verts = _as_array("vertices", vertices, (None, 3))
    faces = _as_array("faces", faces, (None, 3), dtype=np.int64)
    if faces.size and (faces.min() < 0 or faces.max() >= len(verts)):
        raise ValueError(f"faces: indices must lie in [0, {len(verts)}), got "
                         f"[{faces.min()}, {faces.max()}]")
    center = (default_camera_center(img_size) if camera_center is None
              else _as_array("camera_center", camera_center, (2,)))
    size = img_size
    face_index = np.full(size * size, -1, dtype=np.int64)
    bary = np.zeros((size * size, 3))
    depth = np.zeros(size * size)

    z = verts[:, 2]
    in_front = z > near
    uv = focal_length * verts[:, :2] / np.where(in_front, z, 1.0)[:, None] + center
    tri = uv[faces]  # [F, 3, 2]
    a, b, c = tri[:, 0], tri[:, 1], tri[:, 2]
    area = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])
    lo = np.clip(np.ceil(tri.min(axis=1) - 1e-9), 0, size)  # pixel-centre bounding box
    hi = np.clip(np.floor(tri.max(axis=1) + 1e-9), -1, size - 1)
    ext = (hi - lo + 1).astype(np.int64)  # [F, 2] width, height
    keep = in_front[faces].all(axis=1) & (np.abs(area) > 1e-12) & (ext > 0).all(axis=1)
    fid = np.nonzero(keep)[0]
    if fid.size == 0:
        return (face_index.reshape(size, size), bary.reshape(size, size, 3),
                depth.reshape(size, size))

    # Expand every kept face into the pixel centres of its bounding box.
    w, h = ext[fid, 0], ext[fid, 1]
    counts = w * h
    pair_face = np.repeat(fid, counts)
    local = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    pw = np.repeat(w, counts)
    px = lo[pair_face, 0].astype(np.int64) + local % pw
    py = lo[pair_face, 1].astype(np.int64) + local // pw

    # Screen-space barycentrics from edge functions.
    ta, tb, tc = a[pair_face], b[pair_face], c[pair_face]
    inv_area = 1.0 / area[pair_face]
    w0 = ((tb[:, 0] - px) * (tc[:, 1] - py) - (tb[:, 1] - py) * (tc[:, 0] - px)) * inv_area
    w1 = ((tc[:, 0] - px) * (ta[:, 1] - py) - (tc[:, 1] - py) * (ta[:, 0] - px)) * inv_area
    w2 = 1.0 - w0 - w1
    eps = 1e-9
    inside = (w0 >= -eps) & (w1 >= -eps) & (w2 >= -eps)
    pair_face, px, py = pair_face[inside], px[inside], py[inside]
    ws = np.stack([w0[inside], w1[inside], w2[inside]], axis=1).clip(min=0.0)

    # Perspective-correct interpolation: 1/z is linear in screen space.
    wz = ws / z[faces[pair_face]]
    inv_z = wz.sum(axis=1)
    pair_depth = 1.0 / inv_z
    pix = py * size + px

    # Nearest face per pixel: sort by (pixel, depth), keep the first of every pixel.
    order = np.lexsort((pair_depth, pix))
    first = np.ones(order.size, dtype=bool)
    first[1:] = pix[order][1:] != pix[order][:-1]
    win = order[first]
    face_index[pix[win]] = pair_face[win]
    bary[pix[win]] = wz[win] / inv_z[win, None]
    depth[pix[win]] = pair_depth[win]
    return face_index.reshape(size, size), bary.reshape(size, size, 3), depth.reshape(size, size)


def render_mesh(
    vertices: Any,
    faces: Any,
    focal_length: float,
    img_size: int,
    camera_center: Any = None,
    face_colors: Any = None,
    vertex_colors: Any = None,
    background: Any = (1.0, 1.0, 1.0),
    light_dir: Any = (0.3, -0.5, -1.0),
    ambient: float = 0.35,
    near: float = 1e-3,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Render a shaded mesh.

    Args:
        vertices: ``[V, 3]`` camera-frame positions (metres, OpenCV axes).
        faces: ``[F, 3]`` vertex indices.
        focal_length, img_size, camera_center, near: see :func:`rasterize`.
        face_colors: ``[F, 3]`` RGB (floats in [0, 1] or integers in 0..255), or
        vertex_colors: ``[V, 3]`` RGB, interpolated perspective-correctly; default a light grey.
        background: ``[H, W, 3]`` image (floats in [0, 1] or uint8) or an RGB triple.
        light_dir: ``[3]`` direction from the surface towards the light, camera frame
            (default: from the upper left, in front of the person).
        ambient: shade of a face turned away from the light, in [0, 1].

    Returns:
        ``image`` ``[H, W, 3]`` float32 in [0, 1], ``mask`` ``[H, W]`` bool (covered pixels),
        ``depth`` ``[H, W]`` float32 (metres, ``0`` outside the mask).
    """
    if face_colors is not None and vertex_colors is not None:
        raise ValueError("face_colors, vertex_colors: give at most one of them")
    if not 0.0 <= ambient <= 1.0:
        raise ValueError(f"ambient: expected a value in [0, 1], got {ambient!r}")
    face_index, bary, depth = rasterize(vertices, faces, focal_length, img_size,
                                        camera_center, near)
    verts = _as_array("vertices", vertices, (None, 3))
    faces = _as_array("faces", faces, (None, 3), dtype=np.int64)
    light = _as_array("light_dir", light_dir, (3,))
    if np.linalg.norm(light) == 0:
        raise ValueError("light_dir: expected a non-zero vector")
    light = light / np.linalg.norm(light)

    image = _background(background, img_size)
    mask = face_index >= 0
    if not mask.any():
        return image.astype(np.float32), mask, depth.astype(np.float32)
    fi = face_index[mask]

    # Lambertian shading with face normals turned towards the camera (two-sided faces).
    tri = verts[faces[fi]]
    normal = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    normal /= np.linalg.norm(normal, axis=1, keepdims=True).clip(min=1e-300)
    normal *= np.where((normal * tri.mean(axis=1)).sum(axis=1) > 0, -1.0, 1.0)[:, None]
    shade = ambient + (1.0 - ambient) * (normal @ light).clip(min=0.0)

    if face_colors is not None:
        color = _as_colors("face_colors", face_colors, len(faces))[fi]
    elif vertex_colors is not None:
        vc = _as_colors("vertex_colors", vertex_colors, len(verts))
        color = (bary[mask][:, :, None] * vc[faces[fi]]).sum(axis=1)
    else:
        color = np.broadcast_to(np.asarray(_DEFAULT_COLOR), (fi.size, 3))
    image[mask] = (color * shade[:, None]).clip(0.0, 1.0)
    return image.astype(np.float32), mask, depth.astype(np.float32)


def _background(background: Any, size: int) -> np.ndarray:
    if isinstance(background, torch.Tensor):
        background = background.detach().cpu().numpy()
    bg = np.asarray(background)
    scale = 255.0 if np.issubdtype(bg.dtype, np.integer) else 1.0
    if bg.shape == (3,):
        return np.broadcast_to(bg / scale, (size, size, 3)).astype(np.float64)
    if bg.shape == (size, size, 3):
        return bg.astype(np.float64) / scale
    raise ValueError(f"background: expected an RGB triple or an image [{size}, {size}, 3], "
                     f"got shape {list(bg.shape)}")


def face_part_labels(faces: Any, skinning_weights: Any) -> np.ndarray:
    """``[F]`` part index per face: argmax of the summed ``[V, 24]`` weights of its vertices."""
    faces = _as_array("faces", faces, (None, 3), dtype=np.int64)
    weights = _as_array("skinning_weights", skinning_weights, (None, None))
    return weights[faces].sum(axis=1).argmax(axis=1)


def render_body_part_colors(
    vertices: Any,
    faces: Any,
    skinning_weights: Any,
    focal_length: float,
    img_size: int,
    palette: Any = None,
    **kwargs: Any,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Render a body with every face coloured by its dominant skinning part.

    Args:
        vertices: ``[V, 3]``; faces: ``[F, 3]``.
        skinning_weights: ``[V, P]`` per-vertex skinning weights (``P = 24`` for SMPL).
        palette: ``[P, 3]`` colours; default :data:`BODY_PART_PALETTE`.
        kwargs: further :func:`render_mesh` arguments (camera_center, background, ...).

    Returns:
        As :func:`render_mesh`.
    """
    labels = face_part_labels(faces, skinning_weights)
    n_parts = np.asarray(skinning_weights).shape[1]
    pal = BODY_PART_PALETTE if palette is None else _as_colors("palette", palette, n_parts)
    if len(pal) < n_parts:
        raise ValueError(f"palette: expected at least {n_parts} colours, got {len(pal)}")
    return render_mesh(vertices, faces, focal_length, img_size, face_colors=pal[labels], **kwargs)


def overlay(image: Any, rendered: Any, mask: Any, alpha: float = 0.8) -> np.ndarray:
    """Blend ``rendered`` over ``image`` where ``mask``: ``alpha·rendered + (1-alpha)·image``.

    ``image`` and ``rendered`` are ``[H, W, 3]`` (uint8 0..255 or floats in [0, 1], each read by
    its own dtype); ``mask`` is ``[H, W]``. The result has the dtype and range of ``image``.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha: expected a value in [0, 1], got {alpha!r}")
    img = np.asarray(image)
    ren = np.asarray(rendered)
    m = np.asarray(mask, dtype=bool)
    if img.ndim != 3 or img.shape[2] != 3 or ren.shape != img.shape or m.shape != img.shape[:2]:
        raise ValueError(f"image, rendered, mask: expected [H, W, 3], [H, W, 3], [H, W], got "
                         f"{list(img.shape)}, {list(ren.shape)}, {list(m.shape)}")
    img_int = np.issubdtype(img.dtype, np.integer)
    base = img / 255.0 if img_int else img.astype(np.float64)
    top = ren / 255.0 if np.issubdtype(ren.dtype, np.integer) else ren.astype(np.float64)
    out = base.copy()
    out[m] = alpha * top[m] + (1.0 - alpha) * base[m]
    if img_int:
        return np.round(out.clip(0.0, 1.0) * 255.0).astype(img.dtype)
    return out.astype(img.dtype)
