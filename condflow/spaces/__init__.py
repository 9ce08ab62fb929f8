"""Output spaces: rotation representations, the SMPL pose space and skeleton spaces."""

from condflow.spaces.base import OutputSpace
from condflow.spaces.rotations import (
    axis_angle_to_matrix,
    matrix_to_axis_angle,
    matrix_to_rotation_6d,
    orthonormalize_6d,
    rotation_6d_to_matrix,
)
from condflow.spaces.skeleton import (
    H36M_16,
    H36M_17,
    H36M_17_TO_16,
    H36M_TO_J14,
    LSP_14,
    SkeletonLayout,
    SkeletonSpace,
    flip_joints,
)
from condflow.spaces.smpl_pose import (
    NUM_SMPL_BODY_JOINTS,
    NUM_SMPL_JOINTS,
    SMPL_JOINT_NAMES,
    SMPL_PARENTS,
    SMPL_POSE_DIM,
    SMPLPoseSpace,
)

__all__ = [
    "H36M_16",
    "H36M_17",
    "H36M_17_TO_16",
    "H36M_TO_J14",
    "LSP_14",
    "NUM_SMPL_BODY_JOINTS",
    "NUM_SMPL_JOINTS",
    "OutputSpace",
    "SMPL_JOINT_NAMES",
    "SMPL_PARENTS",
    "SMPL_POSE_DIM",
    "SMPLPoseSpace",
    "SkeletonLayout",
    "SkeletonSpace",
    "axis_angle_to_matrix",
    "flip_joints",
    "matrix_to_axis_angle",
    "matrix_to_rotation_6d",
    "orthonormalize_6d",
    "rotation_6d_to_matrix",
]
