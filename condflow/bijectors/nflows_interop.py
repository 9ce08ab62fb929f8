"""Adapters between condflow bijectors and nflows transforms.

condflow bijectors are *not* nflows subclasses (their ``forward`` is the generative
direction z → x and they accept ``[B, n, d]`` inputs with a ``[B, C]`` context), so the two
libraries meet through two thin adapters:

- :class:`ToNflows` wraps a condflow :class:`Bijector` as an ``nflows.transforms.Transform``
  (nflows' ``forward`` is x → z, i.e. our ``inverse``), to be used inside
  ``nflows.transforms.CompositeTransform`` or ``nflows.flows.Flow``;
- :class:`FromNflows` wraps any nflows ``Transform`` as a condflow :class:`Bijector`, to be
  composed with condflow bijectors inside a :class:`~condflow.ConditionalFlow`.
"""

from __future__ import annotations

from collections.abc import Callable

from nflows.transforms import Transform
from torch import Tensor

from condflow.bijectors.base import Bijector

__all__ = ["FromNflows", "ToNflows"]


class ToNflows(Transform):
    """A condflow bijector seen as an nflows ``Transform`` (``forward``: x → z)."""

    def __init__(self, bijector: Bijector) -> None:
        super().__init__()
        self.bijector = bijector

    def forward(self, inputs: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return self.bijector.inverse(inputs, context)

    def inverse(self, inputs: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return self.bijector(inputs, context)


class FromNflows(Bijector):
    """An nflows ``Transform`` seen as a condflow bijector (``forward``: z → x).

    nflows transforms take ``[N, d]`` inputs with a ``[N, C]`` context, so ``[B, n, d]``
    inputs are flattened and the context repeated per sample. ``constant_logdet`` and
    ``logdet_depends_on_context`` must be declared by the caller (defaults ``False`` and
    ``True``, the safe answers: ``mode`` then refuses).
    """

    def __init__(
        self,
        transform: Transform,
        constant_logdet: bool = False,
        logdet_depends_on_context: bool = True,
    ) -> None:
        super().__init__()
        self.transform = transform
        self._constant_logdet = constant_logdet
        self._logdet_depends_on_context = logdet_depends_on_context

    @property
    def constant_logdet(self) -> bool:  # type: ignore[override]
        return self._constant_logdet

    @property
    def logdet_depends_on_context(self) -> bool:  # type: ignore[override]
        return self._logdet_depends_on_context

    def _apply_flat(
        self, fn: Callable[..., tuple[Tensor, Tensor]], v: Tensor, context: Tensor | None
    ) -> tuple[Tensor, Tensor]:
        lead = v.shape[:-1]
        flat = v.reshape(-1, v.shape[-1])
        if context is not None and flat.shape[0] != context.shape[0]:
            per_row = flat.shape[0] // context.shape[0]
            context = context.repeat_interleave(per_row, dim=0)
        out, logdet = fn(flat, context=context)
        return out.reshape(v.shape), logdet.reshape(lead)

    def forward(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return self._apply_flat(self.transform.inverse, z, context)

    def inverse(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return self._apply_flat(self.transform.forward, x, context)
