"""Normalized screen coordinates of 2D keypoints, the lifting models' input space.

VideoPose3D's normalization maps a ``W × H`` image's pixels to ``x ∈ [-1, 1]`` with ``y``
scaled alike (``y ∈ [-H/W, H/W]``), keeping the aspect ratio. The synthetic lifting set,
the Human3.6M loader and the keypoint files given to ``condflow predict``/``fit`` all pass
through :func:`normalize_screen_coordinates`.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from condflow.data.keypoint_files import KeypointFile, to_h36m16

__all__ = ["lifting_inputs", "normalize_screen_coordinates"]


def normalize_screen_coordinates(xy: np.ndarray, w: float, h: float) -> np.ndarray:
    """Pixels → ``[-1, 1]`` on the x axis, keeping the aspect ratio: ``xy / w · 2 − [1, h/w]``.

    ``xy``: ``[..., 2]`` pixel coordinates in a ``w × h`` image (pixels); returns the same
    shape and dtype.
    """
    return xy / w * 2 - np.array([1.0, h / w], dtype=xy.dtype)


def lifting_inputs(
    kp: KeypointFile,
    image_size: tuple[float, float],
    normalized: bool,
    center: bool,
    min_confidence: float,
) -> Tensor:
    """Lifting model inputs ``[P, 16, 3]`` float32 from the keypoints of a file.

    Human3.6M-16 order; ``(x, y)`` in normalized screen coordinates of an image of
    ``image_size = (W, H)`` pixels (:func:`normalize_screen_coordinates`; with ``normalized``
    the file already holds them); confidences made 0/1 at ``min_confidence`` as in
    training, hidden joints at 0. With ``center`` the hip (or, if hidden, the mean of the
    seen joints) is moved to (0, 0), as the synthetic training cameras look at the hip.
    """
    h36m = to_h36m16(kp)
    seen = h36m[..., 2] >= min_confidence
    xy = np.where(seen[..., None], h36m[..., :2], 0.0)
    if not np.isfinite(xy).all():
        raise ValueError("keypoints: seen keypoints have NaN or Inf coordinates")
    if not normalized:
        xy = normalize_screen_coordinates(xy, *image_size)
    if center:
        count = np.maximum(seen.sum(1), 1)[:, None]
        mean = (xy * seen[..., None]).sum(1) / count
        xy = xy - np.where(seen[:, :1], xy[:, 0], mean)[:, None]
    conf = seen.astype(np.float64)[..., None]
    return torch.from_numpy(np.concatenate([xy * conf, conf], -1)).float()
