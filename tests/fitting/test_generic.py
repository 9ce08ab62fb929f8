"""The generic-prior baseline for the skeleton head (fitting in skeleton space)."""

import pytest
import torch

from condflow.fitting import (
    FitConfig,
    GenericFitConfig,
    fit_keypoints,
    fit_keypoints_generic,
    skeleton_prior,
)


def test_generic_fit_moves_the_skeleton_itself(skeleton_head, make_problem):
    context, kp, _ = make_problem(skeleton_head)
    g = torch.Generator().manual_seed(0)
    mode = skeleton_head.flow.mode(context)
    training = (mode[:1] + 30.0 * torch.randn(500, 48, generator=g, dtype=torch.float64))
    prior = skeleton_prior(training / 1000.0)
    fit = fit_keypoints_generic(skeleton_head, context, kp, prior,
                                GenericFitConfig(keypoint_weight=1e4))
    at_mode = fit_keypoints(skeleton_head, context, kp, FitConfig(keypoint_weight=0.0))
    assert fit.z is None
    assert (fit.keypoint_energy < 0.5 * at_mode.keypoint_energy).all()
    assert torch.allclose(fit.prior_energy, prior(fit.theta / 1000.0))
    assert torch.allclose(fit.outputs["joints_mm"], skeleton_head.space.to_joints(fit.theta))
    # With no keypoint term the prior alone pulls the skeleton towards its mean.
    pulled = fit_keypoints_generic(skeleton_head, context, kp, prior,
                                   GenericFitConfig(keypoint_weight=0.0))
    assert (prior(pulled.theta / 1000) < prior(mode / 1000)).all()


def test_generic_fit_checks_the_prior(skeleton_head, make_problem):
    context, kp, _ = make_problem(skeleton_head)
    with pytest.raises(ValueError, match="prior: expected a GaussianMixture over 48"):
        fit_keypoints_generic(skeleton_head, context, kp, skeleton_prior(torch.randn(50, 3)))
    with pytest.raises(ValueError, match="bend_weight"):
        GenericFitConfig(bend_weight=-1.0)
