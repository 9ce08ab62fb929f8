"""ProHMR's demo crop: the person box of an OpenPose detection and its 224 px network input.

ProHMR's demo (``OpenPoseDataset`` → ``ImageDataset`` → ``get_example``) takes the box of
a person's keypoints with ``y > 0``, enlarges its longer side 1.2 times (square box, centre
kept; centre and side rounded to float32 as ProHMR stores them), maps the box onto a
224 x 224 crop with ``cv2.warpAffine`` (bilinear, zero outside the image) and normalizes
the RGB crop with ImageNet's mean and std (×255), channels first.

:func:`prohmr_crop` reproduces that crop bit for bit without OpenCV: OpenCV's
``warpAffine`` rounds the source coordinate of every crop pixel to 1/32 pixel in fixed point
and blends the four neighbours with integer weights (15 fractional bits), which
:func:`warp_affine_bilinear` mirrors. Pixel convention (ProHMR's): crop pixel ``q`` samples
the image at ``c + (q - res/2) · side/res`` — half a crop pixel from the pixel-centre
convention of :func:`condflow.data.augment.crop_image`, which condflow's own training uses.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from condflow._checks import check_positive_int

__all__ = [
    "PROHMR_RESCALE_FACTOR",
    "prohmr_box",
    "prohmr_crop",
    "prohmr_crop_transform",
    "prohmr_inputs",
    "warp_affine_bilinear",
]

#: ProHMR's ``OpenPoseDataset(rescale_factor=1.2)``: box side over the keypoints' extent.
PROHMR_RESCALE_FACTOR = 1.2
_IMAGENET_MEAN = np.array([0.485, 0.456, 0.406])  # ProHMR's MODEL.IMAGE_MEAN (RGB)
_IMAGENET_STD = np.array([0.229, 0.224, 0.225])  # ProHMR's MODEL.IMAGE_STD (RGB)

# OpenCV's fixed point in warpAffine / remap (imgwarp.cpp).
_AB_BITS, _INTER_BITS, _COEF_BITS = 10, 5, 15
_TAB = 1 << _INTER_BITS


def prohmr_box(
    keypoints: np.ndarray, rescale_factor: float = PROHMR_RESCALE_FACTOR
) -> tuple[np.ndarray, np.float32]:
    """ProHMR's box of one OpenPose person: ``(center [2], side)`` in pixels, float32.

    Args:
        keypoints: ``[K, 2 or 3]`` pixel coordinates (x, y[, confidence]); as in ProHMR,
            the keypoints with ``y > 0`` are used (OpenPose writes undetected ones as 0).
        rescale_factor: side of the square box over the larger extent of the keypoints.
    """
    kp = np.asarray(keypoints, dtype=np.float64)
    if kp.ndim != 2 or kp.shape[1] not in (2, 3):
        raise ValueError(f"keypoints: expected shape [K, 2] or [K, 3], got {list(kp.shape)}")
    seen = kp[kp[:, 1] > 0, :2]
    if len(seen) == 0 or not np.isfinite(seen).all():
        raise ValueError("keypoints: no keypoint with y > 0 and finite coordinates")
    lo, hi = seen.min(0), seen.max(0)
    side = rescale_factor * float((hi - lo).max())
    if not side > 0:
        raise ValueError("keypoints: the seen keypoints span no area (one point?)")
    center = ((lo + hi) / 2).astype(np.float32)
    # ProHMR stores scale = side / 200 in float32 and crops a box of scale · 200 pixels.
    scale = np.float32(side) / np.float32(200.0)
    return center, np.float32(scale * np.float32(200))


def prohmr_crop_transform(
    center: Sequence[float] | np.ndarray, side: float | np.floating, res: int = 224
) -> np.ndarray:
    """``[2, 3]`` affine map (float64) from image to crop pixels, as ProHMR's
    ``gen_trans_from_patch_cv`` + ``cv2.getAffineTransform`` build it (no rotation/scale
    augmentation): the box centre → ``(res/2, res/2)``, ``side`` pixels → ``res``."""
    c = np.asarray(center, dtype=np.float32)
    half = np.float32(side) * np.float32(0.5)
    src = np.array([c, c + np.array([0, half], np.float32), c + np.array([half, 0], np.float32)],
                   dtype=np.float32)
    h = np.float32(res * 0.5)
    dst = np.array([[h, h], [h, 2 * h], [2 * h, h]], dtype=np.float32)
    # getAffineTransform: the 6x6 system [x y 1 0 0 0; 0 0 0 x y 1] m = dst, in float64.
    a = np.zeros((6, 6))
    a[0::2, :2], a[0::2, 2] = src, 1
    a[1::2, 3:5], a[1::2, 5] = src, 1
    return np.linalg.solve(a, dst.astype(np.float64).reshape(6)).reshape(2, 3)


def _invert_affine(m: np.ndarray) -> np.ndarray:
    """``cv2.invertAffineTransform``, in its operation order."""
    d = m[0, 0] * m[1, 1] - m[0, 1] * m[1, 0]
    d = 1.0 / d if d != 0 else 0.0
    a11, a22 = m[1, 1] * d, m[0, 0] * d
    a12, a21 = -m[0, 1] * d, -m[1, 0] * d
    b1 = -a11 * m[0, 2] - a12 * m[1, 2]
    b2 = -a21 * m[0, 2] - a22 * m[1, 2]
    return np.array([[a11, a12, b1], [a21, a22, b2]])


def warp_affine_bilinear(
    img: np.ndarray, transform: np.ndarray, size: tuple[int, int]
) -> np.ndarray:
    """``cv2.warpAffine(img, transform, size, flags=cv2.INTER_LINEAR)`` for uint8 images,
    with OpenCV's fixed-point arithmetic (zero outside the image).

    Args:
        img: ``[H, W, C]`` uint8. transform: ``[2, 3]`` image → output pixel map.
        size: ``(width, height)`` of the output.

    Returns:
        ``[height, width, C]`` uint8.
    """
    arr = np.asarray(img)
    if arr.ndim != 3 or arr.dtype != np.uint8:
        raise ValueError(f"img: expected a [H, W, C] uint8 array, got {arr.dtype} "
                         f"{list(arr.shape)}")
    m = _invert_affine(np.asarray(transform, dtype=np.float64))  # output → image
    width, height = size
    scale = 1 << _AB_BITS
    x, y = np.arange(width, dtype=np.float64), np.arange(height, dtype=np.float64)
    # Coordinates in 1/1024 px, rounded to nearest-even like cvRound, then to 1/32 px.
    adelta, bdelta = np.rint(m[0, 0] * x * scale), np.rint(m[1, 0] * x * scale)
    x0 = np.rint((m[0, 1] * y + m[0, 2]) * scale) + scale // _TAB // 2
    y0 = np.rint((m[1, 1] * y + m[1, 2]) * scale) + scale // _TAB // 2
    shift = _AB_BITS - _INTER_BITS
    gx = (x0[:, None] + adelta[None, :]).astype(np.int64) >> shift  # [height, width]
    gy = (y0[:, None] + bdelta[None, :]).astype(np.int64) >> shift
    sx, sy = gx >> _INTER_BITS, gy >> _INTER_BITS
    ax, ay = gx & (_TAB - 1), gy & (_TAB - 1)
    # Integer weights of the four neighbours, summing to 2^15.
    unit = (1 << _COEF_BITS) // (_TAB * _TAB)
    weights = (((_TAB - ay) * (_TAB - ax)), ((_TAB - ay) * ax), (ay * (_TAB - ax)), (ay * ax))
    h, w = arr.shape[:2]
    total = np.zeros((height, width, arr.shape[2]), dtype=np.int64)
    for (dy, dx), wt in zip(((0, 0), (0, 1), (1, 0), (1, 1)), weights, strict=True):
        px, py = sx + dx, sy + dy
        inside = (px >= 0) & (px < w) & (py >= 0) & (py < h)
        values = arr[np.clip(py, 0, h - 1), np.clip(px, 0, w - 1)].astype(np.int64)
        total += np.where(inside[..., None], values, 0) * (wt * unit)[..., None]
    out = (total + (1 << (_COEF_BITS - 1))) >> _COEF_BITS
    return np.clip(out, 0, 255).astype(np.uint8)


def prohmr_crop(
    img: np.ndarray,
    center: Sequence[float] | np.ndarray,
    side: float | np.floating,
    res: int = 224,
    mean: Sequence[float] = tuple(_IMAGENET_MEAN),
    std: Sequence[float] = tuple(_IMAGENET_STD),
) -> np.ndarray:
    """ProHMR's network input for one person: ``[3, res, res]`` float32.

    Args:
        img: ``[H, W, 3]`` uint8 RGB image. center, side: the box (:func:`prohmr_box`).
        res: crop side in pixels (ProHMR's ``MODEL.IMAGE_SIZE``, 224).
        mean, std: per-channel normalization of the [0, 1] RGB values (ImageNet's).
    """
    check_positive_int("res", res)
    arr = np.asarray(img)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"img: expected an [H, W, 3] RGB image, got shape {list(arr.shape)}")
    if not (np.isfinite(side) and side > 0):
        raise ValueError(f"side: expected a finite number > 0, got {side!r}")
    patch = warp_affine_bilinear(arr, prohmr_crop_transform(center, side, res), (res, res))
    # As ProHMR: float32 pixels, minus 255·mean and over 255·std computed in float64.
    chw = patch.transpose(2, 0, 1).astype(np.float32)
    mean255 = 255.0 * np.asarray(mean, dtype=np.float64)
    std255 = 255.0 * np.asarray(std, dtype=np.float64)
    return ((chw - mean255[:, None, None]) / std255[:, None, None]).astype(np.float32)


def prohmr_inputs(
    img: np.ndarray, people: np.ndarray | None, res: int = 224
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ProHMR demo's inputs for every person of an image: crops ``[P, 3, res, res]`` float32,
    box centres ``[P, 2]`` and sides ``[P]`` (pixels).

    Args:
        img: ``[H, W, 3]`` uint8 RGB. people: ``[P, K, 2 or 3]`` OpenPose keypoints per
            person, or ``None`` for one box around the whole image (side = its larger side).
    """
    arr = np.asarray(img)
    if people is None:
        h, w = arr.shape[:2]
        boxes = [(np.array([w / 2, h / 2], np.float32), np.float32(max(h, w)))]
    else:
        boxes = [prohmr_box(kp) for kp in np.asarray(people)]
        if not boxes:
            raise ValueError("people: no person given")
    crops = np.stack([prohmr_crop(arr, c, side, res) for c, side in boxes])
    return crops, np.stack([c for c, _ in boxes]), np.array([s for _, s in boxes], np.float32)
