"""Keypoint fitting with the learned image-conditioned prior (the paper's test-time MAP).

Given the context c of each example, observed 2D keypoints with confidences and the camera
model of the head (its adapter), minimize over the latent z (and the head's extras: a root
translation, or shape β and camera)

    λ_J · E_J(Π(f(z; c), extras)) + ½‖z‖² + λ_β · E_β(extras)

starting at z = 0, i.e. at the mode f(0; c). For the Glow flows −log p(f(z; c) | c) =
½‖z‖² + const(c), so this is the MAP estimate of θ under the learned prior. E_J is the
confidence-weighted Geman–McClure reprojection error (:mod:`condflow.fitting.robust`).
Every example's objective is independent and optimized on its own
(:mod:`condflow.fitting.optimize`): a batch gives the per-example answers.

Faster fits (:class:`FitConfig`):

* ``flow_dtype="bfloat16"``: the coupling nets' weights are cast once per fit and the flow
  runs under autocast while optimizing (the prior ½‖z‖² stays exact in the variables'
  precision); with ``polish`` (the default) the fit then continues in full precision from
  where the reduced-precision one stopped, under the same stopping rule (a nearby
  full-precision minimum, not necessarily the reference fit's). The returned fit is always
  evaluated in full precision.
* ``cache_context``: the context part ``W_c c + b`` of the coupling nets' input layers is
  computed once per fit (:func:`condflow.bijectors.nets.cached_context_parts`), not per
  evaluation; evaluations of sub-batches take its rows. The same fit up to floating-point
  rounding (rows of a product over the whole batch instead of a product over the rows),
  which over hundreds of float32 iterations of a non-convex fit can lead to another
  nearby minimum.
* ``frozen_flow``: the flow is compiled once per fit for its contexts and frozen parameters
  (:class:`~condflow.bijectors.frozen.FrozenGlow`: context parts, folded batch norms and
  assembled LU weights computed once, the backward written out instead of recorded op by
  op). The same map up to floating-point rounding (the folded batch norm rounds
  differently), so the same fit up to rounding, as above; also for the
  Levenberg–Marquardt Jacobian. With ``flow_dtype`` / ``jacobian_dtype`` the compiled
  flow's coupling-net products run in that precision (``"bfloat16"``, or ``"int8"``
  weight-only quantization for ``flow_dtype`` on the CPU, which pays where few rows are
  evaluated: :mod:`condflow.bijectors.frozen`).
* ``optimizer.fixed_shape``: every evaluation runs the whole batch
  (:mod:`condflow.fitting.optimize`), so the flow's matrix products stay wide (the same fit
  up to rounding, as above).
* ``optimizer.method="lm+lbfgs"``: a few Levenberg–Marquardt iterations as a fast start,
  then the reference L-BFGS from there (``"lm"``: Levenberg–Marquardt to the end). The
  objective is written as the sum of squares ‖r‖² of the residuals

      r = [√λ_J r_J(x̂);  √(w_p/2) z;  √λ_β β]

  with r_J the keypoint residuals whose squared sum is E_J exactly
  (:func:`~condflow.fitting.robust.keypoint_residuals`: √w_k σ/√(σ² + s_k) d_k for the
  Geman–McClure term, d_k the 2D error of keypoint k, s_k = ‖d_k‖²), w_p the prior weight
  and β the extras' residuals (:meth:`~condflow.heads.base.HeadAdapter.extra_residuals`).
  The Jacobian of the 2K keypoint rows is one backward pass through the flow with 2K
  batched cotangents (:func:`~condflow.fitting.optimize.jacobian`); the prior and extras
  rows, which do not involve the flow, get their own (cheap) one. With
  ``jacobian_dtype="bfloat16"`` the keypoint rows' Jacobian runs the flow in bfloat16
  (the residuals, values and the L-BFGS polish stay in full precision). Since the polish
  minimizes the same objective under the same stopping rule, the fit ends at a minimum of
  the reference's objective, not necessarily the same one.

All are off by default (the reference path); ``benchmarks/README.md`` gives what each one
gains or costs on a CPU.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from condflow._checks import check_tensor
from condflow.bijectors.frozen import FrozenGlow, frozen_generate
from condflow.bijectors.nets import ContextParts, ContextResidualNet, cached_context_parts
from condflow.fitting.adapters import HeadAdapter, make_adapter
from condflow.fitting.optimize import (
    LM_METHODS,
    OptimizerConfig,
    Residuals,
    VariableLayout,
    component_gradients,
    jacobian,
    minimize,
)
from condflow.fitting.robust import check_keypoints, keypoint_energy, keypoint_residuals

__all__ = ["FitConfig", "FitProgress", "KeypointFit", "fit_keypoints", "frozen"]

#: Reduced precisions the flow can run in while fitting (``FitConfig.flow_dtype``).
FLOW_DTYPES = {"bfloat16": torch.bfloat16}
#: Those only the compiled flow has (``frozen_flow``; not for the Jacobian).
FROZEN_ONLY_DTYPES = ("int8",)

PriorResiduals = Callable[[dict[str, Tensor]], Tensor]
"""``variables -> [b, P]`` residuals whose squared sum is the prior energy."""


@dataclass
class FitConfig:
    """Weights of the fitting objective and how it is optimized.

    ``keypoint_weight`` is λ_J and ``sigma`` the Geman–McClure scale, both in the units of the
    keypoints (normalized coordinates); a Gaussian keypoint noise of standard deviation s per
    coordinate corresponds to λ_J = 1 / (2 s²). The prior term is ½‖z‖², −log p(θ | c) up to
    a constant for flows whose log-dets do not depend on z (the Glow flows).

    ``flow_dtype``, ``polish``, ``cache_context`` and ``frozen_flow`` make the learned-prior
    fit faster (see the module docstring); the generic-prior fits, which run no flow, refuse
    ``flow_dtype``, ``cache_context`` and ``frozen_flow``. With ``flow_dtype`` each phase
    (reduced precision, then the polish) may take up to ``optimizer.max_iters`` iterations;
    ``"int8"`` needs ``frozen_flow``. ``jacobian_dtype`` is the
    precision of the Levenberg–Marquardt Jacobian through the flow (``optimizer.method``
    ``"lm"`` or ``"lm+lbfgs"``; a reduced-precision ``flow_dtype`` is for the other methods).
    """

    keypoint_weight: float = 1000.0  # λ_J
    sigma: float | None = 0.05  # Geman–McClure scale; None: squared error
    shape_weight: float = 1.0  # λ_β (heads with a shape)
    prior_weight: float = 1.0  # weight of the prior term (1: the MAP estimate)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    flow_dtype: str | None = None  # "bfloat16" (or "int8", frozen_flow): while optimizing
    polish: bool = True  # after a reduced-precision fit, continue in full precision
    cache_context: bool = False  # W_c c + b of the coupling nets once per fit
    frozen_flow: bool = False  # the flow compiled once per fit, its backward written out
    jacobian_dtype: str | None = None  # LM: "bfloat16" Jacobian through the flow; None: off

    def __post_init__(self) -> None:
        for name in ("flow_dtype", "jacobian_dtype"):
            value = getattr(self, name)
            allowed = sorted(FLOW_DTYPES) + list(FROZEN_ONLY_DTYPES if name == "flow_dtype"
                                                 else ())
            if value is not None and value not in allowed:
                raise ValueError(f"{name}: expected None or one of {allowed}, got {value!r}")
        if self.flow_dtype in FROZEN_ONLY_DTYPES and not self.frozen_flow:
            raise ValueError(f"flow_dtype: {self.flow_dtype!r} needs frozen_flow=True")
        lm = self.optimizer.method in LM_METHODS
        if lm and self.flow_dtype is not None:
            raise ValueError(f"flow_dtype: not with optimizer.method {self.optimizer.method!r}"
                             f" (its reduced precision is jacobian_dtype); got "
                             f"{self.flow_dtype!r}")
        if not lm and self.jacobian_dtype is not None:
            raise ValueError(f"jacobian_dtype: only for optimizer.method in {LM_METHODS}, got "
                             f"{self.jacobian_dtype!r} with {self.optimizer.method!r}")
        for name in ("keypoint_weight", "shape_weight", "prior_weight"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and value >= 0):
                raise ValueError(f"{name}: expected a number >= 0, got {value!r}")
        if self.sigma is not None and not self.sigma > 0:
            raise ValueError(f"sigma: expected a positive number or None, got {self.sigma!r}")


@dataclass
class KeypointFit:
    """The result of a fit, per example.

    Attributes:
        theta: ``[B, d]`` fitted head output (skeleton features in mm, or the 6D SMPL pose).
        z: ``[B, d]`` fitted latent (``None`` for fits outside the latent space).
        extras: fitted extras ``{name: [B, ...]}`` (``transl``; or ``betas`` and ``cam``).
        outputs: the adapter's outputs (``joints_mm [B, 17, 3]`` and head-specific fields).
        keypoint_energy: ``[B]`` final E_J (unweighted).
        neg_log_prob: ``[B]`` −log p(θ | c) under the head's flow.
        prior_energy: ``[B]`` final prior term (unweighted).
        objective: ``[B]`` final objective value.
        iterations: ``[B]`` optimizer iterations; converged: ``[B]`` stopped by tolerance.
    """

    theta: Tensor
    z: Tensor | None
    extras: dict[str, Tensor]
    outputs: dict[str, Tensor]
    keypoint_energy: Tensor
    neg_log_prob: Tensor
    prior_energy: Tensor
    objective: Tensor
    iterations: Tensor
    converged: Tensor

    def diagnostics(self) -> dict[str, list[float] | list[int] | list[bool]]:
        """Per-example numbers as plain lists (for JSON)."""
        return {
            "keypoint_energy": self.keypoint_energy.tolist(),
            "neg_log_prob": self.neg_log_prob.tolist(),
            "prior_energy": self.prior_energy.tolist(),
            "objective": self.objective.tolist(),
            "iterations": self.iterations.tolist(),
            "converged": self.converged.tolist(),
        }


@dataclass
class FitProgress:
    """What a fit's ``callback`` receives after every optimizer iteration.

    Attributes:
        iteration: the batched iteration k (1, 2, ...).
        variables: the current optimized variables ``{name: [B, ...]}`` (``z``, or the
            generic fit's pose variables); extras: the current extras. Both are views of
            the optimizer's state, valid during the call: clone what you keep.
    """

    iteration: int
    variables: dict[str, Tensor]
    extras: dict[str, Tensor]
    _energy: Callable[[], Tensor] = field(repr=False)

    def keypoint_energy(self) -> Tensor:
        """``[B]`` E_J at the current iterates (computed on demand: one forward pass)."""
        return self._energy()


FitCallback = Callable[[FitProgress], None]


@contextmanager
def frozen(module: nn.Module) -> Iterator[nn.Module]:
    """Eval mode and ``requires_grad = False`` for every parameter; restored on exit."""
    was_training = module.training
    flags = [(p, p.requires_grad) for p in module.parameters()]
    module.eval()
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        yield module
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)
        module.train(was_training)


ThetaFn = Callable[[dict[str, Tensor], Tensor], tuple[Tensor, Tensor]]
"""``(variables, context) -> (theta [b, d], prior energy [b])``."""


def check_fit_inputs(adapter: HeadAdapter, context: object, keypoints: object
                     ) -> tuple[Tensor, Tensor]:
    """Validate ``context [B, C]`` and ``keypoints [B, K, 3]`` for ``adapter``."""
    context = check_tensor("context", context, ("B", adapter.flow.context_features))
    keypoints = check_keypoints("keypoints", keypoints, adapter.num_keypoints)
    if keypoints.shape[0] != context.shape[0]:
        raise ValueError(f"keypoints: expected {context.shape[0]} examples (as context), got "
                         f"{keypoints.shape[0]}")
    if keypoints.dtype != context.dtype:
        raise ValueError(f"keypoints: dtype {keypoints.dtype} differs from context's "
                         f"{context.dtype}")
    return context.detach(), keypoints.detach()


def run_fit(
    adapter: HeadAdapter,
    context: Tensor,
    keypoints: Tensor,
    variables: dict[str, Tensor],
    extras: dict[str, Tensor],
    theta_fn: ThetaFn,
    config: FitConfig,
    extra_energy: Callable[[dict[str, Tensor]], Tensor] | None = None,
    callback: FitCallback | None = None,
    fast_theta_fn: ThetaFn | None = None,
    context_parts: ContextParts | None = None,
    prior_residuals: PriorResiduals | None = None,
    jacobian_theta_fn: ThetaFn | None = None,
) -> tuple[dict[str, Tensor], dict[str, Tensor], Tensor, Tensor, Tensor]:
    """Minimize λ_J E_J + prior + λ_β E_β (+ ``extra_energy(variables)``) over the
    ``variables`` that ``theta_fn`` maps to θ and the adapter's ``extras`` (all ``[B, ...]``),
    calling ``callback`` with a :class:`FitProgress` after every iteration.
    ``fast_theta_fn`` (e.g. a reduced-precision ``theta_fn``) replaces ``theta_fn`` in the
    objective; the callback's keypoint energies always use ``theta_fn``. With
    ``context_parts`` (of :func:`~condflow.bijectors.nets.cached_context_parts`) the
    objective takes its contexts' rows by its ``select``. The Levenberg–Marquardt methods
    need the prior as ``prior_residuals`` and no ``extra_energy`` (see the module
    docstring); ``jacobian_theta_fn`` (e.g. a reduced-precision ``theta_fn``) replaces
    ``theta_fn`` in their Jacobian.

    Returns the fitted variables and extras, the objective ``[B]``, iterations ``[B]`` and
    convergence flags ``[B]``.
    """
    method = config.optimizer.method
    if method in LM_METHODS:
        _check_least_squares(adapter, method, prior_residuals is not None and
                             extra_energy is None)
    clash = set(variables) & set(extras)
    if clash:
        raise ValueError(f"variables, extras: names used twice: {sorted(clash)}")
    layout = VariableLayout.of({**variables, **extras})

    def split(x: Tensor) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        v = layout.unpack(x)
        return {k: v[k] for k in variables}, {k: v[k] for k in extras}

    def rows(index: Tensor) -> Tensor:
        return context[index] if context_parts is None else context_parts.select(context, index)

    def objective(x: Tensor, index: Tensor) -> Tensor:
        v, e = split(x)
        ctx = rows(index)
        theta, prior = (fast_theta_fn or theta_fn)(v, ctx)
        e_j = keypoint_energy(adapter.project(theta, e), keypoints[index], config.sigma)
        total = config.keypoint_weight * e_j + config.prior_weight * prior
        total = total + config.shape_weight * adapter.extra_energy(e)
        if extra_energy is not None:
            total = total + extra_energy(v)
        return total

    def progress(k: int, x: Tensor) -> None:
        assert callback is not None  # passed to minimize only with a callback
        v, e = split(x)

        @torch.no_grad()
        def energy() -> Tensor:
            theta, _ = theta_fn(v, context)
            return keypoint_energy(adapter.project(theta, e), keypoints, config.sigma)

        callback(FitProgress(k, v, e, energy))

    residuals = None
    if prior_residuals is not None and method in LM_METHODS:
        residuals = least_squares_residuals(adapter, keypoints, rows, split, config,
                                            theta_fn, prior_residuals, jacobian_theta_fn)
    result = minimize(objective, layout.pack({**variables, **extras}), config.optimizer,
                      progress if callback is not None else None, residuals)
    v, e = split(result.x)
    return v, e, result.value, result.iterations, result.converged


def _check_least_squares(adapter: HeadAdapter, method: str, sum_of_squares: bool) -> None:
    if not sum_of_squares:
        raise ValueError(f"config.optimizer.method: {method!r} needs the objective as a sum "
                         f"of squares; it is available for the learned-prior fit "
                         f"(fit_keypoints) only")
    kind = type(adapter)
    if (kind.extra_energy is not HeadAdapter.extra_energy
            and kind.extra_residuals is HeadAdapter.extra_residuals):
        raise ValueError(f"config.optimizer.method: {method!r} needs the extras' residuals; "
                         f"{kind.__name__} defines extra_energy but not extra_residuals")


def least_squares_residuals(
    adapter: HeadAdapter,
    keypoints: Tensor,
    rows: Callable[[Tensor], Tensor],
    split: Callable[[Tensor], tuple[dict[str, Tensor], dict[str, Tensor]]],
    config: FitConfig,
    theta_fn: ThetaFn,
    prior_residuals: PriorResiduals,
    jacobian_theta_fn: ThetaFn | None = None,
) -> Residuals:
    """The fit's objective as residuals ``[√λ_J r_J; √w_p r_prior; √λ_β r_extras]`` with
    their Jacobians (:data:`~condflow.fitting.optimize.Residuals`; the module docstring);
    ``rows(index)`` gives the examples' contexts, ``split(x)`` the variables and extras."""
    root_j = math.sqrt(config.keypoint_weight)
    root_p, root_e = math.sqrt(config.prior_weight), math.sqrt(config.shape_weight)

    def projected_rows(theta: Tensor, e: dict[str, Tensor], kp: Tensor) -> Tensor:
        return root_j * keypoint_residuals(adapter.project(theta, e), kp, config.sigma)

    def keypoint_rows(x: Tensor, ctx: Tensor, kp: Tensor, fn: ThetaFn) -> Tensor:
        v, e = split(x)
        theta, _ = fn(v, ctx)
        return projected_rows(theta, e, kp)

    def other_rows(x: Tensor) -> Tensor:
        v, e = split(x)
        return torch.cat([root_p * prior_residuals(v), root_e * adapter.extra_residuals(e)], 1)

    def residuals(x: Tensor, index: Tensor, with_jacobian: bool
                  ) -> tuple[Tensor, Tensor | None]:
        ctx, kp = rows(index), keypoints[index]
        if not with_jacobian:
            return torch.cat([keypoint_rows(x, ctx, kp, theta_fn), other_rows(x)], 1), None
        # Two graphs: the 2K keypoint rows' backward runs through the flow, the prior and
        # extras rows' does not.
        x_j, x_o = x.detach().requires_grad_(True), x.detach().requires_grad_(True)
        r_o = other_rows(x_o)
        if isinstance(jacobian_theta_fn, FrozenThetaFn):
            r_j, jac_j = jacobian_theta_fn.jacobian(
                x, ctx, lambda theta, e: projected_rows(theta, e, kp), split)
            if jacobian_theta_fn is not theta_fn:  # a reduced-precision Jacobian
                with torch.no_grad():
                    r_j = keypoint_rows(x, ctx, kp, theta_fn)
        elif jacobian_theta_fn is None:
            r_j = keypoint_rows(x_j, ctx, kp, theta_fn)
            jac_j = jacobian(r_j, x_j)
        else:
            jac_j = jacobian(keypoint_rows(x_j, ctx, kp, jacobian_theta_fn), x_j).to(x.dtype)
            with torch.no_grad():
                r_j = keypoint_rows(x, ctx, kp, theta_fn)
        return (torch.cat([r_j, r_o], 1).detach(),
                torch.cat([jac_j, jacobian(r_o, x_o)], 1))

    return residuals


def latent_theta_fn(adapter: HeadAdapter) -> ThetaFn:
    """θ = f(z; c) with the prior energy ½‖z‖²."""

    def theta_fn(v: dict[str, Tensor], context: Tensor) -> tuple[Tensor, Tensor]:
        theta, _ = adapter.flow.generate(v["z"], context)
        return theta, 0.5 * v["z"].pow(2).sum(-1)

    return theta_fn


def latent_prior_residuals(v: dict[str, Tensor]) -> Tensor:
    """√½ z ``[b, d]``: the residuals of the prior energy ½‖z‖²."""
    return math.sqrt(0.5) * v["z"]


class FrozenThetaFn:
    """θ = f(z; c) by the flow compiled for ``context [B, C]``
    (:class:`~condflow.bijectors.frozen.FrozenGlow`, its products in ``precision``), with
    the prior energy ½‖z‖² (a :data:`ThetaFn`); called with ``context`` itself or rows of
    it taken by ``parts.select``. :meth:`jacobian` pushes many cotangents through the
    flow's written-out backward in one pass (autograd's batched backward would run a
    custom backward once per cotangent)."""

    def __init__(self, adapter: HeadAdapter, context: Tensor, parts: ContextParts,
                 precision: str | None = None, name: str = "flow_dtype") -> None:
        if precision is not None:
            check_float32_flow(adapter, name)
        self.program = FrozenGlow(adapter.flow.bijector, adapter.flow.embed(context),
                                  precision)
        self.context, self.parts = context, parts

    def _index(self, ctx: Tensor) -> Tensor | None:
        parent, index = self.parts.rows_of(ctx)
        if parent is not self.context:
            raise ValueError("context: expected the fit's contexts or rows of them taken by "
                             "ContextParts.select")
        return index

    def __call__(self, v: dict[str, Tensor], ctx: Tensor) -> tuple[Tensor, Tensor]:
        z = v["z"]
        return frozen_generate(self.program, z, self._index(ctx)), 0.5 * z.pow(2).sum(-1)

    def jacobian(self, x: Tensor, ctx: Tensor, rows: Callable[[Tensor, dict[str, Tensor]],
                 Tensor], split: Callable[[Tensor], tuple[dict[str, Tensor],
                                                          dict[str, Tensor]]]
                 ) -> tuple[Tensor, Tensor]:
        """``(r [b, R], ∂r/∂x [b, R, D])`` of ``r = rows(θ, extras)`` with θ = f(z; c) and
        ``z``, ``extras`` split from ``x [b, D]``: the Jacobian in θ and the extras by
        autograd (the body and camera), then its θ part through the flow by
        :meth:`FrozenGlow.vjp <condflow.bijectors.frozen.FrozenGlow.vjp>` with all R
        cotangents at once."""
        x = x.detach().requires_grad_(True)
        v, e = split(x)
        saved: list[object] = []
        with torch.no_grad():
            theta = self.program.forward(v["z"].detach(), self._index(ctx), saved)
        theta = theta.to(x.dtype).requires_grad_(True)
        r = rows(theta, e)
        jac_theta, jac_x = component_gradients(r, (theta, x))
        jac_z = self.program.vjp(jac_theta.to(theta.dtype), saved).to(x.dtype)
        (jac_zx,) = torch.autograd.grad(v["z"], x, jac_z, is_grads_batched=True)
        return r.detach(), (jac_x + jac_zx).transpose(0, 1)


def check_float32_flow(adapter: HeadAdapter, name: str) -> None:
    """``ValueError`` naming ``name`` unless the flow's parameters are float32."""
    params = list(adapter.flow.bijector.parameters())
    if params and params[0].dtype != torch.float32:
        raise ValueError(f"{name}: a reduced-precision fit needs a float32 flow, got "
                         f"{params[0].dtype}")


def reduced_precision_theta_fn(adapter: HeadAdapter, dtype: torch.dtype,
                               name: str = "flow_dtype") -> ThetaFn:
    """θ = f(z; c) with the coupling nets' weights cast to ``dtype`` once (now) and the
    flow under autocast to ``dtype``; θ in z's dtype, the prior ½‖z‖² exact. The layers
    outside the coupling nets keep their parameters (the LU layers also their precision)."""
    bijector = adapter.flow.bijector
    check_float32_flow(adapter, name)
    weights = {}
    for net_name, net in bijector.named_modules():
        if isinstance(net, ContextResidualNet):
            for layer_name, layer in net.named_modules(prefix=net_name):
                if isinstance(layer, nn.Linear):
                    for name, p in layer.named_parameters(prefix=layer_name, recurse=False):
                        weights[name] = p.detach().to(dtype)

    def theta_fn(v: dict[str, Tensor], context: Tensor) -> tuple[Tensor, Tensor]:
        z = v["z"]
        with torch.autocast(z.device.type, dtype=dtype):
            theta, _ = torch.func.functional_call(bijector, weights, (z, context), strict=False)
        return theta.to(z.dtype), 0.5 * z.pow(2).sum(-1)

    return theta_fn


@torch.no_grad()
def summarize_fit(
    adapter: HeadAdapter,
    context: Tensor,
    keypoints: Tensor,
    variables: dict[str, Tensor],
    extras: dict[str, Tensor],
    theta_fn: ThetaFn,
    config: FitConfig,
    objective: Tensor,
    iterations: Tensor,
    converged: Tensor,
) -> KeypointFit:
    """Evaluate a fitted solution into a :class:`KeypointFit`."""
    theta, prior = theta_fn(variables, context)
    e_j = keypoint_energy(adapter.project(theta, extras), keypoints, config.sigma)
    neg_log_prob = -adapter.flow.log_prob(theta, context)
    return KeypointFit(
        theta=theta,
        z=variables.get("z"),
        extras=extras,
        outputs=adapter.outputs(theta, extras),
        keypoint_energy=e_j,
        neg_log_prob=neg_log_prob,
        prior_energy=prior,
        objective=objective,
        iterations=iterations,
        converged=converged,
    )


def fit_keypoints(
    head: nn.Module | HeadAdapter,
    context: Tensor,
    keypoints: Tensor,
    config: FitConfig | None = None,
    z_init: Tensor | None = None,
    callback: FitCallback | None = None,
) -> KeypointFit:
    """Fit the learned prior's latent to observed 2D keypoints (see the module docstring).

    Args:
        head: a ``SkeletonHead``/``ProHMRHead`` or a :class:`HeadAdapter` (e.g. a
            ``SkeletonAdapter`` with the camera's focal length).
        context: ``[B, C]`` contexts c (e.g. ``head.context(inputs)``).
        keypoints: ``[B, K, 3]`` observed ``(x, y, confidence)`` in the head's keypoint
            units (normalized screen/crop coordinates).
        config: objective weights and optimizer.
        z_init: ``[B, d]`` starting latent; default 0 (the mode).
        callback: called with a :class:`FitProgress` after every optimizer iteration
            (progress reports, convergence traces).

    Returns:
        :class:`KeypointFit`. The head's parameters are frozen and it is in eval mode during
        the fit; both are restored afterwards.
    """
    config = config or FitConfig()
    adapter = make_adapter(head)
    context, keypoints = check_fit_inputs(adapter, context, keypoints)
    b, d = context.shape[0], adapter.dim
    if z_init is None:
        z_init = context.new_zeros(b, d)
    z_init = check_tensor("z_init", z_init, (b, d)).detach()
    with frozen(adapter.head), torch.no_grad():
        theta0, _ = adapter.flow.generate(z_init, context)
        extras = adapter.initial_extras(theta0, context, keypoints)
    theta_fn = latent_theta_fn(adapter)
    with frozen(adapter.head), ExitStack() as stack:
        parts = (stack.enter_context(cached_context_parts(adapter.flow))
                 if config.cache_context else None)
        variables = {"z": z_init.clone()}
        fit_theta_fn: ThetaFn = theta_fn
        fast: ThetaFn | None = None
        jac_fn: ThetaFn | None = None
        if config.frozen_flow:
            parts = parts or ContextParts()
            fit_theta_fn = jac_fn = FrozenThetaFn(adapter, context, parts)
            if config.flow_dtype is not None:
                fast = FrozenThetaFn(adapter, context, parts, config.flow_dtype)
            if config.jacobian_dtype is not None:
                jac_fn = FrozenThetaFn(adapter, context, parts, config.jacobian_dtype,
                                       "jacobian_dtype")
        else:
            if config.flow_dtype is not None:
                fast = reduced_precision_theta_fn(adapter, FLOW_DTYPES[config.flow_dtype])
            if config.jacobian_dtype is not None:
                jac_fn = reduced_precision_theta_fn(
                    adapter, FLOW_DTYPES[config.jacobian_dtype], "jacobian_dtype")
        variables, extras, value, iters, conv = run_fit(
            adapter, context, keypoints, variables, extras, fit_theta_fn, config,
            callback=callback, fast_theta_fn=fast, context_parts=parts,
            prior_residuals=latent_prior_residuals, jacobian_theta_fn=jac_fn,
        )
        if fast is not None and config.polish:
            done = int(iters.max()) if len(iters) else 0
            variables, extras, value, more, conv = run_fit(
                adapter, context, keypoints, variables, extras, fit_theta_fn, config,
                callback=None if callback is None else (lambda p: callback(
                    dataclasses.replace(p, iteration=done + p.iteration))),
                context_parts=parts,
            )
            iters = iters + more
    with frozen(adapter.head):
        fit = summarize_fit(adapter, context, keypoints, variables, extras, theta_fn, config,
                            value, iters, conv)
    if fast is not None and not config.polish:
        # The objective the reduced-precision optimizer saw: report the exact one.
        fit.objective = (config.keypoint_weight * fit.keypoint_energy
                         + config.prior_weight * fit.prior_energy
                         + config.shape_weight * adapter.extra_energy(extras))
    return fit
