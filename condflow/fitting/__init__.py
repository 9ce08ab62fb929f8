"""Test-time applications of a trained head: keypoint fitting with the learned prior, the
generic-prior (SMPLify-style) baselines, multi-view fusion and rotation averaging.

All of them are generic over heads through adapters (:mod:`condflow.fitting.adapters`) and
optimize each example's objective independently (:mod:`condflow.fitting.optimize`).
"""

from condflow.fitting.adapters import (
    HeadAdapter,
    SkeletonAdapter,
    SMPLAdapter,
    make_adapter,
    pinhole_translation,
)
from condflow.fitting.fusion import (
    CalibratedFusionResult,
    FusionConfig,
    FusionResult,
    RotationAverage,
    average_calibrated_views,
    fuse_calibrated_views,
    fuse_views,
    rotation_average_views,
)
from condflow.fitting.gmm_prior import GaussianMixture, GMMFit, fit_gmm, pose_prior, skeleton_prior
from condflow.fitting.latent import FitConfig, FitProgress, KeypointFit, fit_keypoints, frozen
from condflow.fitting.optimize import MinimizeResult, OptimizerConfig, VariableLayout, minimize
from condflow.fitting.robust import geman_mcclure, keypoint_energy
from condflow.fitting.smplify import GenericFitConfig, bending_energy, fit_keypoints_generic

__all__ = [
    "CalibratedFusionResult",
    "FitConfig",
    "FitProgress",
    "FusionConfig",
    "FusionResult",
    "GMMFit",
    "GaussianMixture",
    "GenericFitConfig",
    "HeadAdapter",
    "KeypointFit",
    "MinimizeResult",
    "OptimizerConfig",
    "RotationAverage",
    "SMPLAdapter",
    "SkeletonAdapter",
    "VariableLayout",
    "average_calibrated_views",
    "bending_energy",
    "fit_gmm",
    "fit_keypoints",
    "fit_keypoints_generic",
    "frozen",
    "fuse_calibrated_views",
    "fuse_views",
    "geman_mcclure",
    "keypoint_energy",
    "make_adapter",
    "minimize",
    "pinhole_translation",
    "pose_prior",
    "rotation_average_views",
    "skeleton_prior",
]
