"""Joint tables shared by the body model, the output spaces and the data: names, kinematic
trees and the body-model file names (a leaf module: it imports nothing from condflow)."""

from __future__ import annotations

__all__ = [
    "H36M_JOINT_NAMES",
    "H36M_REGRESSOR_FILENAME",
    "SMPL_JOINT_NAMES",
    "SMPL_MODEL_FILENAME",
    "SMPL_PARENTS",
]

SMPL_JOINT_NAMES: tuple[str, ...] = (
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2",
    "left_ankle", "right_ankle", "spine3", "left_foot", "right_foot", "neck", "left_collar",
    "right_collar", "head", "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
    "left_wrist", "right_wrist", "left_hand", "right_hand",
)  # fmt: skip
"""SMPL's 24 kinematic joints, in SMPL's order."""

SMPL_PARENTS: tuple[int, ...] = (
    -1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21,
)  # fmt: skip
"""Parent of each SMPL joint (``-1`` for the root)."""

H36M_JOINT_NAMES: tuple[str, ...] = (
    "hip", "right_hip", "right_knee", "right_foot", "left_hip", "left_knee", "left_foot",
    "spine", "thorax", "nose", "head", "left_shoulder", "left_elbow", "left_wrist",
    "right_shoulder", "right_elbow", "right_wrist",
)  # fmt: skip
"""Human3.6M's 17 evaluation joints in VideoPose3D order."""

SMPL_MODEL_FILENAME = "SMPL_NEUTRAL.pkl"
"""File name of a neutral SMPL model (official and synthetic alike)."""

H36M_REGRESSOR_FILENAME = "J_regressor_h36m.npy"
"""File name of the Human3.6M evaluation regressor ``[17, V]``, beside the SMPL model."""
