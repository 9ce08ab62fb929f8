"""Batched L-BFGS / Adam / Levenberg–Marquardt: per-example independence, convergence,
stopping rule, errors."""

import math

import pytest
import torch

from condflow.fitting.optimize import (
    OptimizerConfig,
    VariableLayout,
    _cholesky,
    _two_loop,
    jacobian,
    minimize,
)


def rosenbrock(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """A different shifted Rosenbrock problem per example: minimum at a = 1 + 0.1 i,
    (x0, x1) = (a, a²), x[2:] = i."""
    a = 1.0 + 0.1 * index.to(x.dtype)
    rest = (x[:, 2:] - index[:, None].to(x.dtype)).pow(2).sum(1)
    return (a - x[:, 0]) ** 2 + 100 * (x[:, 1] - x[:, 0] ** 2) ** 2 + rest


def minimum(b: int) -> torch.Tensor:
    a = 1.0 + 0.1 * torch.arange(b, dtype=torch.float64)
    return torch.cat([a[:, None], a[:, None] ** 2, torch.arange(b)[:, None].double().expand(b, 3)],
                     1)


@pytest.mark.parametrize("method", ["lbfgs", "adam"])
def test_batched_equals_per_example(method):
    x0 = torch.randn(5, 5, dtype=torch.float64)
    cfg = OptimizerConfig(method=method, max_iters=60, tol=1e-14, lr=1.0 if method == "lbfgs"
                          else 0.05)
    batched = minimize(rosenbrock, x0, cfg)
    for i in range(5):
        single = minimize(lambda x, idx, i=i: rosenbrock(x, idx + i), x0[i:i + 1], cfg)
        assert torch.allclose(single.x[0], batched.x[i], atol=1e-10, rtol=0)
        assert single.iterations[0] == batched.iterations[i]


def test_lbfgs_finds_the_minima_and_stops_by_tolerance():
    x0 = torch.randn(4, 5, dtype=torch.float64)
    res = minimize(rosenbrock, x0, OptimizerConfig(max_iters=500, tol=1e-14))
    assert torch.allclose(res.x, minimum(4), atol=1e-5)
    assert res.converged.all() and (res.iterations < 500).all()
    assert torch.allclose(res.value, rosenbrock(res.x, torch.arange(4)))


def test_lbfgs_matches_torch_lbfgs_iterations():
    """Same trajectory as torch.optim.LBFGS(line_search_fn='strong_wolfe') on one example."""
    x0 = torch.randn(1, 5, dtype=torch.float64)
    ours = minimize(rosenbrock, x0, OptimizerConfig(max_iters=12, tol=0.0, grad_tol=1e-9))
    x = x0.clone().requires_grad_(True)
    opt = torch.optim.LBFGS([x], lr=1, max_iter=12, tolerance_grad=1e-9, tolerance_change=0.0,
                            history_size=10, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        f = rosenbrock(x, torch.zeros(1, dtype=torch.long)).sum()
        f.backward()
        return f

    opt.step(closure)
    assert ours.iterations[0] == 12 == opt.state[x]["n_iter"]
    assert torch.allclose(ours.x, x.detach(), atol=1e-9)
    assert not torch.allclose(ours.x, minimum(1), atol=1e-3)  # still on the way


def test_max_iters_stops_unconverged_examples():
    x0 = torch.randn(3, 5, dtype=torch.float64) - 2
    res = minimize(rosenbrock, x0, OptimizerConfig(max_iters=3, tol=0.0))
    assert (res.iterations == 3).all() and not res.converged.any()
    assert (res.value < rosenbrock(x0, torch.arange(3))).all()


def test_examples_already_at_a_minimum_take_no_step():
    x0 = minimum(3)
    res = minimize(rosenbrock, x0, OptimizerConfig())
    assert torch.equal(res.x, x0) and res.converged.all()


def test_line_search_steps_back_from_non_finite_values():
    def walled(x, index):  # minimum at 3, but NaN beyond 2: the answer is near 2
        f = (x[:, 0] - 3.0) ** 2
        return torch.where(x[:, 0] > 2.0, torch.full_like(f, float("nan")), f)

    res = minimize(walled, torch.zeros(2, 1, dtype=torch.float64), OptimizerConfig(max_iters=50))
    assert torch.isfinite(res.value).all() and (res.x <= 2.0).all() and (res.x > 1.5).all()


def test_variable_layout_round_trip():
    tensors = {"z": torch.randn(3, 4), "cam": torch.randn(3, 2, 3)}
    layout = VariableLayout.of(tensors)
    packed = layout.pack(tensors)
    assert packed.shape == (3, 10)
    back = layout.unpack(packed)
    assert all(torch.equal(back[k], tensors[k]) for k in tensors)


def test_errors():
    with pytest.raises(ValueError, match="method"):
        OptimizerConfig(method="sgd")
    with pytest.raises(ValueError, match="max_iters"):
        OptimizerConfig(max_iters=0)
    with pytest.raises(ValueError, match="x0"):
        minimize(rosenbrock, torch.randn(5))
    with pytest.raises(ValueError, match="one value per example"):
        minimize(lambda x, idx: x.sum(), torch.randn(2, 3))


@pytest.mark.parametrize("method", ["lbfgs", "adam"])
def test_callback_sees_every_iteration_and_the_final_iterates(method):
    x0 = torch.randn(3, 5, dtype=torch.float64)
    cfg = OptimizerConfig(method=method, max_iters=40, lr=1.0 if method == "lbfgs" else 0.05)
    seen = []
    res = minimize(rosenbrock, x0, cfg, callback=lambda k, x: seen.append((k, x.clone())))
    assert [k for k, _ in seen] == list(range(1, int(res.iterations.max()) + 1))
    assert torch.equal(seen[-1][1], res.x)
    assert not torch.equal(seen[0][1], x0)


def test_fixed_shape_lbfgs_equals_the_reference():
    x0 = torch.randn(5, 5, dtype=torch.float64)
    cfg = {"max_iters": 80, "tol": 1e-10}
    ref = minimize(rosenbrock, x0, OptimizerConfig(**cfg))
    calls = []

    def counted(x, index):
        calls.append(len(index))
        return rosenbrock(x, index)

    fixed = minimize(counted, x0, OptimizerConfig(**cfg, fixed_shape=True))
    assert set(calls) == {5}  # every call evaluates the whole batch
    assert len(set(ref.iterations.tolist())) > 1  # the examples stop at different iterations
    torch.testing.assert_close(fixed.x, ref.x, atol=1e-10, rtol=0)
    assert torch.equal(fixed.iterations, ref.iterations)
    assert torch.equal(fixed.converged, ref.converged)


def rosenbrock_residuals(x, index, with_jacobian):
    """Residuals of :func:`rosenbrock` (Σ r² = its value) and their hand-written Jacobian."""
    a = 1.0 + 0.1 * index.to(x.dtype)
    r = torch.cat([(a - x[:, 0])[:, None], (10 * (x[:, 1] - x[:, 0] ** 2))[:, None],
                   x[:, 2:] - index[:, None].to(x.dtype)], 1)
    if not with_jacobian:
        return r, None
    jac = torch.zeros(len(x), 5, 5, dtype=x.dtype)
    jac[:, 0, 0] = -1.0
    jac[:, 1, 0], jac[:, 1, 1] = -20 * x[:, 0], 10.0
    jac[:, 2:, 2:] = torch.eye(3, dtype=x.dtype)
    return r, jac


def test_levenberg_marquardt_decreases_every_example_monotonically_to_its_minimum():
    x0 = torch.randn(4, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    x0[:, 0] -= 2.0  # far along the valley: steps get rejected and the damping adapts
    values = []

    def record(k, x):
        values.append(rosenbrock(x, torch.arange(4)))

    counted = []

    def residuals(x, index, with_jacobian):
        counted.append(len(index))
        return rosenbrock_residuals(x, index, with_jacobian)

    cfg = OptimizerConfig(method="lm", max_iters=200, tol=1e-15, grad_tol=1e-10)
    res = minimize(rosenbrock, x0, cfg, record, residuals)
    trace = torch.stack([rosenbrock(x0, torch.arange(4)), *values])
    assert (trace[1:] <= trace[:-1]).all()  # accept/reject: f never increases
    assert (trace[1:] < trace[:-1]).any(1).all()
    torch.testing.assert_close(res.x, minimum(4), atol=1e-6, rtol=0)
    assert res.converged.all() and (res.iterations < 200).all()
    torch.testing.assert_close(res.value, rosenbrock(res.x, torch.arange(4)))
    # Rejected trials happened (more trial evaluations than iterations), and examples that
    # stopped left the batch.
    trials = len(counted) - 1 - int(res.iterations.max())
    assert trials > int(res.iterations.max()) and min(counted) < 4
    # Batched = per example.
    single = minimize(lambda x, i: rosenbrock(x, i + 2), x0[2:3], cfg,
                      residuals=lambda x, i, j: rosenbrock_residuals(x, i + 2, j))
    torch.testing.assert_close(single.x[0], res.x[2], atol=1e-12, rtol=0)
    assert single.iterations[0] == res.iterations[2]


def test_lm_then_lbfgs_polishes_from_the_lm_point():
    x0 = torch.randn(3, 5, dtype=torch.float64) - 2
    seen = []
    jacobians = []

    def residuals(x, index, with_jacobian):
        jacobians.append(with_jacobian)
        return rosenbrock_residuals(x, index, with_jacobian)

    cfg = OptimizerConfig(method="lm+lbfgs", lm_iters=3, max_iters=100, tol=1e-14)
    res = minimize(rosenbrock, x0, cfg, lambda k, x: seen.append(k), residuals)
    # At the start and after the first two LM iterations: the third's new point is L-BFGS's.
    assert sum(jacobians) == 3
    lm = minimize(rosenbrock, x0, OptimizerConfig(method="lm", max_iters=3, tol=0.0),
                  residuals=rosenbrock_residuals)
    assert (lm.iterations == 3).all() and not lm.converged.any()
    polish = minimize(rosenbrock, lm.x, OptimizerConfig(max_iters=100, tol=1e-14))
    torch.testing.assert_close(res.x, polish.x, atol=0, rtol=0)
    assert torch.equal(res.iterations, lm.iterations + polish.iterations)
    assert seen == list(range(1, int(res.iterations.max()) + 1))
    torch.testing.assert_close(res.x, minimum(3), atol=1e-5, rtol=0)


def test_jacobian_equals_autograd():
    w = torch.randn(6, 4, dtype=torch.float64)
    x = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    out = torch.tanh(x @ w.T) * x[:, :1]  # row i depends on x[i] only
    jac = jacobian(out, x)
    for i in range(3):
        ref = torch.autograd.functional.jacobian(
            lambda v: torch.tanh(v @ w.T) * v[:1], x[i].detach())
        torch.testing.assert_close(jac[i], ref, atol=1e-12, rtol=0)
    assert jacobian(out[:, :0], x).shape == (3, 0, 4)


def test_levenberg_marquardt_errors():
    for name, bad in (("lm_iters", 0), ("max_trials", 0), ("damping", 0.0),
                      ("damping", float("nan"))):
        with pytest.raises(ValueError, match=f"^{name}:"):
            OptimizerConfig(method="lm", **{name: bad})
    with pytest.raises(ValueError, match="config.method: 'lm\\+lbfgs' .* residuals"):
        minimize(rosenbrock, torch.randn(2, 5), OptimizerConfig(method="lm+lbfgs"))
    with pytest.raises(ValueError, match="residuals: expected r \\[2, R\\] and J"):
        minimize(rosenbrock, torch.randn(2, 5), OptimizerConfig(method="lm"),
                 residuals=lambda x, i, j: (x, None))


def test_levenberg_marquardt_with_a_jacobian_every_third_iteration():
    x0 = torch.randn(3, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    jacobians = {1: 0, 3: 0}
    results = {}
    for every in (1, 3):
        values = []

        def residuals(x, index, with_jacobian, every=every):
            jacobians[every] += with_jacobian
            return rosenbrock_residuals(x, index, with_jacobian)

        cfg = OptimizerConfig(method="lm", max_iters=300, tol=1e-15, grad_tol=1e-10,
                              jacobian_every=every)
        results[every] = minimize(rosenbrock, x0, cfg,
                                  lambda k, x, v=values: v.append(rosenbrock(x, torch.arange(3))),
                                  residuals)
        trace = torch.stack(values)
        assert (trace[1:] <= trace[:-1]).all()
        torch.testing.assert_close(results[every].x, minimum(3), atol=1e-6, rtol=0)
    # Batched Jacobian calls: the start, then after every (every third) iteration; between
    # them the steps use the last one's curvature, so the iterates differ.
    assert jacobians[1] == 1 + int(results[1].iterations.max())
    assert jacobians[3] == 1 + int(results[3].iterations.max()) // 3
    assert not torch.equal(results[1].iterations, results[3].iterations)
    with pytest.raises(ValueError, match="^jacobian_every:"):
        OptimizerConfig(jacobian_every=0)


def test_two_loop_with_an_initial_hessian_matrix():
    """−H g with H₀⁻¹ a matrix: without history exactly −H₀⁻¹ g; with history the L-BFGS
    inverse Hessian still satisfies the last secant equation H y = s."""
    gen = torch.Generator().manual_seed(3)
    b, d = 3, 6
    m = torch.randn(b, d, d, dtype=torch.float64, generator=gen)
    h0 = m @ m.transpose(1, 2) + 0.5 * torch.eye(d, dtype=torch.float64)
    g = torch.randn(b, d, dtype=torch.float64, generator=gen)
    ones = torch.ones(b, dtype=torch.float64)
    direction = _two_loop(g, [], ones, _cholesky(h0))
    torch.testing.assert_close(direction, -torch.linalg.solve(h0, g), atol=1e-12, rtol=0)
    history = []
    for _ in range(3):
        s = torch.randn(b, d, dtype=torch.float64, generator=gen)
        y = s @ (m @ m.transpose(1, 2))[0] + 0.1 * s  # ys > 0
        history.append((s, y, 1.0 / (y * s).sum(1)))
    torch.testing.assert_close(_two_loop(history[-1][1], history, ones, _cholesky(h0)),
                               -history[-1][0], atol=1e-10, rtol=0)
    # An indefinite matrix (positive diagonal) falls back to its diagonal.
    bad = h0.clone()
    bad[1] = 2 * torch.ones(d, d, dtype=torch.float64) - torch.eye(d, dtype=torch.float64)
    factor = _cholesky(bad)
    torch.testing.assert_close(factor[1] @ factor[1].T, torch.diag_embed(bad[1].diagonal()))
    torch.testing.assert_close(factor[0], torch.linalg.cholesky(h0[0]))
    bad[2] = float("nan")
    assert torch.equal(_cholesky(bad)[2], torch.eye(d, dtype=torch.float64))


def linear_residuals(problems: int, rows: int = 12, dim: int = 6, condition: float = 1e3):
    """Per example an ill-conditioned linear least-squares problem r = A x − b, its residuals
    with Jacobian A, and the solutions ``[B, dim]``."""
    gen = torch.Generator().manual_seed(4)
    q, _ = torch.linalg.qr(torch.randn(problems, rows, dim, dtype=torch.float64, generator=gen))
    a = q * torch.logspace(0, math.log10(condition), dim, dtype=torch.float64)
    b = torch.randn(problems, rows, dtype=torch.float64, generator=gen)

    def residuals(x, index, with_jacobian):
        r = (a[index] @ x[..., None])[..., 0] - b[index]
        return r, a[index] if with_jacobian else None

    def objective(x, index):
        return residuals(x, index, False)[0].pow(2).sum(1)

    return objective, residuals, torch.linalg.lstsq(a, b[..., None]).solution[..., 0]


def test_preconditioned_lbfgs_after_lm_converges_in_far_fewer_iterations():
    objective, residuals, solution = linear_residuals(4)
    x0 = torch.zeros(4, 6, dtype=torch.float64)
    fits = {}
    for pre in (False, True):
        cfg = OptimizerConfig(method="lm+lbfgs", lm_iters=1, max_iters=300, tol=1e-15,
                              grad_tol=1e-9, precondition=pre)
        fits[pre] = minimize(objective, x0, cfg, residuals=residuals)
        torch.testing.assert_close(fits[pre].x, solution, atol=1e-6, rtol=0)
    # H₀ = 2(AᵀA + λ diag AᵀA) is the Hessian up to the damping: a handful of iterations,
    # against the scaled identity's dozens on a condition number of 10⁶ (of AᵀA).
    assert (fits[True].iterations <= 6).all(), fits[True].iterations
    assert (fits[False].iterations >= 4 * fits[True].iterations).all(), fits[False].iterations
    assert fits[True].converged.all()


def test_precondition_errors():
    with pytest.raises(ValueError, match="^precondition: needs method 'lm\\+lbfgs'"):
        OptimizerConfig(method="lbfgs", precondition=True)
    with pytest.raises(ValueError, match="^precondition: expected True or False"):
        OptimizerConfig(method="lm+lbfgs", precondition=1)
