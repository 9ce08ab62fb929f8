"""Fitting, the SMPLify baseline and multi-view fusion with a (tiny) ProHMR head."""

import pytest
import torch

from condflow.fitting import (
    FitConfig,
    FusionConfig,
    GaussianMixture,
    GenericFitConfig,
    OptimizerConfig,
    bending_energy,
    fit_gmm,
    fit_keypoints,
    fit_keypoints_generic,
    fuse_views,
    keypoint_energy,
    rotation_average_views,
)
from condflow.spaces.rotations import matrix_to_axis_angle

OPT = OptimizerConfig(max_iters=60, tol=1e-10)


def test_fit_lowers_the_keypoint_error_and_fits_shape_and_camera(smpl_head, make_smpl_problem):
    context, kp = make_smpl_problem(smpl_head)
    at_mode = fit_keypoints(smpl_head, context, kp, FitConfig(keypoint_weight=0.0,
                                                              shape_weight=0.0))
    fit = fit_keypoints(smpl_head, context, kp, FitConfig(keypoint_weight=1e4, optimizer=OPT))
    assert (fit.keypoint_energy < at_mode.keypoint_energy).all()
    assert fit.keypoint_energy.sum() < 0.5 * at_mode.keypoint_energy.sum()
    betas0, cam0 = smpl_head.point_head(context)
    assert torch.equal(at_mode.extras["betas"], betas0) and torch.equal(at_mode.extras["cam"],
                                                                        cam0)
    assert not torch.allclose(fit.extras["cam"], cam0)
    out = fit.outputs
    assert out["rotmat"].shape == (2, 24, 3, 3) and out["joints_mm"].shape == (2, 17, 3)
    assert torch.allclose(keypoint_energy(out["keypoints_2d"], kp, 0.05), fit.keypoint_energy)


def test_zero_keypoint_weight_keeps_z_at_zero(smpl_head, make_smpl_problem):
    context, kp = make_smpl_problem(smpl_head)
    fit = fit_keypoints(smpl_head, context, kp, FitConfig(keypoint_weight=0.0, optimizer=OPT))
    assert torch.equal(fit.z, torch.zeros_like(fit.z))
    assert torch.allclose(fit.theta, smpl_head.flow.mode(context), atol=1e-12)
    # The shape prior alone pulls β towards 0.
    assert (fit.extras["betas"].norm(dim=1) < smpl_head.point_head(context)[0].norm(dim=1)).all()


def test_bending_energy_hand_values():
    pose = torch.zeros(2, 23, 3)
    pose[1, 17, 1] = 1.0  # left elbow bent the unnatural way (+y)
    pose[1, 4, 0] = 0.5  # right knee flexed the natural way (+x)
    e = bending_energy(pose)
    assert torch.allclose(e[0], torch.tensor(4.0))
    assert torch.allclose(e[1], torch.tensor(2.0 + torch.e ** 2 + torch.e ** -1.0))


def test_smplify_baseline_fits_in_pose_space(smpl_head, make_smpl_problem):
    context, kp = make_smpl_problem(smpl_head)
    from condflow.body.poses import PoseGenerator

    poses = PoseGenerator(seed=0, random_orient=False).sample(300)
    prior = fit_gmm(poses.body_pose.reshape(300, 69), 2, iterations=20, reg_covar=1e-3).gmm
    cfg = GenericFitConfig(keypoint_weight=1e4, optimizer=OPT)
    generic = fit_keypoints_generic(smpl_head, context, kp, prior.double(), cfg)
    at_mode = fit_keypoints(smpl_head, context, kp, FitConfig(keypoint_weight=0.0,
                                                              shape_weight=0.0))
    assert generic.z is None
    assert (generic.keypoint_energy < at_mode.keypoint_energy).all()
    # The result is a proper SMPL pose whose body pose the GMM scores.
    body_aa = matrix_to_axis_angle(generic.outputs["rotmat"][:, 1:]).reshape(2, 69)
    assert torch.allclose(generic.prior_energy, prior.double()(body_aa), atol=1e-6)
    with pytest.raises(ValueError, match="prior: expected a GaussianMixture over 69"):
        fit_keypoints_generic(smpl_head, context, kp, GaussianMixture(
            torch.zeros(1), torch.zeros(1, 3), torch.eye(3)[None]))


def test_fusion_of_identical_views_without_keypoints_is_the_mode(smpl_head):
    context = torch.randn(2, 16, dtype=torch.float64)
    views = context[:, None].expand(2, 3, 16)
    fused = fuse_views(smpl_head, views)
    mode = smpl_head.flow.mode(context)
    assert torch.equal(fused.z, torch.zeros_like(fused.z))
    assert torch.allclose(fused.pose_6d, mode[:, None].expand(2, 3, 144), atol=1e-12)
    mode_rot = smpl_head.space.to_rotmat(mode)
    assert torch.allclose(fused.body_pose, mode_rot[:, 1:], atol=1e-10)
    averaged = rotation_average_views(smpl_head, views)
    assert torch.allclose(averaged.body_pose, mode_rot[:, 1:], atol=1e-10)
    assert torch.allclose(averaged.rotmat[:, 1], mode_rot, atol=1e-10)


def test_fusion_of_identical_views_with_keypoints_equals_the_single_view_fit(
        smpl_head, make_smpl_problem):
    """N copies of one view: eq. 12 plus keypoint terms is N times the single-view objective
    on the symmetric subspace, which the optimizer never leaves; same minimizer."""
    context, kp = make_smpl_problem(smpl_head, batch=1)
    opt = OptimizerConfig(max_iters=1000, tol=1e-12)
    single = fit_keypoints(smpl_head, context, kp, FitConfig(keypoint_weight=100.0,
                                                             optimizer=opt))
    fused = fuse_views(smpl_head, context[:, None].expand(1, 3, 16), kp[:, None].expand(
        1, 3, 24, 3), FusionConfig(keypoint_weight=100.0, consistency_weight=10.0, optimizer=opt))
    assert single.converged.all() and fused.converged.all()
    assert fused.consistency.abs().max() < 1e-20
    moved = (single.outputs["rotmat"] - smpl_head.space.to_rotmat(smpl_head.flow.mode(context)))
    assert moved.abs().max() > 0.05
    for n in range(3):
        assert torch.allclose(fused.rotmat[:, n], single.outputs["rotmat"], atol=1e-4)
        assert torch.allclose(fused.cam[:, n], single.extras["cam"], atol=1e-4)
    assert torch.allclose(fused.betas, single.extras["betas"], atol=1e-4)


def test_fusion_pulls_different_views_together(smpl_head):
    contexts = torch.randn(2, 3, 16, dtype=torch.float64)
    weak = fuse_views(smpl_head, contexts, config=FusionConfig(consistency_weight=0.1))
    strong = fuse_views(smpl_head, contexts, config=FusionConfig(consistency_weight=100.0))
    modes = smpl_head.space.to_rotmat(smpl_head.flow.mode(contexts.reshape(6, 16)))
    spread = (modes.reshape(2, 3, 24, 3, 3)[:, :, 1:] - modes.reshape(2, 3, 24, 3, 3)[
        :, :, 1:].mean(1, keepdim=True)).pow(2).sum((1, 2, 3, 4))
    assert (strong.consistency < weak.consistency).all() and (weak.consistency < spread).all()
    assert (strong.neg_log_prob.sum(1) > weak.neg_log_prob.sum(1)).all()


def test_fusion_input_errors(smpl_head, skeleton_head):
    with pytest.raises(ValueError, match="contexts"):
        fuse_views(smpl_head, torch.randn(2, 16, dtype=torch.float64))
    with pytest.raises(ValueError, match="keypoints"):
        fuse_views(smpl_head, torch.randn(2, 3, 16, dtype=torch.float64),
                   torch.zeros(2, 2, 24, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match="ProHMRHead"):
        fuse_views(skeleton_head, torch.randn(2, 3, 32, dtype=torch.float64))
