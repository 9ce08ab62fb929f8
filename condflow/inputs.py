"""What a model reads: the kinds of input, their batch keys, shapes and preparation.

A data source says which input its batches carry (:class:`InputSpec`); an encoder says which
kinds it reads (its ``input_kind``); a configuration that pairs an encoder with data of
another kind is refused when it is loaded. Two kinds exist:

- ``"keypoints_2d"``: 2D keypoints ``[B, K, 3]`` (x', y', confidence), screen-normalized
  (VideoPose3D's x' = 2x/W − 1, y' = 2y/W − H/W), a hidden keypoint has confidence 0 and
  x' = y' = 0; batch key ``keypoints_2d``.
- ``"images"``: RGB crops ``[B, 3, R, R]``, ImageNet-normalized; batch key ``img``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from condflow._checks import check_positive_int

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "INPUT_KINDS",
    "InputSpec",
    "example_inputs",
    "input_normalization",
]

#: ImageNet's per-channel RGB mean and standard deviation (pixels / 255).
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)

#: Each input kind and the batch key that holds it.
INPUT_KINDS: dict[str, str] = {"keypoints_2d": "keypoints_2d", "images": "img"}


@dataclass(frozen=True)
class InputSpec:
    """The input of a data source's batches.

    Attributes:
        kind: one of :data:`INPUT_KINDS`.
        shape: the shape of one example, e.g. ``(16, 3)`` keypoints or ``(3, 64, 64)``.
    """

    kind: str
    shape: tuple[int, ...]

    def __post_init__(self) -> None:
        if self.kind not in INPUT_KINDS:
            raise ValueError(f"kind: expected one of {sorted(INPUT_KINDS)}, got {self.kind!r}")

    @property
    def key(self) -> str:
        """The batch key of the input (``"keypoints_2d"`` or ``"img"``)."""
        return INPUT_KINDS[self.kind]


def example_inputs(kind: str, shape: tuple[int, ...], batch_size: int = 2,
                   generator: torch.Generator | None = None) -> Tensor:
    """Plausible random inputs ``[batch_size, *shape]`` of ``kind``: normalized keypoints in
    [-0.6, 0.6] with confidences in [0.5, 1] (the last channel, when there are 3), or
    standardized images."""
    check_positive_int("batch_size", batch_size)
    if kind == "images":
        return torch.randn(batch_size, *shape, generator=generator)
    if kind != "keypoints_2d":
        raise ValueError(f"kind: expected one of {sorted(INPUT_KINDS)}, got {kind!r}")
    kp = torch.rand(batch_size, *shape, generator=generator)
    kp[..., :2] = kp[..., :2] * 1.2 - 0.6
    if shape[-1] == 3:
        kp[..., 2] = 0.5 + 0.5 * kp[..., 2]
    return kp


def input_normalization(kind: str, shape: tuple[int, ...]) -> dict[str, Any]:
    """How inputs of ``kind`` and per-example ``shape`` must be prepared, in words (stored
    with exported graphs)."""
    if kind == "images":
        side = "R" if len(shape) < 3 else str(shape[-1])
        return {
            "inputs": f"RGB crops [B, 3, {side}, {side}] of a square box around the person "
            "(condflow predict: the box of the seen keypoints, enlarged 1.2 times)",
            "pixels": "(rgb / 255 - mean) / std per channel",
            "mean": [float(v) for v in IMAGENET_MEAN],
            "std": [float(v) for v in IMAGENET_STD],
        }
    if kind != "keypoints_2d":
        raise ValueError(f"kind: expected one of {sorted(INPUT_KINDS)}, got {kind!r}")
    layout = {16: " in Human3.6M-16 order", 24: " in SPIN-24 order"}.get(shape[0], "")
    return {
        "inputs": f"2D keypoints [B, {shape[0]}, 3] (x, y, confidence){layout} "
        "(see condflow.data.keypoint_files)",
        "xy": "VideoPose3D's screen normalization of pixel coordinates in a W x H image: "
        "x' = 2 x / W - 1, y' = 2 y / W - H / W",
        "confidence": "1 for a seen joint, 0 for a hidden one (whose x', y' are 0)",
    }
