"""Batched minimization of independent per-example objectives: L-BFGS, Adam and
Levenberg–Marquardt.

A fitting problem is a batch of ``B`` independent problems: ``objective(x, index)`` maps
variables ``x [b, D]`` of the examples ``index [b]`` to their values ``[b]``, the value of
example i depending on row i only. Summing the values would couple the examples through an
optimizer's step-size logic (one line search for the whole batch); here every example has its
own L-BFGS history, its own strong-Wolfe line search (run vectorized over the batch) and its
own stopping rule, so fitting a batch gives the same answer as fitting each example alone
(up to floating-point rounding of batched kernels). Examples that have stopped are no longer
evaluated.

With ``fixed_shape`` (L-BFGS) every objective call evaluates all ``B`` examples instead of the
shrinking sub-batch of those still searching; the values of the others are discarded, and
examples that have stopped take zero steps. The iterates are the same up to floating-point
rounding (which a long float32 fit of a non-convex objective can amplify); the matrix
products of an expensive model stay ``B`` rows wide and every call has the same shape, which
pays where a product of a few rows costs about as much as one of ``B`` (launch-bound GPUs,
graph capture), and not where the cost grows with the rows (measured on a CPU:
``benchmarks/README.md``).

Objectives that are sums of squares, f(x) = ‖r(x)‖² with residuals ``r [R]`` and their
Jacobian ``J = ∂r/∂x [R, D]`` per example (:data:`Residuals`), can also be minimized by
Levenberg–Marquardt (``method="lm"``): per example and iteration, solve

    (JᵀJ + λ diag(JᵀJ)) δ = −Jᵀr      (in float64; diag floored at 1e-9 of its largest entry)

and accept ``x + δ`` only if f decreases, else raise the damping λ and solve again (at most
``max_trials`` trials, each one batched evaluation of the examples still trying), so f never
increases. λ follows Nielsen's rule: ×max(⅓, 1 − (2ρ − 1)³) on acceptance, ρ the ratio of
the actual to the predicted decrease ``−(2 gᵀδ + δᵀJᵀJ δ)`` with g = Jᵀr (½∇f); ×ν on
rejection, ν doubling with every rejection in a row. The Jacobian is taken once per
iteration, at the accepted points; with ``jacobian_every = k > 1`` only every k-th
iteration, and in between the step uses the last Jacobian's JᵀJ with the exact gradient
at the current point (one evaluation of the objective and its gradient). An example stops
when its change of f is small (``tol``), ``max |∇f| ≤ grad_tol``, the model promises no
decrease (predicted ≤ ``tol``·max(f, 1)), or no trial decreases f. ``method="lm+lbfgs"``
runs at most ``lm_iters`` such iterations as a fast start and then L-BFGS from where they
stopped (its own ``max_iters``), so the fit ends under L-BFGS's stopping rule, at a minimum
of the same objective; its last LM iteration takes no Jacobian at its new point (L-BFGS
evaluates its own gradient there). With ``precondition`` it does, and L-BFGS takes that
point's damped Gauss–Newton matrix H₀ = 2(JᵀJ + λ diag(JᵀJ)) of each example as its initial
Hessian (in the two-loop recursion, in place of the scaled identity; first trial step 1),
so its first direction is the step LM would take next and its curvature pairs correct a
Gauss–Newton model instead of a scalar one (H₀ from the point before, a step back, was
measured to cost more L-BFGS iterations than the Jacobian saves). Like the scaled
identity, H₀ is rescaled after every iteration by sᵀy / yᵀH₀⁻¹y (the last step s and change
of gradient y; without it the steps overshoot where the gradient leaves the range of the
old Jacobian). The cost: one Cholesky factorization per example, and two pairs of
triangular solves per iteration.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from condflow._checks import check_positive_int, check_tensor

__all__ = [
    "Callback", "MinimizeResult", "Objective", "OptimizerConfig", "Residuals", "VariableLayout",
    "component_gradients", "jacobian", "minimize",
]

Objective = Callable[[Tensor, Tensor], Tensor]
"""``objective(x [b, D], index [b]) -> values [b]`` (differentiable in ``x``)."""

Callback = Callable[[int, Tensor], None]
"""``callback(iteration, x [B, D])`` after every iteration (``x`` must not be modified)."""

Residuals = Callable[[Tensor, Tensor, bool], tuple[Tensor, Tensor | None]]
"""``residuals(x [b, D], index [b], with_jacobian) -> (r [b, R], J [b, R, D] or None)``:
residuals whose squared sum ``Σ r²`` is the objective's value, example i's depending on row i
only, and their Jacobians ``∂r/∂x`` (``None`` without ``with_jacobian``)."""

METHODS = ("lbfgs", "adam", "lm", "lm+lbfgs")
#: The methods that minimize ``Σ r²`` by Levenberg–Marquardt (they need :data:`Residuals`).
LM_METHODS = ("lm", "lm+lbfgs")


@dataclass
class OptimizerConfig:
    """How a fit is optimized.

    The stopping rule, per example: the relative change of the objective between iterations
    ``|f_{k-1} − f_k| ≤ tol · max(|f_{k-1}|, |f_k|, 1)``, a gradient with
    ``max |∇f| ≤ grad_tol``, or ``max_iters`` iterations.

    ``fixed_shape`` (L-BFGS): evaluate the whole batch on every objective call (see the
    module docstring); the iterates are those of the default, shrinking evaluation up to
    floating-point rounding.

    ``"lm"``: Levenberg–Marquardt under the stopping rule above (``max_iters`` iterations);
    ``"lm+lbfgs"``: at most ``lm_iters`` Levenberg–Marquardt iterations, then L-BFGS for up
    to ``max_iters`` more (module docstring), with ``precondition`` in the metric of the
    last damped Gauss–Newton matrix. Both need residuals (:data:`Residuals`).
    """

    method: str = "lbfgs"  # "lbfgs" (strong-Wolfe line search), "adam", "lm" or "lm+lbfgs"
    max_iters: int = 100
    tol: float = 1e-7
    grad_tol: float = 1e-9
    lr: float = 1.0  # L-BFGS: scale of the first trial step; Adam: learning rate
    history_size: int = 10  # L-BFGS memory
    max_line_search: int = 25  # L-BFGS: objective evaluations per line search
    betas: tuple[float, float] = (0.9, 0.999)  # Adam
    fixed_shape: bool = False  # L-BFGS: evaluate the whole batch on every call
    lm_iters: int = 5  # "lm+lbfgs": Levenberg–Marquardt iterations before L-BFGS
    damping: float = 0.1  # LM: initial λ, relative to diag(JᵀJ)
    max_trials: int = 10  # LM: trial steps (batched evaluations) per iteration
    jacobian_every: int = 1  # LM: a fresh Jacobian every this many iterations
    precondition: bool = False  # "lm+lbfgs": L-BFGS in the metric of the last damped JᵀJ

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"method: expected one of {METHODS}, got {self.method!r}")
        for name in ("max_iters", "history_size", "max_line_search", "lm_iters", "max_trials",
                     "jacobian_every"):
            check_positive_int(name, getattr(self, name))
        if not (isinstance(self.damping, int | float) and self.damping > 0
                and math.isfinite(self.damping)):
            raise ValueError(f"damping: expected a positive number, got {self.damping!r}")
        for name in ("tol", "grad_tol", "lr"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name}: expected a number >= 0, got {getattr(self, name)!r}")
        if not self.lr > 0:
            raise ValueError(f"lr: expected a positive number, got {self.lr!r}")
        if not isinstance(self.precondition, bool):
            raise ValueError(f"precondition: expected True or False, got {self.precondition!r}")
        if self.precondition and self.method != "lm+lbfgs":
            raise ValueError(f"precondition: needs method 'lm+lbfgs' (L-BFGS after "
                             f"Levenberg–Marquardt's Gauss–Newton matrix), got {self.method!r}")


@dataclass
class MinimizeResult:
    """``x [B, D]`` the minimizers, ``value [B]`` the objective there, ``iterations [B]``
    (long) and ``converged [B]`` (bool: stopped by ``tol``/``grad_tol`` rather than by
    ``max_iters``), ``evaluations`` the number of batched objective calls."""

    x: Tensor
    value: Tensor
    iterations: Tensor
    converged: Tensor
    evaluations: int


class VariableLayout:
    """Packs named per-example variables ``{name: [B, *shape]}`` into one ``[B, D]`` tensor."""

    def __init__(self, shapes: dict[str, tuple[int, ...]]) -> None:
        self.shapes = {k: tuple(int(s) for s in v) for k, v in shapes.items()}
        self.sizes = {k: int(torch.Size(v).numel()) for k, v in self.shapes.items()}
        self.dim = sum(self.sizes.values())

    @classmethod
    def of(cls, tensors: dict[str, Tensor]) -> VariableLayout:
        """The layout of ``{name: [B, *shape]}``."""
        return cls({k: tuple(v.shape[1:]) for k, v in tensors.items()})

    def pack(self, tensors: dict[str, Tensor]) -> Tensor:
        """``{name: [B, *shape]}`` → ``[B, D]``."""
        return torch.cat([tensors[k].reshape(tensors[k].shape[0], -1) for k in self.shapes], 1)

    def unpack(self, x: Tensor) -> dict[str, Tensor]:
        """``[B, D]`` → ``{name: [B, *shape]}`` (views of ``x``)."""
        parts = x.split(list(self.sizes.values()), dim=1)
        return {k: p.reshape(x.shape[0], *s) for (k, s), p in zip(self.shapes.items(), parts,
                                                                  strict=True)}


class _Evaluator:
    """Values and per-example gradients of an objective, counting batched calls."""

    def __init__(self, objective: Objective) -> None:
        self.objective = objective
        self.calls = 0

    def __call__(self, x: Tensor, index: Tensor) -> tuple[Tensor, Tensor]:
        self.calls += 1
        with torch.enable_grad():
            x = x.detach().requires_grad_(True)
            f = self.objective(x, index)
            if f.shape != index.shape:
                raise ValueError(
                    f"objective: expected one value per example, shape {list(index.shape)}, "
                    f"got {list(f.shape)}"
                )
            (g,) = torch.autograd.grad(f.sum(), x)
        f, g = f.detach(), g.detach()
        bad = ~torch.isfinite(f) | ~torch.isfinite(g).all(1)
        # A non-finite point counts as infinitely bad: line searches step back from it.
        f = f.masked_fill(bad, float("inf"))
        g = g.masked_fill(bad[:, None], 0.0)
        return f, g


def minimize(objective: Objective, x0: Tensor, config: OptimizerConfig | None = None,
             callback: Callback | None = None, residuals: Residuals | None = None
             ) -> MinimizeResult:
    """Minimize ``B`` independent objectives from ``x0 [B, D]`` (see the module docstring).

    ``callback(k, x)`` is called after the k-th batched iteration with the current iterates
    ``x [B, D]`` of every example (those that have stopped keep their final values).
    ``residuals`` (:data:`Residuals`, with ``Σ r² = objective``) is needed by the
    Levenberg–Marquardt methods and ignored by the others. The returned values are the
    objective's (also after Levenberg–Marquardt). With ``"lm+lbfgs"`` an example's
    iterations are its Levenberg–Marquardt steps plus its L-BFGS iterations, and ``k``
    counts the batched iterations of both phases.
    """
    config = config or OptimizerConfig()
    x0 = check_tensor("x0", x0, ("B", "D"))
    evaluate = _Evaluator(objective)
    report = callback or (lambda k, x: None)
    x = x0.detach().clone()
    if config.method not in LM_METHODS:
        run = _lbfgs if config.method == "lbfgs" else _adam
        return run(evaluate, x, config, report)
    if residuals is None:
        raise ValueError(f"config.method: {config.method!r} minimizes a sum of squares and "
                         f"needs its residuals (minimize(..., residuals=...))")
    done = 0  # batched LM iterations reported

    def lm_report(k: int, x: Tensor) -> None:
        nonlocal done
        done = k
        report(k, x)

    lm = _levenberg_marquardt(
        residuals, evaluate, x, config, lm_report,
        config.max_iters if config.method == "lm" else config.lm_iters,
        last_jacobian=config.method == "lm" or config.precondition)
    if config.method == "lm":
        f, _ = evaluate(lm.x, torch.arange(len(lm.x), device=lm.x.device))
        return MinimizeResult(lm.x, f, lm.iterations, lm.converged,
                              lm.evaluations + evaluate.calls)
    polish = _lbfgs(evaluate, lm.x, config, lambda k, x: report(done + k, x),
                    _cholesky(lm.hessian) if config.precondition else None)
    return MinimizeResult(polish.x, polish.value, lm.iterations + polish.iterations,
                          polish.converged, lm.evaluations + polish.evaluations)


def _small_change(f_old: Tensor, f_new: Tensor, tol: float) -> Tensor:
    scale = torch.maximum(torch.maximum(f_old.abs(), f_new.abs()), torch.ones_like(f_new))
    return (f_old - f_new).abs() <= tol * scale


# ---------------------------------------------------------------------------------------------
# L-BFGS


def _two_loop(g: Tensor, history: list[tuple[Tensor, Tensor, Tensor]], h_diag: Tensor,
              h0_factor: Tensor | None = None) -> Tensor:
    """d = −H g by the L-BFGS two-loop recursion, per row, its initial inverse Hessian
    ``h_diag``·I, or ``h_diag``·H₀⁻¹ given H₀'s Cholesky factor ``h0_factor [b, D, D]``.
    History entries ``(s, y, ρ)`` with ``ρ = 0`` (a rejected curvature pair) are no-ops."""
    q = -g
    alphas = []
    for s, y, rho in reversed(history):
        a = rho * (s * q).sum(1)
        q = q - a[:, None] * y
        alphas.append(a)
    if h0_factor is None:
        r = q * h_diag[:, None]
    else:
        r = h_diag[:, None] * _solve(h0_factor, q)
    for (s, y, rho), a in zip(history, reversed(alphas), strict=True):
        b = rho * (y * r).sum(1)
        r = r + s * (a - b)[:, None]
    return r


def _lbfgs(evaluate: _Evaluator, x: Tensor, config: OptimizerConfig, callback: Callback,
           h0_factor: Tensor | None = None) -> MinimizeResult:
    """L-BFGS from ``x [B, D]``; ``h0_factor [B, D, D]``: the Cholesky factors of the
    examples' initial Hessians, rescaled every iteration (default: the scaled identity)."""
    n = x.shape[0]
    every = torch.arange(n, device=x.device)
    f, g = evaluate(x, every)
    iterations = torch.zeros(n, dtype=torch.long, device=x.device)
    converged = g.abs().amax(1) <= config.grad_tol
    active = ~converged
    history: list[tuple[Tensor, Tensor, Tensor]] = []  # full-batch (s, y, ρ)
    h_diag = torch.ones_like(f)
    for k in range(1, config.max_iters + 1):
        if config.fixed_shape:
            if not bool(active.any()):
                break
            ids, moving = every, active.clone()
        else:
            ids = active.nonzero()[:, 0]
            if len(ids) == 0:
                break
            moving = torch.ones_like(ids, dtype=torch.bool)
        g_a = g[ids]
        d = _two_loop(g_a, [(s[ids], y[ids], r[ids]) for s, y, r in history], h_diag[ids],
                      None if h0_factor is None else h0_factor[ids])
        d = d * moving[:, None]  # stopped examples of a fixed-shape batch take no step
        gtd = (g_a * d).sum(1)
        first = (iterations[ids] == 0) & (h0_factor is None)  # H₀ sets the step's scale
        t0 = torch.where(first, (1.0 / g_a.abs().sum(1)).clamp(max=1.0), torch.ones_like(gtd))
        f_new, g_new, t = _strong_wolfe(
            evaluate, ids, x[ids], d, f[ids], g_a, gtd, t0 * config.lr, config.max_line_search,
            fixed_shape=config.fixed_shape,
        )
        s = t[:, None] * d
        y = g_new - g_a
        ys = (y * s).sum(1)
        valid = moving & (ys > 1e-10)
        rho = torch.zeros_like(f)
        rho[ids] = torch.where(valid, 1.0 / ys.where(valid, torch.ones_like(ys)),
                               torch.zeros_like(ys))
        s_full, y_full = torch.zeros_like(x), torch.zeros_like(x)
        s_full[ids], y_full[ids] = s, y
        history.append((s_full, y_full, rho))
        if len(history) > config.history_size:
            history.pop(0)
        yy = (y * y if h0_factor is None else y * _solve(h0_factor[ids], y)).sum(1)
        h_diag[ids] = torch.where(valid, ys / yy.clamp_min(1e-30), h_diag[ids])
        f_old = f[ids]
        x[ids] = x[ids] + s
        f[ids], g[ids] = f_new, g_new
        iterations[ids] += moving.long()
        stop = moving & (
            _small_change(f_old, f_new, config.tol)
            | (g_new.abs().amax(1) <= config.grad_tol)
            | ~(gtd < 0)  # no descent direction left (or a non-finite point)
        )
        converged[ids] |= stop
        active[ids] &= ~stop
        callback(k, x)
    return MinimizeResult(x, f, iterations, converged, evaluate.calls)


def _cubic_minimum(t1: Tensor, f1: Tensor, g1: Tensor, t2: Tensor, f2: Tensor, g2: Tensor,
                   lo: Tensor, hi: Tensor) -> Tensor:
    """Minimizer of the cubic through (t1, f1, g1), (t2, f2, g2), clamped to [lo, hi]; the
    midpoint where the cubic has no minimum (vectorized ``torch.optim.lbfgs`` logic)."""
    d1 = g1 + g2 - 3 * (f1 - f2) / (t1 - t2)
    d2_sq = d1 * d1 - g1 * g2
    d2 = d2_sq.clamp_min(0).sqrt()
    forward = t1 <= t2
    pos_a = t2 - (t2 - t1) * ((g2 + d2 - d1) / (g2 - g1 + 2 * d2))
    pos_b = t1 - (t1 - t2) * ((g1 + d2 - d1) / (g1 - g2 + 2 * d2))
    pos = torch.where(forward, pos_a, pos_b)
    ok = (d2_sq >= 0) & torch.isfinite(pos)
    pos = torch.minimum(torch.maximum(pos, lo), hi)
    return torch.where(ok, pos, (lo + hi) / 2)


def _strong_wolfe(
    evaluate: _Evaluator,
    ids: Tensor,
    x: Tensor,
    d: Tensor,
    f0: Tensor,
    g0: Tensor,
    gtd0: Tensor,
    t: Tensor,
    max_evals: int,
    c1: float = 1e-4,
    c2: float = 0.9,
    tolerance_change: float = 1e-9,
    fixed_shape: bool = False,
) -> tuple[Tensor, Tensor, Tensor]:
    """Per-example strong-Wolfe line search along ``d`` (bracketing, then zoom with cubic
    interpolation; Nocedal & Wright Alg. 3.5/3.6 as in ``torch.optim.LBFGS``), vectorized:
    each round evaluates the examples still searching at their own trial step (with
    ``fixed_shape`` all examples, the others' values discarded).

    Returns ``(f, g, t)`` at the accepted steps (``t = 0`` where no acceptable step exists).
    """
    bracket, zoom, done = 0, 1, 2
    phase = torch.where(gtd0 < 0, bracket, done)  # no descent: take no step
    d_norm = d.abs().amax(1)
    t = t.clone()
    prev_t, prev_f, prev_gtd, prev_g = torch.zeros_like(t), f0.clone(), gtd0.clone(), g0.clone()
    lo_t, lo_f, lo_gtd, lo_g = torch.zeros_like(t), f0.clone(), gtd0.clone(), g0.clone()
    hi_t, hi_f, hi_gtd = torch.zeros_like(t), f0.clone(), gtd0.clone()
    out_t, out_f, out_g = torch.zeros_like(t), f0.clone(), g0.clone()
    insufficient = torch.zeros_like(t, dtype=torch.bool)
    for k in range(max_evals):
        run = phase != done
        r = run.nonzero()[:, 0]
        if len(r) == 0:
            break
        if fixed_shape:
            f_all, g_all = evaluate(x + t[:, None] * d, ids)
            f_r, g_r = f_all[r], g_all[r]
        else:
            f_r, g_r = evaluate(x[r] + t[r, None] * d[r], ids[r])
        f_t, g_t = torch.full_like(f0, float("inf")), torch.zeros_like(g0)
        f_t[r], g_t[r] = f_r, g_r
        gtd_t = (g_t * d).sum(1)
        armijo_fails = f_t > f0 + c1 * t * gtd0
        curvature_ok = gtd_t.abs() <= -c2 * gtd0

        # Bracketing phase.
        br = run & (phase == bracket)
        to_zoom = br & (armijo_fails | ((k > 0) & (f_t >= prev_f)))
        accept = br & ~to_zoom & curvature_ok
        flip = br & ~to_zoom & ~accept & (gtd_t >= 0)
        expand = br & ~(to_zoom | accept | flip)
        # Zoom phase.
        zm = run & (phase == zoom)
        new_hi = zm & (armijo_fails | (f_t >= lo_f))
        z_accept = zm & ~new_hi & curvature_ok
        swap = zm & ~new_hi & ~z_accept & (gtd_t * (hi_t - lo_t) >= 0)
        new_lo = zm & ~new_hi & ~z_accept

        def put(mask: Tensor, dst: Tensor, src: Tensor) -> Tensor:
            m = mask[:, None] if dst.dim() == 2 else mask
            return torch.where(m, src, dst)

        # Bracket found: [prev, t] (to_zoom) or [t, prev] (flip), as (lo, hi).
        lo_t = put(to_zoom, lo_t, prev_t)
        lo_f, lo_gtd, lo_g = put(to_zoom, lo_f, prev_f), put(to_zoom, lo_gtd, prev_gtd), put(
            to_zoom, lo_g, prev_g)
        hi_t, hi_f, hi_gtd = put(to_zoom, hi_t, t), put(to_zoom, hi_f, f_t), put(
            to_zoom, hi_gtd, gtd_t)
        hi_t, hi_f, hi_gtd = put(flip, hi_t, prev_t), put(flip, hi_f, prev_f), put(
            flip, hi_gtd, prev_gtd)
        # Zoom updates: the high end moves to t, or to the old low end before it moves.
        hi_t, hi_f, hi_gtd = put(new_hi, hi_t, t), put(new_hi, hi_f, f_t), put(
            new_hi, hi_gtd, gtd_t)
        hi_t, hi_f, hi_gtd = put(swap, hi_t, lo_t), put(swap, hi_f, lo_f), put(
            swap, hi_gtd, lo_gtd)
        moved_lo = flip | new_lo
        lo_t, lo_f, lo_gtd, lo_g = put(moved_lo, lo_t, t), put(moved_lo, lo_f, f_t), put(
            moved_lo, lo_gtd, gtd_t), put(moved_lo, lo_g, g_t)
        accepted = accept | z_accept
        out_t, out_f, out_g = put(accepted, out_t, t), put(accepted, out_f, f_t), put(
            accepted, out_g, g_t)
        phase = torch.where(accepted, done, phase)
        phase = torch.where(to_zoom | flip, zoom, phase)

        # Next trial of the examples still bracketing: extrapolate beyond t.
        grow = _cubic_minimum(prev_t, prev_f, prev_gtd, t, f_t, gtd_t,
                              t + 0.01 * (t - prev_t), 10 * t)
        prev_t, prev_f = put(expand, prev_t, t), put(expand, prev_f, f_t)
        prev_gtd, prev_g = put(expand, prev_gtd, gtd_t), put(expand, prev_g, g_t)
        t = put(expand, t, grow)

        # Next trial of the examples zooming: interpolate inside the bracket, safeguarded.
        zooming = phase == zoom
        tiny = (hi_t - lo_t).abs() * d_norm < tolerance_change
        give_up = zooming & tiny
        out_t, out_f, out_g = put(give_up, out_t, lo_t), put(give_up, out_f, lo_f), put(
            give_up, out_g, lo_g)
        phase = torch.where(give_up, done, phase)
        zooming = phase == zoom
        b_min, b_max = torch.minimum(lo_t, hi_t), torch.maximum(lo_t, hi_t)
        trial = _cubic_minimum(lo_t, lo_f, lo_gtd, hi_t, hi_f, hi_gtd, b_min, b_max)
        eps = 0.1 * (b_max - b_min)
        near_edge = torch.minimum(b_max - trial, trial - b_min) < eps
        at_edge = (trial >= b_max) | (trial <= b_min)
        push = near_edge & (insufficient | at_edge)
        pushed = torch.where((trial - b_max).abs() < (trial - b_min).abs(), b_max - eps,
                             b_min + eps)
        trial = torch.where(push, pushed, trial)
        insufficient = torch.where(zooming, near_edge & ~push, insufficient)
        t = put(zooming, t, trial)

    # Out of evaluations: a zooming example keeps its low end (it satisfies the sufficient
    # decrease condition, or is t = 0); a bracketing one its last trial that did.
    left = phase != done
    keep_lo = left & (phase == zoom)
    out_t, out_f, out_g = put(keep_lo, out_t, lo_t), put(keep_lo, out_f, lo_f), put(
        keep_lo, out_g, lo_g)
    keep_prev = left & (phase == bracket) & (prev_f < f0)
    out_t, out_f, out_g = put(keep_prev, out_t, prev_t), put(keep_prev, out_f, prev_f), put(
        keep_prev, out_g, prev_g)
    return out_f, out_g, out_t


# ---------------------------------------------------------------------------------------------
# Adam


def _adam(evaluate: _Evaluator, x: Tensor, config: OptimizerConfig, callback: Callback
          ) -> MinimizeResult:
    n = x.shape[0]
    b1, b2 = config.betas
    m, v = torch.zeros_like(x), torch.zeros_like(x)
    # NaN: no previous value, so the relative-change test fails on the first iteration.
    f_prev = torch.full((n,), float("nan"), dtype=x.dtype, device=x.device)
    iterations = torch.zeros(n, dtype=torch.long, device=x.device)
    converged = torch.zeros(n, dtype=torch.bool, device=x.device)
    active = torch.ones(n, dtype=torch.bool, device=x.device)
    for step in range(1, config.max_iters + 1):
        ids = active.nonzero()[:, 0]
        if len(ids) == 0:
            break
        f, g = evaluate(x[ids], ids)
        stop = _small_change(f_prev[ids], f, config.tol) | (g.abs().amax(1) <= config.grad_tol)
        converged[ids] = stop
        active[ids] = ~stop
        f_prev[ids] = f
        go = ids[~stop]
        g = g[~stop]
        if len(go) == 0:
            break
        iterations[go] += 1
        k = iterations[go].to(x.dtype)[:, None]
        m[go] = b1 * m[go] + (1 - b1) * g
        v[go] = b2 * v[go] + (1 - b2) * g * g
        m_hat = m[go] / (1 - b1**k)
        v_hat = v[go] / (1 - b2**k)
        x[go] = x[go] - config.lr * m_hat / (v_hat.sqrt() + 1e-8)
        callback(step, x)
    every = torch.arange(n, device=x.device)
    f, _ = evaluate(x, every)
    return MinimizeResult(x, f, iterations, converged, evaluate.calls)


# ---------------------------------------------------------------------------------------------
# Levenberg–Marquardt


def jacobian(outputs: Tensor, inputs: Tensor) -> Tensor:
    """Per-row Jacobians ``[B, R, D]`` of ``outputs [B, R]`` w.r.t. ``inputs [B, D]`` (row i
    of the outputs depending on row i of the inputs only): one reverse pass vectorized over
    the R output components (``is_grads_batched``), the cotangent of component j being e_j
    in every row."""
    b, r = outputs.shape
    if r == 0:
        return inputs.new_zeros(b, 0, inputs.shape[1])
    (jac,) = component_gradients(outputs, (inputs,))
    return jac.transpose(0, 1)


def component_gradients(outputs: Tensor, inputs: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
    """The gradients ``[R, *input.shape]`` of each output component j (``outputs [B, R]``,
    the cotangent e_j in every row) w.r.t. each of ``inputs``, in one reverse pass vectorized
    over the R components (``is_grads_batched``); zeros for an input ``outputs`` does not
    depend on."""
    b, r = outputs.shape
    basis = torch.eye(r, dtype=outputs.dtype, device=outputs.device)[:, None].expand(r, b, r)
    return torch.autograd.grad(outputs, inputs, basis, is_grads_batched=True,
                               allow_unused=True, materialize_grads=True)


def _levenberg_marquardt(residuals: Residuals, gradient: _Evaluator, x: Tensor,
                         config: OptimizerConfig, callback: Callback, max_iters: int,
                         last_jacobian: bool = True) -> _LMResult:
    """At most ``max_iters`` Levenberg–Marquardt iterations from ``x`` (module docstring;
    ``gradient`` evaluates the objective's gradient between Jacobians); the returned values
    are ``Σ r²`` (in ``x``'s dtype), the evaluations those of ``residuals``. Without
    ``last_jacobian`` the last iteration takes no Jacobian or gradient at its new points
    (L-BFGS follows and evaluates its own; the returned ``converged`` then judges those
    points by the gradient before)."""
    n, dim = x.shape
    calls = 0

    def evaluate(x_b: Tensor, ids: Tensor, with_jacobian: bool
                 ) -> tuple[Tensor, Tensor, Tensor | None]:
        """f = Σ r² (float64), r and J (float64) of the examples ``ids`` at ``x_b``."""
        nonlocal calls
        calls += 1
        with torch.set_grad_enabled(with_jacobian):
            r, jac = residuals(x_b.detach(), ids, with_jacobian)
        if r.dim() != 2 or r.shape[0] != len(ids) or (
                with_jacobian and (jac is None or jac.shape != (*r.shape, dim))):
            got = [list(r.shape), None if jac is None else list(jac.shape)]
            raise ValueError(f"residuals: expected r [{len(ids)}, R] and J [{len(ids)}, R, "
                             f"{dim}], got {got}")
        r = r.detach().double()
        f = r.pow(2).sum(1)
        bad = ~torch.isfinite(r).all(1)
        if jac is not None:
            jac = jac.detach().double()
            bad |= ~torch.isfinite(jac).flatten(1).all(1)
        return f.masked_fill(bad, float("inf")), r, jac

    every = torch.arange(n, device=x.device)
    f, r, jac = evaluate(x, every, True)
    assert jac is not None
    a = jac.transpose(1, 2) @ jac  # [B, D, D]: ½ the Gauss–Newton Hessian
    g = (jac.transpose(1, 2) @ r[..., None])[..., 0]  # [B, D]: ½ the gradient
    lam = torch.full((n,), float(config.damping), dtype=torch.float64, device=x.device)
    nu = torch.full_like(lam, 2.0)
    iterations = torch.zeros(n, dtype=torch.long, device=x.device)
    stale = torch.zeros_like(iterations)  # steps since the last Jacobian
    converged = (2 * g).abs().amax(1) <= config.grad_tol
    active = ~converged & torch.isfinite(f)
    for k in range(1, max_iters + 1):
        ids = active.nonzero()[:, 0]
        if len(ids) == 0:
            break
        a_k, g_k, f_k, x_k = a[ids], g[ids], f[ids], x[ids]
        scale = _damping_scale(a_k)
        lam_k, nu_k = lam[ids], nu[ids]
        x_new, f_new, searching, flat = _lm_trials(evaluate, ids, x_k, f_k, a_k, g_k, scale,
                                                   lam_k, nu_k, config)
        lam[ids], nu[ids] = lam_k, nu_k
        moved = ~searching & ~flat
        stuck = searching  # no decrease within max_trials trials
        m = moved.nonzero()[:, 0]
        stale[ids[m]] += 1
        if k < max_iters or last_jacobian:  # else L-BFGS evaluates its own gradient there
            fresh = m[stale[ids[m]] >= config.jacobian_every]
            if len(fresh):
                f_m, r_m, jac_m = evaluate(x_new[fresh], ids[fresh], True)
                assert jac_m is not None
                f_new[fresh] = f_m
                a[ids[fresh]] = jac_m.transpose(1, 2) @ jac_m
                g[ids[fresh]] = (jac_m.transpose(1, 2) @ r_m[..., None])[..., 0]
                stale[ids[fresh]] = 0
            old = m[stale[ids[m]] > 0]
            if len(old):  # keep JᵀJ, take the exact gradient here
                g[ids[old]] = 0.5 * gradient(x_new[old], ids[old])[1].double()
        x[ids] = x_new
        f[ids] = f_new
        iterations[ids] += moved.long()
        stop = flat | stuck | (moved & (_small_change(f_k, f_new, config.tol)
                                        | ((2 * g[ids]).abs().amax(1) <= config.grad_tol)))
        converged[ids] |= stop
        active[ids] &= ~stop
        if len(m):  # an iteration in which no example moved is none
            callback(k, x)
    hessian = 2 * (a + torch.diag_embed(lam[:, None] * _damping_scale(a)))
    return _LMResult(x, f.to(x.dtype), iterations, converged, calls, hessian)


@dataclass
class _LMResult(MinimizeResult):
    """With ``hessian [B, D, D]`` (float64): each example's last damped Gauss–Newton
    matrix 2(JᵀJ + λ diag(JᵀJ)), the Hessian of the model its next step would minimize."""

    hessian: Tensor


def _damping_scale(a: Tensor) -> Tensor:
    """The damping's diagonal ``[b, D]`` for JᵀJ ``a [b, D, D]``: diag(JᵀJ), floored at
    1e-9 of its largest entry."""
    diag = a.diagonal(dim1=1, dim2=2)
    return torch.maximum(diag, 1e-9 * diag.amax(1, keepdim=True).clamp_min(1e-300))


def _solve(factor: Tensor, q: Tensor) -> Tensor:
    """H⁻¹ q ``[b, D]`` (in q's dtype) given the Cholesky factors ``[b, D, D]`` of H."""
    return torch.cholesky_solve(q.to(factor.dtype)[..., None], factor)[..., 0].to(q.dtype)


def _cholesky(hessian: Tensor) -> Tensor:
    """Cholesky factors ``[B, D, D]`` of symmetric positive definite ``hessian``; a matrix
    that rounding left indefinite is replaced by its diagonal (positive: JᵀJ's diagonal
    plus damping), a non-finite diagonal entry by 1 (an example whose Jacobian was not
    finite, which L-BFGS then stops)."""
    factor, info = torch.linalg.cholesky_ex(hessian)
    bad = info != 0
    if bool(bad.any()):
        diag = hessian[bad].diagonal(dim1=1, dim2=2)
        diag = torch.where(torch.isfinite(diag) & (diag > 0), diag, torch.ones_like(diag))
        factor[bad] = torch.diag_embed(diag.sqrt())
    return factor


TrialEvaluate = Callable[[Tensor, Tensor, bool], tuple[Tensor, Tensor, Tensor | None]]


def _lm_trials(evaluate: TrialEvaluate, ids: Tensor, x: Tensor, f: Tensor, a: Tensor,
               g: Tensor, scale: Tensor, lam: Tensor, nu: Tensor, config: OptimizerConfig
               ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """One LM iteration's trial steps for the examples ``ids`` at ``x [b, D]`` (values f,
    JᵀJ ``a``, ½ gradient g, damping scale): damping ``lam`` and ``nu`` are updated in
    place. Returns the new points and values, ``searching`` (no decrease found) and ``flat``
    (no decrease promised) ``[b]``."""
    searching = torch.ones_like(ids, dtype=torch.bool)
    flat = torch.zeros_like(searching)
    x_new, f_new = x.clone(), f.clone()
    for trial in range(config.max_trials):
        s = searching.nonzero()[:, 0]
        if len(s) == 0:
            break
        step = torch.linalg.solve(
            a[s] + torch.diag_embed(lam[s, None] * scale[s]), -g[s, :, None])[..., 0]
        predicted = -(2 * (g[s] * step).sum(1)
                      + (step[:, None] @ a[s] @ step[..., None])[:, 0, 0])
        if trial == 0:
            # The model promises no decrease worth a step (a damped step only promises
            # less, so this is tested at the first trial only).
            no_gain = predicted <= config.tol * f[s].abs().clamp_min(1.0)
            flat[s] = no_gain
            searching[s] = ~no_gain
            s, step, predicted = s[~no_gain], step[~no_gain], predicted[~no_gain]
            if len(s) == 0:
                break
        f_t, _, _ = evaluate(x[s] + step.to(x.dtype), ids[s], False)
        ok = f_t < f[s]
        rho = (f[s] - f_t) / predicted.clamp_min(1e-300)
        up = lam[s] * nu[s]
        down = lam[s] * (1 - (2 * rho - 1) ** 3).clamp_min(1 / 3)
        lam[s] = torch.where(ok, down, up)
        nu[s] = torch.where(ok, torch.full_like(up, 2.0), 2 * nu[s])
        taken = s[ok]
        x_new[taken] = x[taken] + step[ok].to(x.dtype)
        f_new[taken] = f_t[ok]
        searching[taken] = False
    return x_new, f_new, searching, flat
