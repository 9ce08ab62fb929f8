"""Joint tables shared by the body model, the output spaces, the metrics and the data: names,
kinematic trees, joint subsets and the body-model file names (a leaf module: it imports
nothing from condflow)."""

from __future__ import annotations

__all__ = [
    "BODY25_NAMES",
    "H36M_17_TO_16",
    "H36M_JOINT_NAMES",
    "H36M_PARENTS",
    "H36M_REGRESSOR_FILENAME",
    "H36M_TO_J14",
    "J14_HIPS",
    "SMPL_JOINT_NAMES",
    "SMPL_MODEL_FILENAME",
    "SMPL_PARENTS",
    "SPIN_KEYPOINT_NAMES",
]

SMPL_JOINT_NAMES: tuple[str, ...] = (
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2",
    "left_ankle", "right_ankle", "spine3", "left_foot", "right_foot", "neck", "left_collar",
    "right_collar", "head", "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
    "left_wrist", "right_wrist", "left_hand", "right_hand",
)  # fmt: skip
"""SMPL's 24 kinematic joints, in SMPL's order (also its 24 skinning parts)."""

SMPL_PARENTS: tuple[int, ...] = (
    -1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21,
)  # fmt: skip
"""Parent of each SMPL joint (``-1`` for the root)."""

H36M_JOINT_NAMES: tuple[str, ...] = (
    "Hip", "RHip", "RKnee", "RFoot", "LHip", "LKnee", "LFoot", "Spine", "Thorax",
    "Nose", "Head", "LShoulder", "LElbow", "LWrist", "RShoulder", "RElbow", "RWrist",
)  # fmt: skip
"""Human3.6M's 17 joints in VideoPose3D order: the 17 kept of the 32 mocap joints, and the
body model's 17 evaluation joints (regressed from the mesh)."""

H36M_PARENTS: tuple[int, ...] = (-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 9, 8, 11, 12, 8, 14, 15)
"""Parent of each Human3.6M joint (``-1`` for the root, the hip)."""

H36M_17_TO_16: tuple[int, ...] = (0, 1, 2, 3, 4, 5, 6, 7, 8, 10, 11, 12, 13, 14, 15, 16)
"""The 17 Human3.6M joints without the nose: the 16-joint skeleton of 2D-to-3D lifting."""

H36M_TO_J14: tuple[int, ...] = (6, 5, 4, 1, 2, 3, 16, 15, 14, 11, 12, 13, 8, 10)
"""The 14-joint LSP evaluation subset of SPIN/ProHMR, as indices into the 17 Human3.6M
joints."""

J14_HIPS: tuple[int, ...] = (2, 3)
"""The two hips among the 14 LSP joints: their mean (the mid-hip) is the root."""

SPIN_KEYPOINT_NAMES: tuple[str, ...] = (
    "Right Ankle", "Right Knee", "Right Hip", "Left Hip", "Left Knee", "Left Ankle",
    "Right Wrist", "Right Elbow", "Right Shoulder", "Left Shoulder", "Left Elbow", "Left Wrist",
    "Neck (LSP)", "Top of Head (LSP)", "Pelvis (MPII)", "Thorax (MPII)", "Spine (H36M)",
    "Jaw (H36M)", "Head (H36M)", "Nose", "Left Eye", "Right Eye", "Left Ear", "Right Ear",
)  # fmt: skip
"""The 24 keypoints of SPIN's ``part`` / ``S`` arrays (and of the body model's keypoints)."""

BODY25_NAMES: tuple[str, ...] = (
    "Nose", "Neck", "RShoulder", "RElbow", "RWrist", "LShoulder", "LElbow", "LWrist",
    "MidHip", "RHip", "RKnee", "RAnkle", "LHip", "LKnee", "LAnkle", "REye", "LEye", "REar",
    "LEar", "LBigToe", "LSmallToe", "LHeel", "RBigToe", "RSmallToe", "RHeel",
)  # fmt: skip
"""OpenPose's BODY_25 keypoints."""

SMPL_MODEL_FILENAME = "SMPL_NEUTRAL.pkl"
"""File name of a neutral SMPL model (official and synthetic alike)."""

H36M_REGRESSOR_FILENAME = "J_regressor_h36m.npy"
"""File name of the Human3.6M evaluation regressor ``[17, V]``, beside the SMPL model."""
