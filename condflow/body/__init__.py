"""The body model (SMPL through smplx, or the synthetic SMPL-format model), its keypoints,
cameras and the pose generator."""

from condflow.body.camera import (
    look_at_cameras,
    perspective_projection,
    pinhole_translation,
    pixels_to_normalized,
    project_to_crop,
    weak_perspective_to_translation,
)
from condflow.body.keypoints import KEYPOINT_SOURCES, BodyKeypoints, keypoints_from_body
from condflow.body.model import BodyModel, BodyOutput
from condflow.body.poses import POSE_FAMILIES, PoseGenerator, PoseSample, sample_poses
from condflow.body.synthetic import generate_synthetic_smpl, synthetic_model_dir

__all__ = [
    "KEYPOINT_SOURCES",
    "POSE_FAMILIES",
    "BodyKeypoints",
    "BodyModel",
    "BodyOutput",
    "PoseGenerator",
    "PoseSample",
    "generate_synthetic_smpl",
    "keypoints_from_body",
    "look_at_cameras",
    "perspective_projection",
    "pinhole_translation",
    "pixels_to_normalized",
    "project_to_crop",
    "sample_poses",
    "synthetic_model_dir",
    "weak_perspective_to_translation",
]
