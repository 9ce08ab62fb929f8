"""The input panel of the prediction pictures: what a head's encoder read, drawn for either
kind of input (:attr:`condflow.heads.base.Head.input_kind`).

* ``"keypoints_2d"``: keypoints ``[J, 3]`` (x, y, confidence) or ``[J, 2]`` in the screen
  normalization of pixel coordinates in a W x H image, x' = 2x/W − 1, y' = 2y/W − H/W
  (y down). Seen keypoints (confidence > 0) are drawn as dots joined by the bones of their
  layout (:func:`keypoint_layout`: Human3.6M-16 for 16 keypoints, SPIN's 24 for 24), bones
  coloured by side; hidden ones are left out; a count of no known layout draws points only.
* ``"images"``: ImageNet-normalized crops ``[3, R, R]``, shown de-normalized.

Bone colours by side (:func:`bone_colors`) live here too, shared with the 3D skeletons of
:mod:`condflow.viz.skeleton`.
"""

from __future__ import annotations

import numpy as np
import torch
from matplotlib.axes import Axes
from torch import Tensor

from condflow.data.image_datasets import SPIN_FLIP_PERM
from condflow.heads.base import Head
from condflow.inputs import IMAGENET_MEAN, IMAGENET_STD
from condflow.joints import SPIN_KEYPOINT_NAMES
from condflow.spaces.skeleton import H36M_16, SkeletonLayout

__all__ = [
    "CENTRE_COLOR",
    "INPUT_KINDS",
    "LEFT_COLOR",
    "RIGHT_COLOR",
    "SPIN_24",
    "bone_colors",
    "check_input_kind",
    "check_inputs",
    "denormalize_image",
    "draw_input",
    "keypoint_array",
    "keypoint_layout",
    "resolve_input_kind",
    "square_window",
]

LEFT_COLOR, RIGHT_COLOR, CENTRE_COLOR = "tab:blue", "tab:red", "0.5"

#: The kinds of input a head's encoder reads (the batch keys).
INPUT_KINDS: tuple[str, ...] = ("keypoints_2d", "images")

#: SPIN's 24 keypoints (:data:`condflow.joints.SPIN_KEYPOINT_NAMES`) as a tree for drawing,
#: rooted at the pelvis: legs from the pelvis, spine → thorax → neck, arms from the thorax,
#: jaw and head from the neck, top of head and nose from the head, eyes from the nose, ears
#: from the eyes.
SPIN_24 = SkeletonLayout(
    name="spin_24",
    joint_names=SPIN_KEYPOINT_NAMES,
    parents=(1, 2, 14, 14, 3, 4, 7, 8, 15, 15, 9, 10, 15, 18, -1, 16, 14, 12, 12, 18, 19, 19,
             20, 21),
    flip_perm=SPIN_FLIP_PERM,
    root=(14,),
)

#: The layout of a keypoint count: the lifting set's Human3.6M-16, the mesh keypoints' SPIN-24.
_KEYPOINT_LAYOUTS: dict[int, SkeletonLayout] = {16: H36M_16, 24: SPIN_24}


def _side(name: str) -> str:
    """``"left"``/``"right"`` for names like ``LKnee`` or ``Left Knee``, else ``"centre"``."""
    if name.startswith(("Left ", "Right ")):
        return "left" if name[0] == "L" else "right"
    if len(name) > 1 and name[0] in "LR" and name[1].isupper():
        return "left" if name[0] == "L" else "right"
    return "centre"


def bone_colors(layout: SkeletonLayout) -> list[tuple[int, int, str]]:
    """``(joint, parent, colour)`` per bone, coloured by the side of the child joint
    (names starting with ``L``/``R`` followed by a capital, e.g. ``LKnee``, or with
    ``Left ``/``Right ``)."""
    colors = {"left": LEFT_COLOR, "right": RIGHT_COLOR, "centre": CENTRE_COLOR}
    return [(j, p, colors[_side(layout.joint_names[j])])
            for j, p in enumerate(layout.parents) if p >= 0]


def keypoint_layout(num_keypoints: int) -> SkeletonLayout | None:
    """The layout of ``num_keypoints`` 2D keypoints: Human3.6M-16 (16, the lifting inputs),
    SPIN-24 (24, :data:`SPIN_24`), else ``None`` (points only)."""
    return _KEYPOINT_LAYOUTS.get(num_keypoints)


def resolve_input_kind(model: Head, input_kind: str | None = None) -> str:
    """``input_kind`` if given, else ``model.input_kind``; ``ValueError`` naming it unless it
    is one of :data:`INPUT_KINDS`."""
    kind = model.input_kind if input_kind is None else input_kind
    return check_input_kind(kind)


def check_input_kind(kind: object) -> str:
    """``kind`` if it is one of :data:`INPUT_KINDS`, else ``ValueError`` naming it."""
    if kind not in INPUT_KINDS:
        raise ValueError(f"input_kind: expected one of {', '.join(map(repr, INPUT_KINDS))}, "
                         f"got {kind!r}")
    return str(kind)


def check_inputs(inputs: Tensor | np.ndarray, kind: str) -> Tensor:
    """``inputs`` (as a tensor) if they are a batch of ``kind``: keypoints
    ``[K, J, 3]``/``[K, J, 2]`` or crops ``[K, 3, H, W]``; else ``ValueError`` naming the
    argument and what was expected."""
    if isinstance(inputs, np.ndarray):
        inputs = torch.as_tensor(inputs)
    if not isinstance(inputs, Tensor):
        raise ValueError(f"inputs: expected a tensor, got {type(inputs).__name__}")
    if check_input_kind(kind) == "images":
        if inputs.dim() != 4 or inputs.shape[1] != 3:
            raise ValueError("inputs: expected ImageNet-normalized crops [K, 3, H, W] "
                             f"(input_kind 'images'), got {list(inputs.shape)}")
    elif inputs.dim() != 3 or inputs.shape[-1] not in (2, 3):
        raise ValueError("inputs: expected 2D keypoints [K, J, 3] (x, y, confidence) or "
                         f"[K, J, 2] (input_kind 'keypoints_2d'), got {list(inputs.shape)}")
    return inputs


def denormalize_image(image: Tensor) -> np.ndarray:
    """ImageNet-normalized ``[3, H, W]`` → ``[H, W, 3]`` floats in [0, 1]."""
    img = image.detach().cpu().float().numpy().transpose(1, 2, 0)
    return np.clip(img * IMAGENET_STD + IMAGENET_MEAN, 0.0, 1.0)


def square_window(ax: Axes, points: np.ndarray) -> None:
    """Equal-aspect limits of a square around ``points [N, 2]`` (60 % margin on the larger
    side's half), y pointing down."""
    lo, hi = points.min(0), points.max(0)
    centre, half = (lo + hi) / 2, 0.6 * max(float((hi - lo).max()), 1e-6)
    ax.set_xlim(centre[0] - half, centre[0] + half)
    ax.set_ylim(centre[1] + half, centre[1] - half)
    ax.set_aspect("equal")


def keypoint_array(keypoints: Tensor | np.ndarray) -> np.ndarray:
    """Keypoints ``[J, 3]`` or ``[J, 2]`` (all seen) as ``[J, 3]`` float64 (x, y,
    confidence); ``ValueError`` naming ``inputs`` for another shape."""
    kp = (keypoints.detach().cpu().double().numpy() if isinstance(keypoints, Tensor)
          else np.asarray(keypoints, dtype=np.float64))
    if kp.ndim != 2 or kp.shape[1] not in (2, 3):
        raise ValueError(f"inputs: expected 2D keypoints [J, 3] (x, y, confidence) or [J, 2], "
                         f"got {list(kp.shape)}")
    return kp if kp.shape[1] == 3 else np.concatenate([kp, np.ones((len(kp), 1))], 1)


def _draw_keypoints(ax: Axes, keypoints: Tensor | np.ndarray,
                    layout: SkeletonLayout | None = None) -> None:
    kp = keypoint_array(keypoints)
    seen = kp[:, 2] > 0
    if layout is None or layout.num_joints != len(kp):
        layout = keypoint_layout(len(kp))
    for j, p, color in bone_colors(layout) if layout is not None else []:
        if seen[j] and seen[p]:
            ax.plot(kp[[p, j], 0], kp[[p, j], 1], color=color, lw=1.8)
    ax.scatter(kp[seen, 0], kp[seen, 1], s=9, c="k", zorder=3)
    square_window(ax, kp[seen, :2] if seen.any() else kp[:, :2])
    ax.set_xlabel("x (normalized image)", fontsize=7)
    ax.set_ylabel("y, down (normalized image)", fontsize=7, labelpad=1)
    ax.tick_params(labelsize=6)
    ax.locator_params(nbins=4)


def _draw_image(ax: Axes, image: Tensor, upscale: int) -> None:
    if image.dim() != 3 or image.shape[0] != 3:
        raise ValueError(f"inputs: expected an ImageNet-normalized crop [3, H, W], "
                         f"got {list(image.shape)}")
    crop = denormalize_image(image)
    ax.imshow(np.kron(crop, np.ones((upscale, upscale, 1))) if upscale > 1 else crop)
    ax.axis("off")


def draw_input(
    ax: Axes,
    inputs_i: Tensor,
    kind: str,
    title: str | None = None,
    upscale: int = 1,
    layout: SkeletonLayout | None = None,
) -> None:
    """Draw one input on ``ax``: keypoints ``[J, 3]``/``[J, 2]`` (``kind="keypoints_2d"``;
    bones of ``layout`` when it has J joints, else of :func:`keypoint_layout`, hidden
    keypoints left out, a square window around the
    seen ones in normalized image coordinates) or an ImageNet-normalized crop ``[3, R, R]``
    (``kind="images"``; shown ``upscale`` times larger, nearest neighbour, axes off).

    ``title`` defaults to ``"2D input (hidden joints left out)"`` or ``"input"``."""
    kind = check_input_kind(kind)
    if kind == "images":
        _draw_image(ax, inputs_i, upscale)
        ax.set_title("input" if title is None else title, fontsize=8)
    else:
        _draw_keypoints(ax, inputs_i, layout)
        ax.set_title("2D input (hidden joints left out)" if title is None else title,
                     fontsize=8)
