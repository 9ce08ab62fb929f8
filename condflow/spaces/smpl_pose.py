"""The SMPL pose space: 24 joint rotations in the 6D representation (144 features).

Joint 0 is the global orientation theta^g, joints 1..23 the body pose theta^b. Features are
laid out joint-major: ``x[..., 6 * j : 6 * (j + 1)]`` is the 6D rotation of joint ``j``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from condflow._checks import check_trailing
from condflow.joints import SMPL_JOINT_NAMES, SMPL_PARENTS
from condflow.spaces.rotations import (
    axis_angle_to_matrix,
    matrix_to_axis_angle,
    matrix_to_rotation_6d,
    rotation_6d_to_matrix,
)

__all__ = [
    "NUM_SMPL_BODY_JOINTS",
    "NUM_SMPL_JOINTS",
    "SMPL_JOINT_NAMES",
    "SMPL_PARENTS",
    "SMPL_POSE_DIM",
    "SMPLPoseSpace",
]

NUM_SMPL_JOINTS = 24
NUM_SMPL_BODY_JOINTS = NUM_SMPL_JOINTS - 1
SMPL_POSE_DIM = 6 * NUM_SMPL_JOINTS


class SMPLPoseSpace:
    """Conversions between 6D pose features ``[..., 144]`` and SMPL's rotation formats.

    Every method accepts any number of leading dimensions and checks its input's trailing shape
    and finiteness, raising ``ValueError`` naming the argument.
    """

    dim: int = SMPL_POSE_DIM
    num_joints: int = NUM_SMPL_JOINTS
    joint_names: tuple[str, ...] = SMPL_JOINT_NAMES
    parents: tuple[int, ...] = SMPL_PARENTS

    #: The OutputSpace protocol (condflow.spaces.base): native = rotation matrices.
    native_shape: tuple[int, ...] = (NUM_SMPL_JOINTS, 3, 3)
    units: str = "rotation matrices of SMPL's 24 joints, the global orientation first"

    def __repr__(self) -> str:
        return f"SMPLPoseSpace(dim={self.dim})"

    def to_native(self, x: Tensor) -> Tensor:
        """:meth:`to_rotmat`."""
        return self.to_rotmat(x)

    def from_native(self, native: Tensor) -> Tensor:
        """:meth:`from_rotmat`."""
        return self.from_rotmat(native)

    def to_rotmat(self, x: Tensor) -> Tensor:
        """6D features ``[..., 144]`` to rotation matrices ``[..., 24, 3, 3]``."""
        check_trailing("x", x, (SMPL_POSE_DIM,))
        return rotation_6d_to_matrix(x.reshape(*x.shape[:-1], NUM_SMPL_JOINTS, 6))

    def from_rotmat(self, rotmat: Tensor) -> Tensor:
        """Rotation matrices ``[..., 24, 3, 3]`` to 6D features ``[..., 144]``."""
        check_trailing("rotmat", rotmat, (NUM_SMPL_JOINTS, 3, 3))
        return matrix_to_rotation_6d(rotmat).reshape(*rotmat.shape[:-3], SMPL_POSE_DIM)

    def split(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Split features ``[..., 144]`` into global orientation ``[..., 6]`` and body pose
        ``[..., 138]``."""
        check_trailing("x", x, (SMPL_POSE_DIM,))
        return x[..., :6], x[..., 6:]

    def to_axis_angle(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """6D features ``[..., 144]`` to smplx's inputs: global orientation ``[..., 3]`` and body
        pose ``[..., 23, 3]`` (axis-angle)."""
        aa = matrix_to_axis_angle(self.to_rotmat(x))
        return aa[..., 0, :], aa[..., 1:, :]

    def from_axis_angle(self, global_orient: Tensor, body_pose: Tensor) -> Tensor:
        """Axis-angle global orientation ``[..., 3]`` and body pose ``[..., 23, 3]`` (or
        ``[..., 69]``) to 6D features ``[..., 144]``."""
        check_trailing("global_orient", global_orient, (3,))
        if isinstance(body_pose, Tensor) and body_pose.dim() >= 1 and body_pose.shape[-1] == 69:
            body_pose = body_pose.reshape(*body_pose.shape[:-1], NUM_SMPL_BODY_JOINTS, 3)
        check_trailing("body_pose", body_pose, (NUM_SMPL_BODY_JOINTS, 3))
        if global_orient.shape[:-1] != body_pose.shape[:-2]:
            raise ValueError(
                "global_orient and body_pose: leading dimensions differ, got "
                f"{list(global_orient.shape)} and {list(body_pose.shape)}"
            )
        aa = torch.cat([global_orient[..., None, :], body_pose], dim=-2)
        return self.from_rotmat(axis_angle_to_matrix(aa))
