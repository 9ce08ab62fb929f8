"""Bijectors whose log-det depends on the context c but not on z.

A flow built only from such bijectors (and z-independent ones) keeps an exact mode,
``argmax_x p(x | c) = f(0; c)``: for fixed c the log-det is one number, so the density of x
is the base density of ``f⁻¹(x; c)`` times a constant. What changes is that this constant is
per input: the volume of the density, and with it ``log p(mode | c)`` and the spread per
feature, follow the input. ProHMR's blocks (additive couplings, context-free ActNorm and LU)
cannot do that: their log|det J| is one number for every input.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from condflow.bijectors.base import Bijector, broadcast_context

__all__ = ["ConditionalAffine", "context_logabsdet"]


def context_logabsdet(value: Tensor, like: Tensor) -> Tensor:
    """Broadcast a per-context log-det ``[B]`` to ``like.shape[:-1]`` (``[B, ...]``, no copy).

    Like :func:`~condflow.bijectors.base.constant_logabsdet`, never rounded below the
    value's own precision."""
    value = value.to(torch.promote_types(value.dtype, like.dtype))
    return value.reshape(value.shape + (1,) * (like.dim() - 1 - value.dim())).expand(
        like.shape[:-1]
    )


class ConditionalAffine(Bijector):
    """Elementwise affine map with context-dependent scale and shift (a conditional ActNorm):

        x = exp(s(c)) ⊙ z + b(c),   log|det ∂x/∂z| = Σᵢ sᵢ(c).

    ``[s(c), b(c)] = W₂ ReLU(W₁ c + b₁) + b₂`` with ``W₂ = 0``, ``b₂ = 0`` at initialization,
    so the map starts as the identity (a flow it is added to starts as the flow without it).
    ``s`` is soft-clamped to ``(-scale_bound, scale_bound)`` by a tanh. The net runs once per
    context row ``[B, C]`` per call and its output is broadcast over the samples of that row,
    so n samples per context cost no extra net evaluations.

    Args:
        features: d.
        context_features: C.
        hidden_features: width of the net's hidden layer.
        scale_bound: bound on each log-scale.

    Shapes: ``z``/``x`` ``[B, ..., d]``, ``context`` ``[B, C]``; log-dets ``[B, ...]``.
    """

    constant_logdet = True
    logdet_depends_on_context = True

    def __init__(
        self,
        features: int,
        context_features: int,
        hidden_features: int = 128,
        scale_bound: float = 5.0,
    ) -> None:
        super().__init__()
        if context_features < 1:
            raise ValueError(
                f"context_features: a conditional affine map needs a context, got "
                f"{context_features}"
            )
        if not scale_bound > 0:
            raise ValueError(f"scale_bound: expected a positive number, got {scale_bound!r}")
        self.features = features
        self.scale_bound = float(scale_bound)
        first = nn.Linear(context_features, hidden_features)
        last = nn.Linear(hidden_features, 2 * features)
        self.net = nn.Sequential(first, nn.ReLU(), last)
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)

    def scale_shift(self, context: Tensor | None) -> tuple[Tensor, Tensor]:
        """Log-scale and shift, each ``[B, d]``, for contexts ``[B, C]``."""
        if context is None:
            raise ValueError("context: a conditional affine map needs a context, got None")
        raw_scale, shift = self.net(context).chunk(2, dim=-1)
        return self.scale_bound * torch.tanh(raw_scale / self.scale_bound), shift

    def forward(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        log_scale, shift = self.scale_shift(context)
        x = z * broadcast_context(log_scale.exp(), z) + broadcast_context(shift, z)
        return x, context_logabsdet(log_scale.sum(-1), z)

    def inverse(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        log_scale, shift = self.scale_shift(context)
        z = (x - broadcast_context(shift, x)) * broadcast_context(torch.exp(-log_scale), x)
        return z, context_logabsdet(-log_scale.sum(-1), x)
