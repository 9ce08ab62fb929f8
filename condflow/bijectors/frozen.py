"""A Glow stack's generative map x = f(z; c) for fixed contexts and frozen parameters,
compiled once into a flat program with a hand-written vector–Jacobian product.

Fitting evaluates f and its input gradient hundreds of times on the same contexts, with the
parameters fixed (:mod:`condflow.fitting.latent`). :class:`FrozenGlow` does, once per fit,
everything that depends only on c and the parameters:

* the context parts ``W_c c + b`` of the coupling nets' input layers, per context row;
* eval-mode batch norm as the affine map it is, the one after a residual block's first
  linear layer folded into that layer (``W' = diag(s) W``, ``b' = s ⊙ b + t``);
* the LU layers' assembled ``W``, the ActNorms' scales and shifts, the conditional volumes'
  ``exp(s(c))`` and ``b(c)`` per context row;

and then runs f as a list of matrix products and element-wise steps. Its backward is
written out (:class:`FrozenGlow` ``.vjp``: the transposed products and the saved ReLU masks)
instead of recorded by autograd op by op. Same map as ``flow.generate`` up to floating-point
rounding (the folded batch norm rounds differently); ``tests/bijectors/test_frozen.py``
checks the values and the gradients against autograd's.

``precision`` makes the coupling nets' matrix products cheaper (everything else, the LU
layers included, stays in the parameters' precision): ``"bfloat16"`` stores their weights in
bfloat16 (the products' inputs rounded to bfloat16, float32 accumulation); ``"int8"`` stores
them as int8 with one float scale per output feature (weight-only quantization; the inputs
in bfloat16; CPU only: ``torch._weight_int8pack_mm``, whose kernel needs both sizes to be
multiples of 16: other weights, e.g. the 72-wide input and output layers of a 144-d flow,
keep the parameters' precision), which halves the bytes read again:
where few rows are evaluated the products are bound by reading the weights. Either is a
nearby map, not the flow's: the backward is that map's own (the same stored weights), so
values and gradients agree with each other.

Supported: :class:`~condflow.bijectors.Compose` / :class:`~condflow.bijectors.GlowBlock`
stacks of :class:`~condflow.bijectors.AdditiveCoupling` (any split, ``shift_bound``; nets
with batch norm or none, in eval mode), :class:`~condflow.bijectors.LULinear`,
:class:`~condflow.bijectors.NflowsLULinear`, :class:`~condflow.bijectors.ActNorm`,
:class:`~condflow.bijectors.ConditionalAffine`, :class:`~condflow.bijectors.FixedAffine` and
:class:`~condflow.bijectors.Permutation`; anything else is refused by name.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from condflow.bijectors.actnorm import ActNorm
from condflow.bijectors.affine import FixedAffine
from condflow.bijectors.base import Bijector, Compose
from condflow.bijectors.conditional import ConditionalAffine
from condflow.bijectors.coupling import AdditiveCoupling
from condflow.bijectors.lu import LULinear, NflowsLULinear
from condflow.bijectors.nets import ContextResidualNet, ResidualBlock
from condflow.bijectors.permutation import Permutation

__all__ = ["FrozenGlow", "frozen_generate"]

Saved = list[object]

#: The reduced precisions of the coupling nets' products (``FrozenGlow(precision=...)``).
PRECISIONS = ("bfloat16", "int8")


class _Matrix:
    """A weight ``W [out, in]`` for the products ``x Wᵀ`` and ``g W``, stored in the
    program's precision (``None``: as given)."""

    def __init__(self, weight: Tensor, precision: str | None) -> None:
        if precision == "int8" and (weight.shape[0] % 16 or weight.shape[1] % 16):
            precision = None  # the kernel's sizes (module docstring)
        self.precision = precision
        self.weight = weight
        if precision == "bfloat16":
            self.weight = weight.to(torch.bfloat16)
            self.weight_t = weight.t().contiguous().to(torch.bfloat16)
        elif precision == "int8":
            scale = (weight.abs().amax(1) / 127).clamp_min(torch.finfo(weight.dtype).tiny)
            q = torch.round(weight / scale[:, None]).to(torch.int8)
            # x Wᵀ = (x Qᵀ) ⊙ s;  g W = (g ⊙ s) Q: one scale per output feature either way.
            self.weight, self.weight_t = q, q.t().contiguous()
            self.scale, self.scale_bf16 = scale, scale.to(torch.bfloat16)
            self.ones = torch.ones(weight.shape[1], dtype=torch.bfloat16, device=weight.device)

    def apply(self, x: Tensor, bias: Tensor | None = None) -> Tensor:
        """x Wᵀ (+ bias) ``[..., out]`` for ``x [..., in]``."""
        if self.precision is None:
            if bias is None:
                return x @ self.weight.T
            return torch.addmm(bias, x, self.weight.T) if x.dim() == 2 else (
                x @ self.weight.T + bias)
        if self.precision == "bfloat16":
            y = (x.to(torch.bfloat16) @ self.weight_t).to(x.dtype)
        else:
            y = _int8_product(x, self.weight, self.scale_bf16)
        return y if bias is None else y.add_(bias)

    def apply_t(self, g: Tensor) -> Tensor:
        """g W ``[..., in]`` for ``g [..., out]``; in bfloat16 with ``"bfloat16"`` (a backward
        pass stays in it, which matters when it carries many cotangents at once)."""
        if self.precision is None:
            return g @ self.weight
        if self.precision == "bfloat16":
            return g.to(torch.bfloat16) @ self.weight
        return _int8_product(g * self.scale, self.weight_t, self.ones)


def _int8_product(x: Tensor, q: Tensor, scale: Tensor) -> Tensor:
    """(x Qᵀ) ⊙ scale for int8 ``Q [n, k]``, ``x [..., k]`` rounded to bfloat16."""
    flat = x.reshape(-1, x.shape[-1]).to(torch.bfloat16)
    y = torch._weight_int8pack_mm(flat, q, scale)
    return y.to(x.dtype).reshape(*x.shape[:-1], q.shape[0])


class _Step:
    """One step of the program: ``forward(x [b, d], index) -> x`` appending what its ``vjp``
    needs to ``saved``; ``vjp(g [..., b, d], saved) -> g`` popping it. ``index [b]`` selects
    the rows of the per-context tensors (``None``: all, in order)."""

    def forward(self, x: Tensor, index: Tensor | None, saved: Saved) -> Tensor:
        raise NotImplementedError

    def vjp(self, g: Tensor, saved: Saved) -> Tensor:
        raise NotImplementedError


def _rows(t: Tensor, index: Tensor | None) -> Tensor:
    return t if index is None else t[index]


@dataclass
class _Affine(_Step):
    """x = a ⊙ z + c; ``per_row``: a and c are ``[B, d]`` (one per context), else ``[d]``."""

    scale: Tensor
    shift: Tensor
    per_row: bool = False

    def forward(self, x: Tensor, index: Tensor | None, saved: Saved) -> Tensor:
        scale = _rows(self.scale, index) if self.per_row else self.scale
        shift = _rows(self.shift, index) if self.per_row else self.shift
        saved.append(scale)
        return torch.addcmul(shift, x, scale)

    def vjp(self, g: Tensor, saved: Saved) -> Tensor:
        scale = saved.pop()
        assert isinstance(scale, Tensor)
        return g * scale


@dataclass
class _Linear(_Step):
    """x = z Wᵀ + c."""

    weight: Tensor
    shift: Tensor | None

    def forward(self, x: Tensor, index: Tensor | None, saved: Saved) -> Tensor:
        return x @ self.weight.T if self.shift is None else torch.addmm(self.shift, x,
                                                                         self.weight.T)

    def vjp(self, g: Tensor, saved: Saved) -> Tensor:
        return g @ self.weight


@dataclass
class _Gather(_Step):
    """x = z[..., index] for a permutation ``index``."""

    index: Tensor
    inverse: Tensor

    def forward(self, x: Tensor, index: Tensor | None, saved: Saved) -> Tensor:
        return x[..., self.index]

    def vjp(self, g: Tensor, saved: Saved) -> Tensor:
        return g[..., self.inverse]


@dataclass
class _ResidualBlock:
    """h + W₁ ReLU(W₀' ReLU(s₀ ⊙ h + t₀) + b₀') + b₁ (batch norms folded; s₀ = None:
    no norm before the first ReLU)."""

    scale0: Tensor | None
    shift0: Tensor | None
    weight0: _Matrix
    bias0: Tensor
    weight1: _Matrix
    bias1: Tensor


@dataclass
class _Coupling(_Step):
    """x = join(z₁, z₂ + t(z₁, c)) with t the coupling net: input layer ``W_z z₁ +
    part[row]``, residual blocks, output layer, optionally ``b · tanh(t / b)``."""

    coupling: AdditiveCoupling
    input_weight: _Matrix
    context_part: Tensor  # [B, H] (or [1, H] for an unconditional net)
    blocks: Sequence[_ResidualBlock]
    output_weight: _Matrix
    output_bias: Tensor
    shift_bound: float | None

    def forward(self, x: Tensor, index: Tensor | None, saved: Saved) -> Tensor:
        z1, z2 = self.coupling._split(x)
        part = self.context_part if len(self.context_part) == 1 else _rows(self.context_part,
                                                                           index)
        h = self.input_weight.apply(z1, part)
        masks = []
        for blk in self.blocks:
            a = h if blk.scale0 is None or blk.shift0 is None else torch.addcmul(
                blk.shift0, h, blk.scale0)
            a = F.relu(a)
            u = blk.weight0.apply(a, blk.bias0).relu_()
            h = blk.weight1.apply(u, blk.bias1).add_(h)
            masks.append((a > 0, u > 0))
        t = self.output_weight.apply(h, self.output_bias)
        if self.shift_bound is not None:
            tanh = torch.tanh(t / self.shift_bound)
            saved.append(1 - tanh.square())
            t = self.shift_bound * tanh
        saved.append(masks)
        return self.coupling._join(z1, z2 + t)

    def vjp(self, g: Tensor, saved: Saved) -> Tensor:
        masks = saved.pop()
        assert isinstance(masks, list)
        g1, g2 = self.coupling._split(g)
        g_t = g2
        if self.shift_bound is not None:
            slope = saved.pop()
            assert isinstance(slope, Tensor)
            g_t = g_t * slope
        g_h = self.output_weight.apply_t(g_t)
        for blk, (mask_a, mask_u) in zip(reversed(self.blocks), reversed(masks), strict=True):
            g_a = blk.weight0.apply_t(blk.weight1.apply_t(g_h) * mask_u) * mask_a
            g_h = g_h + (g_a if blk.scale0 is None else g_a * blk.scale0.to(g_a.dtype))
        return self.coupling._join(g1 + self.input_weight.apply_t(g_h).to(g1.dtype), g2)


def _norm_affine(norm: nn.Module, name: str) -> tuple[Tensor | None, Tensor | None]:
    """(scale, shift) of an eval-mode batch norm; (None, None) for no norm."""
    if isinstance(norm, nn.Identity):
        return None, None
    if isinstance(norm, nn.BatchNorm1d) and norm.track_running_stats and norm.affine:
        assert norm.running_var is not None and norm.running_mean is not None
        scale = norm.weight / torch.sqrt(norm.running_var + norm.eps)
        return scale, norm.bias - norm.running_mean * scale
    raise ValueError(f"{name}: FrozenGlow supports batch norm (with running statistics) or "
                     f"none in coupling nets, got {type(norm).__name__}")


def _coupling_step(coupling: AdditiveCoupling, context: Tensor | None, name: str,
                   precision: str | None) -> _Coupling:
    net = coupling.net
    if type(net) is not ContextResidualNet:
        raise ValueError(f"{name}: FrozenGlow supports ContextResidualNet coupling nets, got "
                         f"{type(net).__name__}")
    blocks = []
    for k, blk in enumerate(net.blocks):
        assert isinstance(blk, ResidualBlock)
        scale0, shift0 = _norm_affine(blk.norm0, f"{name}.net.blocks.{k}.norm0")
        scale1, shift1 = _norm_affine(blk.norm1, f"{name}.net.blocks.{k}.norm1")
        weight0: Tensor = blk.linear0.weight
        bias0: Tensor = blk.linear0.bias
        if scale1 is not None and shift1 is not None:
            weight0, bias0 = weight0 * scale1[:, None], bias0 * scale1 + shift1
        blocks.append(_ResidualBlock(scale0, shift0, _Matrix(weight0.contiguous(), precision),
                                     bias0, _Matrix(blk.linear1.weight, precision),
                                     blk.linear1.bias))
    if net.input_c is not None:
        if context is None:
            raise ValueError(f"context: {name} is conditional and needs a context, got None")
        part = net.input_c(context)
    else:
        bias = net.input_z.bias
        part = (bias if bias is not None else net.input_z.weight.new_zeros(
            net.input_z.out_features))[None]
    return _Coupling(coupling, _Matrix(net.input_z.weight, precision), part, blocks,
                     _Matrix(net.output.weight, precision), net.output.bias,
                     coupling.shift_bound)


def _steps(bijector: nn.Module, context: Tensor | None, name: str, precision: str | None
           ) -> list[_Step]:
    if isinstance(bijector, Compose):
        return [step for k, b in enumerate(bijector.bijectors)
                for step in _steps(b, context, f"{name}.bijectors.{k}", precision)]
    if type(bijector) is AdditiveCoupling:
        return [_coupling_step(bijector, context, name, precision)]
    if isinstance(bijector, NflowsLULinear):  # x = (z − b) Wᵀ
        weight, _ = bijector.weights()
        return [_Linear(weight, -(bijector.bias @ weight.T))]
    if type(bijector) is LULinear:
        weight, _ = bijector.weights()
        return [_Linear(weight, None)]
    if type(bijector) is ActNorm:
        if bijector.normalizing:  # x = (z − shift) / exp(log_scale)
            scale = torch.exp(-bijector.log_scale)
            return [_Affine(scale, -bijector.shift * scale)]
        return [_Affine(bijector.log_scale.exp(), bijector.shift)]
    if type(bijector) is ConditionalAffine:
        log_scale, shift = bijector.scale_shift(context)
        return [_Affine(log_scale.exp(), shift, per_row=True)]
    if type(bijector) is FixedAffine:
        return [_Affine(bijector.scale, bijector.shift)]
    if isinstance(bijector, Permutation):
        return [_Gather(bijector.permutation, bijector.inverse_permutation)]
    raise ValueError(f"{name}: FrozenGlow does not support {type(bijector).__name__}")


class FrozenGlow:
    """x = f(z; c) of ``bijector`` for the contexts ``context [B, C]``, compiled once (module
    docstring). Build it with the parameters frozen and the bijector in eval mode; it keeps
    the parameters' tensors (not copies), so it must not outlive a change of them.

    Call it through :func:`frozen_generate` (autograd-aware) with rows ``z [b, d]`` of the
    contexts ``index [b]`` (``None``: all ``B`` rows, in order). ``precision``: ``None``
    (the parameters'), ``"bfloat16"`` or ``"int8"`` for the coupling nets' products (module
    docstring).
    """

    def __init__(self, bijector: Bijector, context: Tensor | None,
                 precision: str | None = None) -> None:
        if precision is not None and precision not in PRECISIONS:
            raise ValueError(f"precision: expected None or one of {PRECISIONS}, got "
                             f"{precision!r}")
        if precision == "int8":
            device = next(bijector.parameters()).device
            if device.type != "cpu":
                raise ValueError(f"precision: 'int8' products run on the CPU only, got a "
                                 f"bijector on {device}")
        if bijector.training:
            raise ValueError("bijector: FrozenGlow needs eval mode (batch norm's running "
                             "statistics, no dropout)")
        with torch.no_grad():
            self.steps = _steps(bijector, context, "bijector", precision)
        # An unconditional flow's empty context [1, 0] fits any number of rows.
        self.rows = None if context is None or context.shape[-1] == 0 else context.shape[0]

    def forward(self, z: Tensor, index: Tensor | None, saved: Saved) -> Tensor:
        """x ``[b, d]`` for z ``[b, d]``; appends to ``saved`` what :meth:`vjp` needs."""
        for step in self.steps:
            z = step.forward(z, index, saved)
        return z

    def vjp(self, g: Tensor, saved: Saved) -> Tensor:
        """gᵀ ∂x/∂z ``[..., b, d]`` for cotangents ``g [..., b, d]``, consuming ``saved`` of
        the matching :meth:`forward` (the leading dimensions: several cotangents at once)."""
        saved = list(saved)
        for step in reversed(self.steps):
            g = step.vjp(g, saved)
        return g


class _Generate(torch.autograd.Function):
    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, z: Tensor, frozen: FrozenGlow,
                index: Tensor | None) -> Tensor:
        saved: Saved = []
        with torch.no_grad():
            x = frozen.forward(z, index, saved)
        ctx.frozen, ctx.saved = frozen, saved  # type: ignore[attr-defined]
        return x

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, g: Tensor
                 ) -> tuple[Tensor, None, None]:
        return ctx.frozen.vjp(g, ctx.saved), None, None  # type: ignore[attr-defined]


def frozen_generate(frozen: FrozenGlow, z: Tensor, index: Tensor | None = None) -> Tensor:
    """x = f(z; c[index]) ``[b, d]`` for ``z [b, d]``, differentiable in z by
    :meth:`FrozenGlow.vjp` (``index [b]``: rows of the contexts ``frozen`` was built for;
    ``None``: all of them, in order)."""
    if z.dim() != 2:
        raise ValueError(f"z: expected [b, d], got shape {tuple(z.shape)}")
    expected = frozen.rows if index is None else len(index)
    if expected is not None and z.shape[0] != expected:
        raise ValueError(f"z: expected {expected} rows (one per context row), got "
                         f"{z.shape[0]}")
    return _Generate.apply(z, frozen, index)
