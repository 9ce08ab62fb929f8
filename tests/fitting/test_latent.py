"""Keypoint fitting with the learned prior, on a small skeleton head."""

import copy

import pytest
import torch

from condflow.fitting import (
    FitConfig,
    OptimizerConfig,
    SkeletonAdapter,
    fit_keypoints,
)


def test_fitting_lowers_the_keypoint_error(skeleton_head, make_problem):
    context, kp, _ = make_problem(skeleton_head)
    at_mode = fit_keypoints(skeleton_head, context, kp, FitConfig(keypoint_weight=0.0))
    fit = fit_keypoints(skeleton_head, context, kp, FitConfig(keypoint_weight=1e4))
    assert (fit.keypoint_energy < 0.5 * at_mode.keypoint_energy).all()
    start = 1e4 * at_mode.keypoint_energy  # the objective at z = 0
    assert (fit.objective < start).all()
    assert (fit.z.abs().sum(1) > 0).all() and (fit.iterations > 0).all()
    assert fit.outputs["joints_mm"].shape == (4, 17, 3) and fit.outputs["transl"].shape == (4, 3)
    # −log p differs from ½‖z‖² by a constant per context for the Glow flows.
    gap = fit.neg_log_prob - fit.prior_energy
    assert torch.allclose(gap, at_mode.neg_log_prob - at_mode.prior_energy, atol=1e-6)


def test_zero_keypoint_weight_stays_at_the_mode(skeleton_head, make_problem):
    context, kp, _ = make_problem(skeleton_head)
    fit = fit_keypoints(skeleton_head, context, kp, FitConfig(keypoint_weight=0.0))
    assert torch.equal(fit.z, torch.zeros_like(fit.z))
    assert torch.allclose(fit.theta, skeleton_head.flow.mode(context), atol=1e-10)
    assert torch.equal(fit.prior_energy, torch.zeros(4, dtype=torch.float64))


@pytest.mark.parametrize("method", ["lbfgs", "adam"])
def test_batched_fit_equals_per_example_fits(skeleton_head, make_problem, method):
    """Each example has its own line search and stopping rule, so batching changes nothing
    but the rounding of batched kernels (~1e-13 here; over hundreds of iterations of a
    slowly converging fit such differences can grow to ~1e-2 mm)."""
    context, kp, _ = make_problem(skeleton_head, batch=3)
    opt = OptimizerConfig(max_iters=40, tol=1e-12) if method == "lbfgs" else OptimizerConfig(
        "adam", max_iters=100, lr=0.02)
    cfg = FitConfig(keypoint_weight=1e4, optimizer=opt)
    batched = fit_keypoints(skeleton_head, context, kp, cfg)
    moved = (batched.theta - skeleton_head.flow.mode(context)).abs().amax(1)
    assert (moved > 1.0).all()  # mm: the fits went somewhere
    for i in range(3):
        single = fit_keypoints(skeleton_head, context[i:i + 1], kp[i:i + 1], cfg)
        assert torch.allclose(single.theta[0], batched.theta[i], atol=1e-6)  # mm
        assert torch.allclose(single.objective[0], batched.objective[i], rtol=1e-10)
        assert single.iterations[0] == batched.iterations[i]


def test_callback_reports_the_keypoint_error_along_the_fit(skeleton_head, make_problem):
    context, kp, _ = make_problem(skeleton_head)
    trace = []
    fit = fit_keypoints(skeleton_head, context, kp, FitConfig(keypoint_weight=1e4),
                        callback=lambda p: trace.append((p.iteration, p.keypoint_energy())))
    assert [k for k, _ in trace] == list(range(1, int(fit.iterations.max()) + 1))
    assert torch.allclose(trace[-1][1], fit.keypoint_energy, rtol=1e-6, atol=0)
    assert (trace[-1][1] < trace[0][1]).all()


def test_adam_lowers_the_keypoint_error(skeleton_head, make_problem):
    context, kp, _ = make_problem(skeleton_head)
    at_mode = fit_keypoints(skeleton_head, context, kp, FitConfig(keypoint_weight=0.0))
    fit = fit_keypoints(skeleton_head, context, kp, FitConfig(
        keypoint_weight=1e4, optimizer=OptimizerConfig("adam", max_iters=200, lr=0.02)))
    assert (fit.keypoint_energy < at_mode.keypoint_energy).all()


def test_head_is_frozen_in_eval_mode_during_the_fit_and_restored(new_skeleton_head,
                                                                 make_problem):
    head = new_skeleton_head()
    context, kp, _ = make_problem(head, batch=2)
    head.train()
    seen = []
    hook = head.flow.bijector.register_forward_pre_hook(
        lambda m, args: seen.append((head.training, any(p.requires_grad
                                                        for p in head.parameters()))))
    fit_keypoints(head, context, kp, FitConfig(optimizer=OptimizerConfig(max_iters=3)))
    hook.remove()
    assert seen and all(state == (False, False) for state in seen)
    assert head.training and all(p.requires_grad for p in head.parameters())
    assert all(p.grad is None for p in head.parameters())


def test_fit_with_an_adapter_of_another_focal_length(skeleton_head, make_problem):
    context, kp, _ = make_problem(skeleton_head)
    adapter = SkeletonAdapter(skeleton_head, focal=4.0)
    fit = fit_keypoints(adapter, context, kp, FitConfig(keypoint_weight=1e4))
    assert fit.outputs["transl"][:, 2].mean() > 8.0  # twice the focal: about twice the depth


def test_bad_inputs_raise(skeleton_head, make_problem):
    context, kp, _ = make_problem(skeleton_head)
    with pytest.raises(ValueError, match="keypoints: expected shape"):
        fit_keypoints(skeleton_head, context, kp[:, :15])
    bad = kp.clone()
    bad[0, 0, 2] = -1.0
    with pytest.raises(ValueError, match="confidences"):
        fit_keypoints(skeleton_head, context, bad)
    with pytest.raises(ValueError, match="context"):
        fit_keypoints(skeleton_head, context[:, :5], kp)
    with pytest.raises(ValueError, match="keypoints: expected 4 examples"):
        fit_keypoints(skeleton_head, context, kp[:2])
    with pytest.raises(ValueError, match="keypoint_weight"):
        FitConfig(keypoint_weight=-1.0)
    with pytest.raises(ValueError, match="head"):
        fit_keypoints(torch.nn.Linear(2, 2), context, kp)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_keypoint_fit_on_cuda_matches_cpu(new_skeleton_head, make_problem):
    head = new_skeleton_head(torch.float64)
    context, kp, _ = make_problem(head, batch=3)
    cfg = FitConfig(keypoint_weight=1e4, optimizer=OptimizerConfig(max_iters=30, tol=1e-12))
    cpu = fit_keypoints(head, context, kp, cfg)
    gpu = fit_keypoints(copy.deepcopy(head).to("cuda"), context.to("cuda"), kp.to("cuda"), cfg)
    assert gpu.theta.device.type == "cuda"
    torch.testing.assert_close(gpu.keypoint_energy.cpu(), cpu.keypoint_energy, rtol=1e-3,
                               atol=1e-9)
    assert (gpu.theta.cpu() - cpu.theta).abs().max() < 0.1  # mm
