"""Calibrated multi-view fusion of a skeleton head: the mode of the product of the views'
densities, against a reference optimizer, its frame equivariance and its errors."""

import pytest
import torch
from scipy.spatial.transform import Rotation

from condflow.encoders.mlp_lifter import MLPLifter
from condflow.fitting import (
    OptimizerConfig,
    average_calibrated_views,
    fuse_calibrated_views,
)
from condflow.heads.base import NotProbabilisticError
from condflow.heads.skeleton import SkeletonRegressionHead
from condflow.spaces.skeleton import H36M_17, SkeletonSpace

TIGHT = OptimizerConfig(max_iters=300, tol=1e-12, grad_tol=1e-7)


def views(head, people: int = 2, n: int = 3, seed: int = 0):
    """Contexts ``[P, N, C]`` of random keypoint inputs and random rotations ``[P, N, 3, 3]``."""
    g = torch.Generator().manual_seed(seed)
    kp = torch.cat([0.3 * torch.randn(people * n, 16, 2, generator=g, dtype=torch.float64),
                    torch.ones(people * n, 16, 1, dtype=torch.float64)], -1)
    with torch.no_grad():
        contexts = head.context(kp).reshape(people, n, -1)
    rot = torch.as_tensor(Rotation.random(people * n, random_state=seed).as_matrix())
    return contexts, rot.reshape(people, n, 3, 3)


def neg_log_prob(head, world, contexts, rot):
    """Σₙ −log p(Rₙ X | cₙ) of one person: ``world [17, 3]``, ``contexts [N, C]``."""
    return -head.log_prob(torch.einsum("nij,kj->nki", rot, world), contexts).sum()


def test_fusion_is_the_mode_of_the_product_of_densities(skeleton_head):
    contexts, rot = views(skeleton_head)
    fused = fuse_calibrated_views(skeleton_head, contexts, rot, TIGHT)
    start = average_calibrated_views(skeleton_head, contexts, rot)
    torch.testing.assert_close(fused.mean_of_modes, start)  # where the fit started
    for p in range(2):
        # Reference: torch's own L-BFGS on one person's objective, from the same start.
        x = start[p].clone().requires_grad_(True)
        opt = torch.optim.LBFGS([x], max_iter=500, tolerance_grad=1e-9,
                                tolerance_change=1e-14, line_search_fn="strong_wolfe")

        def closure(p=p, x=x, opt=opt):
            opt.zero_grad()
            loss = neg_log_prob(skeleton_head, x, contexts[p], rot[p])
            loss.backward()
            return loss

        opt.step(closure)
        torch.testing.assert_close(fused.joints_world[p], x.detach(), atol=1e-3, rtol=0)  # mm
        value = neg_log_prob(skeleton_head, fused.joints_world[p], contexts[p], rot[p])
        torch.testing.assert_close(fused.objective[p], value)
        assert value < neg_log_prob(skeleton_head, start[p], contexts[p], rot[p]) - 1e-3
    torch.testing.assert_close(fused.neg_log_prob.sum(1), fused.objective)
    torch.testing.assert_close(
        fused.joints, torch.einsum("pnij,pkj->pnki", rot, fused.joints_world))
    assert fused.converged.all()


def test_one_view_fuses_to_its_mode(skeleton_head):
    contexts, rot = views(skeleton_head, n=1)
    fused = fuse_calibrated_views(skeleton_head, contexts, rot, TIGHT)
    mode = skeleton_head.mode(contexts[:, 0]).joints[:, 0]
    torch.testing.assert_close(fused.joints[:, 0], mode, atol=1e-4, rtol=0)


def test_fusion_does_not_depend_on_the_world_frame(skeleton_head):
    contexts, rot = views(skeleton_head)
    q = torch.as_tensor(Rotation.random(random_state=7).as_matrix())
    a = fuse_calibrated_views(skeleton_head, contexts, rot, TIGHT)
    b = fuse_calibrated_views(skeleton_head, contexts, rot @ q, TIGHT)
    torch.testing.assert_close(b.joints_world, a.joints_world @ q, atol=1e-3, rtol=0)
    torch.testing.assert_close(b.joints, a.joints, atol=1e-3, rtol=0)


def test_calibrated_fusion_errors(skeleton_head, smpl_head):
    contexts, rot = views(skeleton_head)
    with pytest.raises(ValueError, match="rotations: expected rotation matrices"):
        fuse_calibrated_views(skeleton_head, contexts, 2 * rot)
    with pytest.raises(ValueError, match=r"rotations: expected shape \[2, 3, 3, 3\]"):
        fuse_calibrated_views(skeleton_head, contexts, rot[:, :2])
    with pytest.raises(ValueError, match=r"contexts: expected shape \[B, N, 32\]"):
        fuse_calibrated_views(skeleton_head, contexts[..., :8], rot)
    with pytest.raises(ValueError, match=r"head: .*native output is 3D joints.*\[24, 3, 3\]"):
        fuse_calibrated_views(smpl_head, torch.randn(1, 2, 16, dtype=torch.float64),
                              rot[:1, :2])


def test_regression_head_averages_but_does_not_fuse(skeleton_head):
    torch.manual_seed(0)
    space = SkeletonSpace(H36M_17, drop_root=True)
    encoder = MLPLifter(16, 3, hidden=32, num_residual_blocks=1, dropout=0.0,
                        out_features=space.dim)
    head = SkeletonRegressionHead(encoder, space).double().eval()
    contexts, rot = views(head)
    average = average_calibrated_views(head, contexts, rot)
    single = head.mode(contexts.flatten(0, 1)).joints[:, 0].reshape(2, 3, 17, 3)
    torch.testing.assert_close(average, torch.einsum("pnji,pnkj->pki", rot, single) / 3)
    with pytest.raises(NotProbabilisticError, match="density"):
        fuse_calibrated_views(head, contexts, rot)
