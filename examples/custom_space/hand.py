"""A user's own output space and data source: 3D hands from 2D keypoints, as bone vectors.

Nothing here is part of condflow; the module registers its parts when imported, so the
command line can train, evaluate and export them:

    condflow --plugin examples/custom_space/hand.py train examples/custom_space/config.yaml

- ``hand_bones``: an output space over the 21 joints of a hand (wrist, then four joints per
  finger, thumb to little finger). Its features are the 20 *bone vectors* (child minus
  parent, mm), not joint positions: ``to_native`` is the forward kinematics (a sum along
  the chain), ``from_native`` its inverse. The map is linear with determinant 1, so a
  density over bone vectors is the same density over root-relative joints (mm).
- ``synthetic_hands``: hands with random finger flexion and spread and a random global
  rotation, 0.35–0.7 m in front of a 1000 px pinhole camera; their 21 keypoints in
  VideoPose3D's screen normalization with pixel noise and occlusions, and the 3D joints in
  the camera frame (root-relative, mm).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

import condflow
from condflow.data.synthetic_lifting import TensorDictDataset

FINGERS = ("Thumb", "Index", "Middle", "Ring", "Little")
JOINT_NAMES = ("Wrist",) + tuple(f"{f}{k}" for f in FINGERS for k in (1, 2, 3, 4))
PARENTS = (-1,) + tuple(p for f in range(5) for p in (0, 1 + 4 * f, 2 + 4 * f, 3 + 4 * f))
#: Bone lengths (mm) of each finger: metacarpal, proximal, middle, distal.
BONES_MM = np.array([[35, 32, 28, 24], [80, 40, 24, 20], [78, 44, 28, 21],
                     [72, 41, 27, 20], [66, 32, 20, 18]], dtype=np.float64)
#: Directions of the metacarpals in the palm plane (degrees from the middle finger).
SPREAD_DEG = np.array([-55.0, -12.0, 0.0, 11.0, 22.0])


class HandBoneSpace:
    """Root-relative hand joints ``[..., 21, 3]`` (mm) ↔ bone vectors ``[..., 60]`` (mm)."""

    dim = 3 * (len(JOINT_NAMES) - 1)
    native_shape = (len(JOINT_NAMES), 3)
    joint_names = JOINT_NAMES
    parents = PARENTS
    units = "millimetres"

    def to_native(self, x: Tensor) -> Tensor:
        bones = x.reshape(*x.shape[:-1], -1, 3)
        joints = [torch.zeros_like(bones[..., 0, :])]
        for j in range(1, len(PARENTS)):  # parents come before their children
            joints.append(joints[PARENTS[j]] + bones[..., j - 1, :])
        return torch.stack(joints, -2)

    def from_native(self, native: Tensor) -> Tensor:
        if tuple(native.shape[-2:]) != self.native_shape:
            raise ValueError(f"native: expected [..., 21, 3], got {list(native.shape)}")
        bones = native[..., 1:, :] - native[..., list(PARENTS[1:]), :]
        return bones.reshape(*native.shape[:-2], self.dim)


@dataclass
class HandSpaceSettings:
    """``hand_bones`` has no settings."""


@dataclass
class SyntheticHands:
    """How the synthetic hands are drawn."""

    train_size: int = 20000
    test_size: int = 1000
    noise_px: float = 2.0  # std of the 2D keypoint noise, pixels of a 1000 px image
    dropout: float = 0.05  # probability that a keypoint is hidden


def _rotations(rng: np.random.Generator, n: int) -> np.ndarray:
    """Uniform random rotations ``[n, 3, 3]`` (from normalized Gaussian quaternions)."""
    q = rng.normal(size=(n, 4))
    w, x, y, z = (q / np.linalg.norm(q, axis=1, keepdims=True)).T
    return np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w),
                     2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w),
                     2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
                    -1).reshape(n, 3, 3)


def make_hands(n: int, seed: int, noise_px: float, dropout: float) -> dict[str, Tensor]:
    """``keypoints_2d [n, 21, 3]`` (x', y', confidence) and ``joints_3d [n, 21, 3]`` (mm)."""
    rng = np.random.default_rng(seed)
    curl = rng.uniform(0.0, 1.0, (n, 5))  # how far each finger is closed
    joints = np.zeros((n, 21, 3))
    for f in range(5):
        yaw = np.deg2rad(SPREAD_DEG[f] + rng.normal(0, 5, n))
        pos, pitch = np.zeros((n, 3)), np.zeros(n)
        for k in range(4):
            if k > 0:  # flexion of the finger's joints, correlated along it
                pitch = pitch + np.deg2rad(80.0) * curl[:, f] + rng.normal(0, 0.1, n)
            direction = np.stack([np.sin(yaw) * np.cos(pitch), np.cos(yaw) * np.cos(pitch),
                                  -np.sin(pitch)], -1)
            pos = pos + BONES_MM[f, k] * direction
            joints[:, 1 + 4 * f + k] = pos
    joints = np.einsum("nij,nkj->nki", _rotations(rng, n), joints)  # camera frame, mm
    depth = rng.uniform(350.0, 700.0, n)
    cam = joints + np.stack([rng.normal(0, 30, n), rng.normal(0, 30, n), depth], -1)[:, None]
    pixels = 1000.0 * cam[..., :2] / cam[..., 2:] + 500.0 + rng.normal(0, noise_px, (n, 21, 2))
    seen = (rng.random((n, 21)) >= dropout).astype(np.float64)
    xy = (pixels / 500.0 - 1.0) * seen[..., None]  # x' = 2x/W - 1 (W = H = 1000)
    return {"keypoints_2d": torch.from_numpy(np.concatenate([xy, seen[..., None]], -1)).float(),
            "joints_3d": torch.from_numpy(joints).float()}


def _hands(s: SyntheticHands, r: condflow.DataRequest) -> condflow.DataSplit:
    train = make_hands(s.train_size, r.seed, s.noise_px, s.dropout)
    test = make_hands(s.test_size, r.seed + 1000, s.noise_px, s.dropout)
    return condflow.DataSplit(TensorDictDataset(train), TensorDictDataset(test),
                              train_joints_3d=lambda: train["joints_3d"],
                              description=f"synthetic_hands: {s.test_size} test hands")


condflow.register_space("hand_bones", HandSpaceSettings, lambda s: HandBoneSpace(),
                        family="joints", replace=True)
condflow.register_data_source(
    "synthetic_hands", SyntheticHands, _hands,
    inputs=lambda s: condflow.InputSpec("keypoints_2d", (21, 3)),
    provides={"keypoints_2d", "joints_3d"},
    fast_dev_run=("data.train_size=256", "data.test_size=32"),
    replace=True,
)
