"""The conditional bijector interface and composition."""

from __future__ import annotations

from collections.abc import Iterable
from typing import cast

import torch
from torch import Tensor, nn

from condflow._recipe import Recorded

__all__ = ["Bijector", "Compose", "Inverse", "broadcast_context", "constant_logabsdet"]


class Bijector(Recorded, nn.Module):
    """An invertible map x = f(z; c) with its log-determinant.

    Shapes: ``z``/``x`` are ``[B, ..., d]`` (typically ``[B, d]`` or ``[B, n, d]`` for n
    samples per context); ``context`` is ``[B, C]`` or ``None`` and is shared by every
    sample of its row. Both directions return ``(output, logabsdet)`` with ``output``
    shaped like the input and ``logabsdet`` ``[B, ...]`` (the input shape without ``d``):

    - ``forward(z, c) -> (x, log|det ∂x/∂z|)`` — the generative direction;
    - ``inverse(x, c) -> (z, log|det ∂z/∂x|)`` — the normalizing direction.
    """

    #: True when log|det J| does not depend on the input (only on parameters and context):
    #: then ``f(0; c)`` is the density's argmax (the guard of ``ConditionalFlow.mode``).
    constant_logdet: bool = True
    #: True when log|det J| may vary with the context c. With ``constant_logdet`` this is
    #: a per-input volume: log p(mode | c) differs between inputs; without it, the log-det
    #: is one number for every input and every z.
    logdet_depends_on_context: bool = False

    def forward(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    def inverse(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        raise NotImplementedError


def constant_logabsdet(value: Tensor, like: Tensor) -> Tensor:
    """Broadcast a scalar log-det to ``like.shape[:-1]`` (no copy). Never rounded below the
    value's own precision (under bf16 autocast ``like`` may be bf16; the log-det stays fp32)."""
    return value.to(torch.promote_types(value.dtype, like.dtype)).expand(like.shape[:-1])


def broadcast_context(context: Tensor, like: Tensor) -> Tensor:
    """View ``context`` ``[B, H]`` as ``[B, 1, ..., 1, H]`` so it broadcasts against ``like``
    ``[B, ..., d]`` without copying: context work is done once per row, not per sample."""
    extra = like.dim() - context.dim()
    return context.reshape(context.shape[:1] + (1,) * extra + context.shape[1:])


class Compose(Bijector):
    """``forward`` applies the bijectors in the order given; ``inverse`` in reverse."""

    def __init__(self, bijectors: Iterable[Bijector]) -> None:
        super().__init__()
        self.bijectors = nn.ModuleList(bijectors)

    @property
    def constant_logdet(self) -> bool:  # type: ignore[override]
        return all(b.constant_logdet for b in self.bijectors)

    @property
    def logdet_depends_on_context(self) -> bool:  # type: ignore[override]
        return any(b.logdet_depends_on_context for b in self.bijectors)

    def forward(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        total = torch.zeros(z.shape[:-1], dtype=z.dtype, device=z.device)
        for b in self.bijectors:
            z, logdet = b(z, context)
            total = total + logdet
        return z, total

    def inverse(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        total = torch.zeros(x.shape[:-1], dtype=x.dtype, device=x.device)
        for b in reversed(self.bijectors):
            x, logdet = cast(Bijector, b).inverse(x, context)  # ModuleList items are Modules
            total = total + logdet
        return x, total


class Inverse(Bijector):
    """The inverse of a bijector: swaps ``forward`` and ``inverse``."""

    def __init__(self, bijector: Bijector) -> None:
        super().__init__()
        self.bijector = bijector

    @property
    def constant_logdet(self) -> bool:  # type: ignore[override]
        return self.bijector.constant_logdet

    @property
    def logdet_depends_on_context(self) -> bool:  # type: ignore[override]
        return self.bijector.logdet_depends_on_context

    def forward(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return self.bijector.inverse(z, context)

    def inverse(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return self.bijector(x, context)
