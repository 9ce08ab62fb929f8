"""Image datasets in the SPIN and ProHMR ``.npz`` layouts, with crops and augmentation.

SPIN layout (Kolotouros et al., 2019)
    ``imgname`` ``[N]`` str, ``center`` ``[N, 2]`` pixels, ``scale`` ``[N]`` (box side / 200),
    ``part`` ``[N, 24, 3]`` 2D keypoints + confidence
    (:data:`condflow.joints.SPIN_KEYPOINT_NAMES`); optional
    ``S`` ``[N, 24, 4]`` 3D keypoints + confidence, ``pose`` ``[N, 72]`` axis-angle SMPL pose,
    ``shape`` ``[N, 10]``, ``has_smpl`` ``[N]`` (ones when ``pose`` is present without it).
ProHMR layout (Kolotouros et al., 2021)
    ``imgname``, ``center``, ``scale`` ``[N]`` or ``[N, 2]`` — **box side in pixels** (as in
    ProHMR's files; the loader divides the largest side by 200); optional ``body_pose``
    ``[N, 72]`` (root orientation first), ``has_body_pose`` ``[N]``, ``betas`` ``[N, 10]``,
    ``has_betas`` ``[N]``, ``body_keypoints_2d`` ``[N, 25, 3]`` (OpenPose BODY_25),
    ``extra_keypoints_2d`` ``[N, 19, 3]``, ``body_keypoints_3d`` ``[N, 25, 4]``,
    ``extra_keypoints_3d`` ``[N, 19, 4]``. Missing keypoint sets are zeros (confidence 0);
    a missing ``has_*`` flag is 1 where its value is given.

Keypoints are in pixels with pixel ``(row i, col j)`` centred at ``(x, y) = (j, i)``; the box is
``center`` and ``scale · 200`` pixels (see :mod:`condflow.data.augment`). Image names are
relative to ``img_dir``. Files are read with condflow's restricted unpickler (numpy arrays
only: no entry can run code); non-finite values are refused naming the key and row.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import Dataset

from condflow._checks import NonNegativeFloat, Probability, check_positive_int
from condflow._safe_pickle import load_npz
from condflow.data.augment import (
    AugmentationParams,
    color_augment,
    crop_image,
    sample_augmentation,
    transform_keypoints,
    transform_keypoints_3d,
    transform_smpl_pose,
)
from condflow.data.keypoint_files import load_keypoints
from condflow.inputs import IMAGENET_MEAN, IMAGENET_STD
from condflow.joints import BODY25_NAMES, SPIN_KEYPOINT_NAMES
from condflow.metrics import mean_pose
from condflow.spaces.rotations import axis_angle_to_matrix

__all__ = [
    "EXTRA_FLIP_PERM",
    "EXTRA_KEYPOINT_NAMES",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "OPENPOSE_FLIP_PERM",
    "PROHMR_FLIP_PERM",
    "PROHMR_KEYPOINT_NAMES",
    "SPIN_FLIP_PERM",
    "AugmentationConfig",
    "ImageDataset",
    "detect_layout",
    "imagenet_normalize",
    "keypoint_box",
    "mean_smpl_body",
    "person_boxes",
    "person_crop",
    "write_prohmr_npz",
    "write_spin_npz",
]

#: Mirror partner of each of SPIN's 24 keypoints (:data:`condflow.joints.SPIN_KEYPOINT_NAMES`).
SPIN_FLIP_PERM: tuple[int, ...] = (
    5, 4, 3, 2, 1, 0, 11, 10, 9, 8, 7, 6, 12, 13, 14, 15, 16, 17, 18, 19, 21, 20, 23, 22,
)  # fmt: skip

#: Mirror partner of each OpenPose BODY_25 keypoint (:data:`condflow.joints.BODY25_NAMES`).
OPENPOSE_FLIP_PERM: tuple[int, ...] = (
    0, 1, 5, 6, 7, 2, 3, 4, 8, 12, 13, 14, 9, 10, 11, 16, 15, 18, 17, 22, 23, 24, 19, 20, 21,
)  # fmt: skip

#: ProHMR's 19 extra keypoints: the first 19 of :data:`condflow.joints.SPIN_KEYPOINT_NAMES`.
EXTRA_KEYPOINT_NAMES: tuple[str, ...] = SPIN_KEYPOINT_NAMES[:19]
EXTRA_FLIP_PERM: tuple[int, ...] = SPIN_FLIP_PERM[:19]

#: ProHMR's 44 keypoints: BODY_25 then the 19 extra ones.
PROHMR_KEYPOINT_NAMES: tuple[str, ...] = BODY25_NAMES + EXTRA_KEYPOINT_NAMES
PROHMR_FLIP_PERM: tuple[int, ...] = OPENPOSE_FLIP_PERM + tuple(25 + i for i in EXTRA_FLIP_PERM)



def imagenet_normalize(img: np.ndarray) -> np.ndarray:
    """RGB values ``[..., 3]`` in ``0..255`` → the image networks' input values
    ``(img / 255 − IMAGENET_MEAN) / IMAGENET_STD`` (per channel); float32 stays float32."""
    return (img / 255.0 - IMAGENET_MEAN) / IMAGENET_STD


def keypoint_box(
    keypoints: np.ndarray, enlarge: float = 1.2
) -> tuple[np.ndarray, float] | None:
    """The person box around ``keypoints [K, 3]`` (pixels; confidence): the bounding box of
    the seen keypoints (confidence > 0), its longer side enlarged ``enlarge`` times
    (ProHMR's rule), as ``(centre [2] in pixels, scale = side / 200 px)``. ``None`` with
    fewer than two seen keypoints or a box of zero size."""
    seen = keypoints[keypoints[:, 2] > 0, :2]
    if len(seen) < 2:
        return None
    lo, hi = seen.min(0), seen.max(0)
    side = float((hi - lo).max())
    return ((lo + hi) / 2, enlarge * side / 200.0) if side > 0 else None


def person_crop(
    img: np.ndarray, center: Sequence[float] | np.ndarray, scale: float, res: int
) -> np.ndarray:
    """The network input for one person box of an RGB image ``[H, W, 3]`` (``0..255``):
    the ``res × res`` crop of the box (centre ``center`` in pixels, side ``200 · scale``
    pixels; :func:`~condflow.data.augment.crop_image`, unaugmented), ImageNet-normalized
    (:func:`imagenet_normalize`). Returns ``[res, res, 3]`` float32, the evaluation crop of
    :class:`ImageDataset`."""
    return imagenet_normalize(crop_image(img, center, scale, res))

_SPIN_REQUIRED = ("imgname", "center", "scale", "part")
_PROHMR_REQUIRED = ("imgname", "center", "scale")
_PROHMR_MARKERS = ("body_keypoints_2d", "extra_keypoints_2d", "body_pose", "betas",
                   "body_keypoints_3d", "extra_keypoints_3d")


@dataclass
class AugmentationConfig:
    """Training augmentation (see :func:`condflow.data.augment.sample_augmentation`).

    Defaults follow SPIN; ProHMR uses ``scale_factor=0.3, rot_prob=0.6, color_factor=0.2,
    trans_factor=0.02``.
    """

    scale_factor: NonNegativeFloat = 0.25
    rot_factor: NonNegativeFloat = 30.0
    rot_prob: Probability = 0.4
    flip_prob: Probability = 0.5
    color_factor: NonNegativeFloat = 0.4
    trans_factor: NonNegativeFloat = 0.0


def detect_layout(keys: Iterable[str]) -> str:
    """``"prohmr"`` if any ProHMR-specific key is present, ``"spin"`` if ``part`` is, else error."""
    present = set(keys)
    if present & set(_PROHMR_MARKERS):
        return "prohmr"
    if "part" in present:
        return "spin"
    raise ValueError(f"npz layout: found neither SPIN keys ({list(_SPIN_REQUIRED)}) nor ProHMR "
                     f"keys (any of {list(_PROHMR_MARKERS)}); file has {sorted(present)}")


def _get(data: dict[str, np.ndarray], key: str, n: int, trailing: tuple[int, ...]) -> np.ndarray:
    arr = np.asarray(data[key])
    if arr.shape != (n, *trailing):
        raise ValueError(f"{key}: expected shape {[n, *trailing]}, got {list(arr.shape)}")
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"{key}: expected numbers, got dtype {arr.dtype}")
    if np.issubdtype(arr.dtype, np.floating) and not np.isfinite(arr).all():
        bad = ~np.isfinite(arr.reshape(n, -1)).all(axis=1)
        raise ValueError(f"{key}: row {int(np.argmax(bad))} holds NaN or Inf values "
                         f"({int(bad.sum())} such rows)")
    return arr.astype(np.float32)


def _optional(
    data: dict[str, np.ndarray], key: str, n: int, trailing: tuple[int, ...],
    flag: str | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """``(value, has)`` with zeros / ``has = 0`` when ``key`` is absent."""
    if key not in data:
        return np.zeros((n, *trailing), np.float32), np.zeros(n, np.float32)
    value = _get(data, key, n, trailing)
    has = _get(data, flag, n, ()) if flag is not None and flag in data else np.ones(n, np.float32)
    return value, has


class ImageDataset(Dataset):
    """Person crops with keypoints and SMPL parameters from a SPIN or ProHMR ``.npz`` file.

    Items are dicts of tensors:

    - ``img`` ``[3, res, res]`` float32, ImageNet-normalized RGB;
    - ``keypoints_2d`` ``[K, 3]`` normalized crop coordinates + confidence (``K = 24`` SPIN,
      ``44`` ProHMR); ``keypoints_3d`` ``[K, 4]`` (input units, camera frame turned/mirrored
      with the crop) + confidence;
    - ``global_orient`` ``[3]``, ``body_pose`` ``[23, 3]`` axis-angle; ``betas`` ``[10]``;
    - float scalars ``has_smpl``, ``has_betas``, ``has_3d``;
    - evaluation fields: ``imgname`` (str), ``center`` ``[2]``, ``scale`` (box side / 200;
      both before augmentation), ``index`` (int64).

    Training mode draws fresh augmentation per item from ``seed``, the index and the epoch
    (:meth:`set_epoch`), so runs are reproducible under any number of workers.
    """

    def __init__(
        self,
        npz_path: str | Path,
        img_dir: str | Path,
        layout: str | None = None,
        train: bool = False,
        res: int = 224,
        augmentation: AugmentationConfig | None = None,
        seed: int = 0,
    ) -> None:
        path = Path(npz_path)
        self.train, self.res, self.seed = bool(train), res, int(seed)
        if not path.is_file():
            raise FileNotFoundError(f"npz_path: no such file: {path}")
        check_positive_int("res", res)
        data = load_npz(path, "npz_path")
        try:
            self._read(data, path, layout)
        except ValueError as err:
            if str(path) in str(err):
                raise
            raise ValueError(f"npz_path: {path}: {err}") from None
        self.img_dir = Path(img_dir)
        self.augmentation = augmentation or AugmentationConfig()
        self.epoch = 0

    def _read(self, data: dict[str, np.ndarray], path: Path, layout: str | None) -> None:
        if layout is None:
            layout = detect_layout(data)
        if layout not in ("spin", "prohmr"):
            raise ValueError(f"layout: expected 'spin', 'prohmr' or None, got {layout!r}")
        required = _SPIN_REQUIRED if layout == "spin" else _PROHMR_REQUIRED
        missing = [k for k in required if k not in data]
        if missing:
            raise ValueError(f"npz_path: {path} lacks keys {missing} required by the {layout} "
                             f"layout (has {sorted(data)})")
        self.layout = layout
        self.imgname = [s.decode() if isinstance(s, bytes) else str(s) for s in data["imgname"]]
        n = len(self.imgname)
        self.center = _get(data, "center", n, (2,))
        if layout == "spin":
            self._load_spin(data, n)
        else:
            self._load_prohmr(data, n)
        if not (self.scale > 0).all():
            raise ValueError("scale: expected every box scale > 0")

    def _load_spin(self, data: dict[str, np.ndarray], n: int) -> None:
        self.scale = _get(data, "scale", n, ())
        self.keypoints_2d = _get(data, "part", n, (24, 3))
        self.keypoints_3d, has_s = _optional(data, "S", n, (24, 4))
        if ("pose" in data) != ("shape" in data):
            raise ValueError(f"npz: 'pose' and 'shape' come together, got only "
                             f"{'pose' if 'pose' in data else 'shape'!r}")
        self.pose, self.has_smpl = _optional(data, "pose", n, (72,), "has_smpl")
        self.betas, _ = _optional(data, "shape", n, (10,))
        self.has_betas = self.has_smpl
        self.has_3d = has_s * (self.keypoints_3d[..., 3] > 0).any(axis=1)
        self.flip_perm = SPIN_FLIP_PERM

    def _load_prohmr(self, data: dict[str, np.ndarray], n: int) -> None:
        scale = np.asarray(data["scale"], dtype=np.float32)
        if scale.shape not in ((n,), (n, 1), (n, 2)):
            raise ValueError(f"scale: expected shape [{n}] or [{n}, 2], got {list(scale.shape)}")
        self.scale = scale.reshape(n, -1).max(axis=1) / 200.0
        kp2 = [_optional(data, k, n, (j, 3))[0]
               for k, j in (("body_keypoints_2d", 25), ("extra_keypoints_2d", 19))]
        kp3 = [_optional(data, k, n, (j, 4))[0]
               for k, j in (("body_keypoints_3d", 25), ("extra_keypoints_3d", 19))]
        self.keypoints_2d = np.concatenate(kp2, axis=1)
        self.keypoints_3d = np.concatenate(kp3, axis=1)
        self.pose, self.has_smpl = _optional(data, "body_pose", n, (72,), "has_body_pose")
        self.betas, self.has_betas = _optional(data, "betas", n, (10,), "has_betas")
        self.has_3d = np.asarray((self.keypoints_3d[..., 3] > 0).any(axis=1), np.float32)
        self.flip_perm = PROHMR_FLIP_PERM

    def __len__(self) -> int:
        return len(self.imgname)

    def set_epoch(self, epoch: int) -> None:
        """Select the augmentation draws of ``epoch`` (training mode)."""
        self.epoch = int(epoch)

    def load_image(self, index: int) -> np.ndarray:
        """``[H, W, 3]`` uint8 RGB image of item ``index``."""
        path = self.img_dir / self.imgname[index]
        if not path.is_file():
            raise FileNotFoundError(f"image of item {index} ({self.imgname[index]!r}) not "
                                    f"found: {path}")
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))

    def augmentation_params(self, index: int) -> AugmentationParams:
        """Parameters for item ``index``: identity in eval mode, else a seeded draw."""
        if not self.train:
            return AugmentationParams()
        a = self.augmentation
        rng = np.random.default_rng([self.seed, self.epoch, index])
        return sample_augmentation(rng, a.scale_factor, a.rot_factor, a.rot_prob, a.flip_prob,
                                   a.color_factor, a.trans_factor)

    def __getitem__(self, index: int) -> dict[str, Any]:
        index = int(index)
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} items")
        index %= len(self)
        aug = self.augmentation_params(index)
        box = self.scale[index] * 200.0
        center = self.center[index] + aug.translation * box
        scale = float(self.scale[index] * aug.scale)

        img = crop_image(self.load_image(index), center, scale, self.res, aug.rot, aug.flip)
        img = imagenet_normalize(color_augment(img, aug.color))
        kp2 = transform_keypoints(self.keypoints_2d[index], center, scale, aug.rot, aug.flip,
                                  self.flip_perm)
        kp3 = transform_keypoints_3d(self.keypoints_3d[index], aug.rot, aug.flip, self.flip_perm)
        pose = transform_smpl_pose(self.pose[index], aug.rot, aug.flip)

        def f32(x: Any) -> Tensor:
            return torch.as_tensor(np.asarray(x, dtype=np.float32))

        return {
            "img": torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1), np.float32)),
            "keypoints_2d": f32(kp2),
            "keypoints_3d": f32(kp3),
            "global_orient": f32(pose[:3]),
            "body_pose": f32(pose[3:].reshape(23, 3)),
            "betas": f32(self.betas[index]),
            "has_smpl": f32(self.has_smpl[index]),
            "has_betas": f32(self.has_betas[index]),
            "has_3d": f32(self.has_3d[index]),
            "imgname": self.imgname[index],
            "center": f32(self.center[index]),
            "scale": f32(self.scale[index]),
            "index": torch.tensor(index),
        }


def _stack(name: str, x: Any, n: int, trailing: tuple[int, ...]) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64)
    if arr.shape != (n, *trailing):
        raise ValueError(f"{name}: expected shape {[n, *trailing]}, got {list(arr.shape)}")
    return arr


def _names(imgname: Sequence[str]) -> np.ndarray:
    return np.array([str(s) for s in imgname], dtype=str)


def write_spin_npz(
    path: str | Path,
    imgname: Sequence[str],
    center: np.ndarray,
    scale: np.ndarray,
    part: np.ndarray,
    S: np.ndarray | None = None,
    pose: np.ndarray | None = None,
    shape: np.ndarray | None = None,
    has_smpl: np.ndarray | None = None,
) -> None:
    """Write a SPIN-layout file (shapes as in the module docstring; ``scale`` = box side / 200)."""
    n = len(imgname)
    out = {"imgname": _names(imgname), "center": _stack("center", center, n, (2,)),
           "scale": _stack("scale", scale, n, ()), "part": _stack("part", part, n, (24, 3))}
    if S is not None:
        out["S"] = _stack("S", S, n, (24, 4))
    if (pose is None) != (shape is None):
        raise ValueError("pose, shape: give both or neither")
    if pose is not None:
        out["pose"] = _stack("pose", pose, n, (72,))
        out["shape"] = _stack("shape", shape, n, (10,))
        out["has_smpl"] = np.ones(n) if has_smpl is None else _stack("has_smpl", has_smpl, n, ())
    np.savez(path, allow_pickle=False, **out)


def write_prohmr_npz(
    path: str | Path,
    imgname: Sequence[str],
    center: np.ndarray,
    scale: np.ndarray,
    body_pose: np.ndarray | None = None,
    has_body_pose: np.ndarray | None = None,
    betas: np.ndarray | None = None,
    has_betas: np.ndarray | None = None,
    body_keypoints_2d: np.ndarray | None = None,
    extra_keypoints_2d: np.ndarray | None = None,
    body_keypoints_3d: np.ndarray | None = None,
    extra_keypoints_3d: np.ndarray | None = None,
) -> None:
    """Write a ProHMR-layout file.

    ``scale`` ``[N]`` is given like everywhere in condflow (box side / 200) and stored as ProHMR
    stores it, in pixels (``scale · 200``). Omitted optional arrays are not written; a value
    without its ``has_*`` flag gets ones.
    """
    n = len(imgname)
    out = {"imgname": _names(imgname), "center": _stack("center", center, n, (2,)),
           "scale": _stack("scale", scale, n, ()) * 200.0}
    fields = (("body_pose", body_pose, (72,), "has_body_pose", has_body_pose),
              ("betas", betas, (10,), "has_betas", has_betas),
              ("body_keypoints_2d", body_keypoints_2d, (25, 3), None, None),
              ("extra_keypoints_2d", extra_keypoints_2d, (19, 3), None, None),
              ("body_keypoints_3d", body_keypoints_3d, (25, 4), None, None),
              ("extra_keypoints_3d", extra_keypoints_3d, (19, 4), None, None))
    for key, value, trailing, flag, flag_value in fields:
        if value is None:
            continue
        out[key] = _stack(key, value, n, trailing)
        if flag is not None:
            out[flag] = np.ones(n) if flag_value is None else _stack(flag, flag_value, n, ())
    if len(out) == 3:
        raise ValueError("write_prohmr_npz: give at least one of body_pose, betas or keypoints")
    np.savez(path, allow_pickle=False, **out)


def mean_smpl_body(pose: np.ndarray | Tensor, betas: np.ndarray | Tensor,
                   has_smpl: np.ndarray | Tensor) -> tuple[Tensor, Tensor]:
    """The mean body pose ``[23, 3, 3]`` (each joint's chordal mean rotation,
    :func:`condflow.metrics.mean_pose`) and shape ``[10]`` of the rows with SMPL ground truth
    (``has_smpl > 0``) of axis-angle poses ``pose [N, 72]`` and shapes ``betas [N, 10]``,
    float32 (computed in float64)."""
    keep = torch.as_tensor(np.asarray(has_smpl) > 0)
    pose = torch.as_tensor(np.asarray(pose), dtype=torch.float64)[keep]
    rot, betas = mean_pose(axis_angle_to_matrix(pose[:, 3:].reshape(-1, 23, 3)),
                           torch.as_tensor(np.asarray(betas), dtype=torch.float64)[keep])
    return rot.float(), betas.float()


def person_boxes(json_path: Path | None, width: int, height: int
                 ) -> list[tuple[np.ndarray, float]]:
    """``(center [2], scale)`` per person (box side = 200·scale pixels): the box of the
    person's seen keypoints enlarged 1.2 times (ProHMR's rule); without keypoints, the whole
    image."""
    if json_path is None:
        return [(np.array([width / 2, height / 2]), max(width, height) / 200.0)]
    boxes = []
    for kp in load_keypoints(json_path).keypoints:
        box = keypoint_box(kp)
        if box is not None:
            boxes.append(box)
    if not boxes:
        raise ValueError(f"{json_path}: no person with two or more seen keypoints")
    return boxes
