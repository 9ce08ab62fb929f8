"""The body model (SMPL through smplx, or the synthetic SMPL-format model), cameras and the
pose generator."""

from condflow.body.camera import (
    perspective_projection,
    pixels_to_normalized,
    project_to_crop,
    weak_perspective_to_translation,
)
from condflow.body.model import BodyModel, BodyOutput
from condflow.body.poses import POSE_FAMILIES, PoseGenerator, PoseSample, sample_poses
from condflow.body.synthetic import generate_synthetic_smpl, synthetic_model_dir

__all__ = [
    "POSE_FAMILIES",
    "BodyModel",
    "BodyOutput",
    "PoseGenerator",
    "PoseSample",
    "generate_synthetic_smpl",
    "perspective_projection",
    "pixels_to_normalized",
    "project_to_crop",
    "sample_poses",
    "synthetic_model_dir",
    "weak_perspective_to_translation",
]
