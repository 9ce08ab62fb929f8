"""Random plausible SMPL body poses and shapes for synthetic data.

Poses come in families (standing, walking, sitting, reaching, crouching, and a generic
random-within-limits family). Every joint rotation is built from three angles
``(ax, ay, az)`` in degrees, applied about the parent's y, then z, then x axis
(``R = Rx(ax) Rz(az) Ry(ay)``), and clipped to per-joint limits. Angles are stated for the
body's left side and the midline; a right joint uses the mirror image ``(ax, -ay, -az)``.
With SMPL's axes (y up, x to the body's left, z forward) this means, for the left side:
hip flexion is ``-ax``, knee flexion ``+ax``, elbow flexion ``-ay``, shoulder elevation
``+az``, spine flexion (bending forward) ``+ax``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from scipy.spatial.transform import Rotation
from torch import Tensor

from condflow._checks import check_positive_int
from condflow.joints import SMPL_JOINT_NAMES

__all__ = ["JOINT_LIMITS", "POSE_FAMILIES", "PoseGenerator", "PoseSample", "sample_poses"]

POSE_FAMILIES: tuple[str, ...] = (
    "standing", "walking", "sitting", "reaching", "crouching", "random",
)
"""Names of the pose families; ``PoseSample.family`` indexes this tuple."""

# Joint limits (ax, ay, az) in degrees, low and high, for left/midline joints.
JOINT_LIMITS: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    "hip": ((-125.0, -35.0, -25.0), (30.0, 35.0, 45.0)),
    "knee": ((0.0, 0.0, 0.0), (145.0, 0.0, 0.0)),
    "ankle": ((-25.0, -15.0, -15.0), (45.0, 15.0, 15.0)),
    "foot": ((-20.0, -5.0, -5.0), (20.0, 5.0, 5.0)),
    "spine": ((-10.0, -15.0, -12.0), (30.0, 15.0, 12.0)),
    "neck": ((-30.0, -40.0, -20.0), (40.0, 40.0, 20.0)),
    "head": ((-20.0, -30.0, -15.0), (30.0, 30.0, 15.0)),
    "collar": ((-10.0, -15.0, -10.0), (10.0, 15.0, 20.0)),
    "shoulder": ((-100.0, -110.0, -95.0), (70.0, 45.0, 95.0)),
    "elbow": ((0.0, -145.0, 0.0), (0.0, 0.0, 0.0)),
    "wrist": ((-40.0, -25.0, -70.0), (40.0, 35.0, 70.0)),
    "hand": ((-10.0, -10.0, -10.0), (10.0, 10.0, 10.0)),
}
"""Per joint type, the lowest and highest ``(ax, ay, az)`` in degrees (see module docstring)."""


def _joint_type(name: str) -> str:
    base = name.removeprefix("left_").removeprefix("right_")
    return "spine" if base.startswith("spine") else base


_BODY_JOINTS = SMPL_JOINT_NAMES[1:]  # body_pose order
_TYPES = [_joint_type(n) for n in _BODY_JOINTS]
_LOW = np.array([JOINT_LIMITS[t][0] for t in _TYPES])  # [23, 3]
_HIGH = np.array([JOINT_LIMITS[t][1] for t in _TYPES])
_RIGHT = np.array([n.startswith("right_") for n in _BODY_JOINTS])
_IDX = {name: i for i, name in enumerate(_BODY_JOINTS)}


@dataclass
class PoseSample:
    """A batch of ``n`` bodies in SMPL's axis-angle parametrisation.

    ``global_orient [n, 3]``, ``body_pose [n, 23, 3]``, ``betas [n, 10]`` (float32) and
    ``family [n]`` (long, indices into ``POSE_FAMILIES``).
    """

    global_orient: Tensor
    body_pose: Tensor
    betas: Tensor
    family: Tensor

    def __len__(self) -> int:
        return int(self.family.shape[0])


class _Angles:
    """Euler angles ``[m, 23, 3]`` (degrees) being filled in by a family."""

    def __init__(self, m: int) -> None:
        self.a = np.zeros((m, 23, 3))

    def set(self, joint: str, axis: str, value: np.ndarray | float, sides: bool = True) -> None:
        """Set angle ``axis`` of ``joint`` (or of ``left_joint`` and ``right_joint``)."""
        k = "xyz".index(axis)
        names = [f"left_{joint}", f"right_{joint}"] if sides and f"left_{joint}" in _IDX else [
            joint
        ]
        for name in names:
            self.a[:, _IDX[name], k] = value

    def side(self, joint: str, axis: str, left: np.ndarray, right: np.ndarray) -> None:
        """Set angle ``axis`` of the left and the right ``joint`` separately."""
        k = "xyz".index(axis)
        self.a[:, _IDX[f"left_{joint}"], k] = left
        self.a[:, _IDX[f"right_{joint}"], k] = right


class PoseGenerator:
    """Seeded sampler of plausible SMPL poses and shapes.

    Args:
        seed: seed of the generator; the same seed gives the same sequence of samples.
        families: names of the families to draw from (default all of ``POSE_FAMILIES``).
        family_weights: relative frequency of each of ``families`` (default uniform).
        random_orient: add a yaw uniform in ``[-pi, pi]`` and a small pitch/roll (std 5
            degrees, at most 15) to the root orientation; otherwise the root only carries
            the family's pelvis tilt (crouching leans forward).
        betas_std: standard deviation of the shape coefficients (0 gives the mean shape).
        betas_clip: shape coefficients are clipped to ``[-betas_clip, betas_clip]``.
    """

    def __init__(
        self,
        seed: int = 0,
        *,
        families: Sequence[str] | None = None,
        family_weights: Sequence[float] | None = None,
        random_orient: bool = True,
        betas_std: float = 1.0,
        betas_clip: float = 3.0,
    ) -> None:
        families = tuple(POSE_FAMILIES if families is None else families)
        unknown = [f for f in families if f not in POSE_FAMILIES]
        if unknown or not families:
            raise ValueError(f"families: expected names from {POSE_FAMILIES}, got {families}")
        if family_weights is None:
            family_weights = [1.0] * len(families)
        weights = np.asarray(family_weights, dtype=float)
        if weights.shape != (len(families),) or (weights < 0).any() or weights.sum() <= 0:
            raise ValueError(
                f"family_weights: expected {len(families)} non-negative weights with a "
                f"positive sum, got {list(family_weights)}"
            )
        if not betas_std >= 0 or not betas_clip >= 0:
            raise ValueError(
                f"betas_std, betas_clip: expected non-negative numbers, got {betas_std}, "
                f"{betas_clip}"
            )
        self.families = families
        self.family_probs = weights / weights.sum()
        self.random_orient = random_orient
        self.betas_std = float(betas_std)
        self.betas_clip = float(betas_clip)
        self.rng = np.random.default_rng(seed)

    def sample(self, n: int) -> PoseSample:
        """Draw ``n`` bodies (see :class:`PoseSample`)."""
        check_positive_int("n", n)
        rng = self.rng
        chosen = rng.choice(len(self.families), size=n, p=self.family_probs)
        family = np.array([POSE_FAMILIES.index(self.families[c]) for c in chosen])
        angles = np.zeros((n, 23, 3))
        tilt = np.zeros(n)  # forward pitch of the pelvis, degrees
        for k, name in enumerate(POSE_FAMILIES):
            idx = np.flatnonzero(family == k)
            if len(idx):
                angles[idx], tilt[idx] = _FAMILY_SAMPLERS[name](rng, len(idx))
        body_pose = _to_axis_angle(angles)

        pitch, roll, yaw = tilt, np.zeros(n), np.zeros(n)
        if self.random_orient:
            yaw = rng.uniform(-180.0, 180.0, n)
            pitch = pitch + np.clip(rng.normal(0.0, 5.0, n), -15.0, 15.0)
            roll = np.clip(rng.normal(0.0, 5.0, n), -15.0, 15.0)
        # R = Ry(yaw) Rx(pitch) Rz(roll): roll first, then pitch, then yaw about the vertical
        orient = Rotation.from_euler("zxy", np.stack([roll, pitch, yaw], 1), degrees=True)

        betas = np.clip(rng.normal(0.0, 1.0, (n, 10)) * self.betas_std,
                        -self.betas_clip, self.betas_clip)
        return PoseSample(
            global_orient=torch.as_tensor(orient.as_rotvec(), dtype=torch.float32),
            body_pose=torch.as_tensor(body_pose, dtype=torch.float32),
            betas=torch.as_tensor(betas, dtype=torch.float32),
            family=torch.as_tensor(family, dtype=torch.long),
        )


def sample_poses(n: int, seed: int = 0, **kwargs: object) -> PoseSample:
    """Draw ``n`` bodies with a fresh ``PoseGenerator(seed, **kwargs)``."""
    return PoseGenerator(seed, **kwargs).sample(n)  # type: ignore[arg-type]


def _to_axis_angle(angles: np.ndarray) -> np.ndarray:
    """Clip Euler angles ``[n, 23, 3]`` (degrees) to the limits; return axis-angle
    ``[n, 23, 3]`` in radians, with right joints mirrored."""
    a = np.clip(angles, _LOW, _HIGH)
    a[:, _RIGHT, 1:] *= -1.0
    flat = a.reshape(-1, 3)
    rot = Rotation.from_euler("yzx", flat[:, [1, 2, 0]], degrees=True)
    return rot.as_rotvec().reshape(a.shape)


# ---------------------------------------------------------------------------------------------
# Families. Each returns Euler angles [m, 23, 3] (degrees) and the pelvis tilt [m].


def _upright(rng: np.random.Generator, m: int, p: _Angles) -> None:
    """Small natural variation of the spine, head and extremities."""
    for spine in ("spine1", "spine2", "spine3"):
        p.set(spine, "x", rng.normal(1.0, 3.0, m))
        p.set(spine, "y", rng.normal(0.0, 4.0, m))
        p.set(spine, "z", rng.normal(0.0, 2.5, m))
    for joint, std in (("neck", 8.0), ("head", 6.0)):
        for axis in "xyz":
            p.set(joint, axis, rng.normal(0.0, std, m))
    for joint, std in (("collar", 3.0), ("wrist", 10.0), ("hand", 4.0), ("ankle", 4.0),
                       ("foot", 4.0)):
        for axis in "xyz":
            p.side(joint, axis, rng.normal(0.0, std, m), rng.normal(0.0, std, m))


def _arms_down(rng: np.random.Generator, m: int, p: _Angles) -> None:
    p.side("shoulder", "z", rng.uniform(-85.0, -65.0, m), rng.uniform(-85.0, -65.0, m))
    p.side("shoulder", "y", rng.normal(0.0, 8.0, m), rng.normal(0.0, 8.0, m))
    p.side("shoulder", "x", rng.normal(0.0, 10.0, m), rng.normal(0.0, 10.0, m))
    p.side("elbow", "y", -rng.uniform(0.0, 30.0, m), -rng.uniform(0.0, 30.0, m))


def _legs_standing(rng: np.random.Generator, m: int, p: _Angles) -> None:
    p.side("hip", "x", rng.normal(-3.0, 5.0, m), rng.normal(-3.0, 5.0, m))
    p.side("hip", "y", rng.normal(0.0, 6.0, m), rng.normal(0.0, 6.0, m))
    p.side("hip", "z", rng.normal(3.0, 3.0, m), rng.normal(3.0, 3.0, m))
    p.side("knee", "x", np.abs(rng.normal(0.0, 6.0, m)), np.abs(rng.normal(0.0, 6.0, m)))


def _standing(rng: np.random.Generator, m: int) -> tuple[np.ndarray, np.ndarray]:
    p = _Angles(m)
    _upright(rng, m, p)
    _legs_standing(rng, m, p)
    _arms_down(rng, m, p)
    return p.a, np.zeros(m)


def _walking(rng: np.random.Generator, m: int) -> tuple[np.ndarray, np.ndarray]:
    p = _Angles(m)
    _upright(rng, m, p)
    phase = rng.uniform(0.0, 2 * np.pi, m)
    amp = rng.uniform(15.0, 35.0, m)
    swing = amp * np.sin(phase)  # > 0: left leg forward
    p.side("hip", "x", -(swing + 5.0), -(-swing + 5.0))
    p.side("hip", "z", rng.normal(3.0, 2.0, m), rng.normal(3.0, 2.0, m))
    # the knee bends most while its leg swings forward
    knee = 50.0 * np.maximum(0.0, np.sin(phase + np.pi / 4)) ** 1.5
    knee_r = 50.0 * np.maximum(0.0, np.sin(phase + np.pi + np.pi / 4)) ** 1.5
    p.side("knee", "x", 5.0 + knee, 5.0 + knee_r)
    p.side("ankle", "x", rng.normal(0.0, 8.0, m), rng.normal(0.0, 8.0, m))
    # arms swing against the leg of the same side (ax < 0 moves a hanging arm forward)
    arm = 0.8 * swing
    p.side("shoulder", "z", rng.uniform(-85.0, -70.0, m), rng.uniform(-85.0, -70.0, m))
    p.side("shoulder", "x", arm + rng.normal(0.0, 4.0, m), -arm + rng.normal(0.0, 4.0, m))
    p.side("elbow", "y", -rng.uniform(10.0, 40.0, m), -rng.uniform(10.0, 40.0, m))
    p.set("spine2", "y", 0.2 * swing)
    p.set("spine1", "x", rng.normal(3.0, 2.0, m))
    return p.a, np.zeros(m)


def _sitting(rng: np.random.Generator, m: int) -> tuple[np.ndarray, np.ndarray]:
    p = _Angles(m)
    _upright(rng, m, p)
    flex = np.clip(rng.normal(90.0, 7.0, (2, m)), 70.0, 110.0)
    p.side("hip", "x", -flex[0], -flex[1])
    p.side("hip", "z", rng.normal(6.0, 5.0, m), rng.normal(6.0, 5.0, m))
    p.side("hip", "y", rng.normal(0.0, 5.0, m), rng.normal(0.0, 5.0, m))
    knee = np.clip(rng.normal(90.0, 10.0, (2, m)), 60.0, 120.0)
    p.side("knee", "x", knee[0], knee[1])
    p.side("ankle", "x", rng.normal(0.0, 8.0, m), rng.normal(0.0, 8.0, m))
    for spine in ("spine1", "spine2", "spine3"):
        p.set(spine, "x", rng.normal(4.0, 4.0, m))
    p.side("shoulder", "z", rng.uniform(-80.0, -60.0, m), rng.uniform(-80.0, -60.0, m))
    p.side("shoulder", "x", -rng.uniform(10.0, 40.0, m), -rng.uniform(10.0, 40.0, m))
    p.side("elbow", "y", -rng.uniform(30.0, 80.0, m), -rng.uniform(30.0, 80.0, m))
    return p.a, rng.normal(-3.0, 4.0, m)


def _reaching(rng: np.random.Generator, m: int) -> tuple[np.ndarray, np.ndarray]:
    p = _Angles(m)
    _upright(rng, m, p)
    _legs_standing(rng, m, p)
    _arms_down(rng, m, p)
    which = rng.integers(0, 3, m)  # 0 left arm, 1 right arm, 2 both
    up = rng.random(m) < 0.5  # reach up, else reach forward
    for s, side in enumerate(("left", "right")):
        reach = (which == s) | (which == 2)
        i = _IDX[f"{side}_shoulder"]
        e = _IDX[f"{side}_elbow"]
        up_angles = np.stack(
            [rng.normal(0.0, 10.0, m), rng.normal(0.0, 10.0, m), rng.uniform(60.0, 90.0, m)], 1
        )
        fwd_angles = np.stack(
            [rng.normal(0.0, 10.0, m), -rng.uniform(60.0, 95.0, m), rng.uniform(-20.0, 20.0, m)],
            1,
        )
        p.a[reach, i] = np.where(up[reach, None], up_angles[reach], fwd_angles[reach])
        p.a[reach, e, 1] = -rng.uniform(0.0, 30.0, m)[reach]
    lean = np.where(up, rng.normal(-3.0, 2.0, m), rng.uniform(0.0, 10.0, m))
    for spine in ("spine1", "spine2", "spine3"):
        p.set(spine, "x", lean)
    return p.a, np.zeros(m)


def _crouching(rng: np.random.Generator, m: int) -> tuple[np.ndarray, np.ndarray]:
    p = _Angles(m)
    _upright(rng, m, p)
    flex = rng.uniform(80.0, 120.0, m)
    p.side("hip", "x", -(flex + rng.normal(0.0, 4.0, m)), -(flex + rng.normal(0.0, 4.0, m)))
    p.side("hip", "z", rng.uniform(5.0, 25.0, m), rng.uniform(5.0, 25.0, m))
    knee = np.minimum(flex + rng.uniform(10.0, 30.0, m), 140.0)
    p.side("knee", "x", knee + rng.normal(0.0, 3.0, m), knee + rng.normal(0.0, 3.0, m))
    p.side("ankle", "x", -rng.uniform(10.0, 25.0, m), -rng.uniform(10.0, 25.0, m))
    for spine in ("spine1", "spine2", "spine3"):
        p.set(spine, "x", rng.uniform(5.0, 20.0, m))
    p.set("neck", "x", rng.normal(-15.0, 8.0, m))
    p.side("shoulder", "z", rng.uniform(-70.0, -30.0, m), rng.uniform(-70.0, -30.0, m))
    p.side("shoulder", "x", -rng.uniform(20.0, 60.0, m), -rng.uniform(20.0, 60.0, m))
    p.side("elbow", "y", -rng.uniform(20.0, 80.0, m), -rng.uniform(20.0, 80.0, m))
    return p.a, rng.uniform(10.0, 35.0, m)


def _random(rng: np.random.Generator, m: int) -> tuple[np.ndarray, np.ndarray]:
    return rng.uniform(_LOW, _HIGH, (m, 23, 3)), np.zeros(m)


_FAMILY_SAMPLERS = {
    "standing": _standing,
    "walking": _walking,
    "sitting": _sitting,
    "reaching": _reaching,
    "crouching": _crouching,
    "random": _random,
}
