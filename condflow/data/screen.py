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

from condflow.data.keypoint_files import KeypointFile, to_h36m16, to_spin24
from condflow.joints import SPIN_KEYPOINT_NAMES

#: Keypoint layouts a keypoint encoder reads, by their count: the reader and the root.
_LAYOUTS = {16: (to_h36m16, 0), 24: (to_spin24, SPIN_KEYPOINT_NAMES.index("Pelvis (MPII)"))}

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
    num_keypoints: int = 16,
) -> Tensor:
    """Keypoint-model inputs ``[P, K, 3]`` float32 from the keypoints of a file.

    ``K = 16``: Human3.6M-16 order (the lifters); ``K = 24``: SPIN's 24 (keypoints → mesh,
    root the pelvis). ``(x, y)`` in normalized screen coordinates of an image of
    ``image_size = (W, H)`` pixels (:func:`normalize_screen_coordinates`; with ``normalized``
    the file already holds them); confidences made 0/1 at ``min_confidence`` as in
    training, hidden joints at 0. With ``center`` the hip (or, if hidden, the mean of the
    seen joints) is moved to (0, 0), as the synthetic training cameras look at the hip.
    """
    if num_keypoints not in _LAYOUTS:
        raise ValueError(f"num_keypoints: expected one of {sorted(_LAYOUTS)} (Human3.6M-16, "
                         f"SPIN-24), got {num_keypoints}")
    read, root = _LAYOUTS[num_keypoints]
    keypoints = read(kp)
    seen = keypoints[..., 2] >= min_confidence
    xy = np.where(seen[..., None], keypoints[..., :2], 0.0)
    if not np.isfinite(xy).all():
        raise ValueError("keypoints: seen keypoints have NaN or Inf coordinates")
    if not normalized:
        xy = normalize_screen_coordinates(xy, *image_size)
    if center:
        count = np.maximum(seen.sum(1), 1)[:, None]
        mean = (xy * seen[..., None]).sum(1) / count
        xy = xy - np.where(seen[:, root : root + 1], xy[:, root], mean)[:, None]
    conf = seen.astype(np.float64)[..., None]
    return torch.from_numpy(np.concatenate([xy * conf, conf], -1)).float()
