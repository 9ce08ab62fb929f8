"""The context-conditioned residual MLP used inside coupling layers, and its settings
(:class:`CouplingNet`).

Normalization (``batch_norm``): ``"batch"`` (or ``True``) is ProHMR's batch norm, whose
train-mode statistics make the train-mode ``log_prob`` of an example depend on the rest of
its batch; ``"layer"`` (``LayerNorm``, per row) and ``"none"`` (or ``False``) do not (see
:mod:`condflow._norms`).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from condflow._checks import check_int, check_positive_int
from condflow._norms import Norm, make_norm, norm_name
from condflow.bijectors.base import broadcast_context

__all__ = [
    "ContextParts", "ContextResidualNet", "CouplingNet", "ResidualBlock", "cached_context_parts",
    "check_coupling_net",
]


@dataclass(frozen=True, kw_only=True)
class CouplingNet:
    """The shape of a coupling layer's net t(z₁, c) (:class:`ContextResidualNet`): an input
    layer on ``[z₁, c]`` to width ``hidden_features``, ``num_residual_blocks`` residual
    blocks, a near-zero output layer. The defaults are ProHMR's.

    One object, passed by keyword (``coupling_net=``), carries these settings from a flow or
    a head down to every coupling layer; a head's regression baseline uses it for its pose
    MLP, so that baseline has the coupling nets' size. What is not here belongs elsewhere:
    how a coupling uses the net's output (``shift_bound``, ``scale_bound``) to the coupling,
    and the width of a conditional-volume net (``volume_hidden``), a different net of c
    alone, to :class:`~condflow.bijectors.ConditionalAffine`. The activation is ReLU.

    Args:
        hidden_features: width H of the hidden layers.
        num_residual_blocks: residual blocks between the input and output layers (>= 0).
        dropout: dropout probability inside the residual blocks (training mode only).
        batch_norm: normalization inside the residual blocks, ``"batch"``, ``"layer"`` or
            ``"none"`` (see the module docstring); ``True`` / ``False`` are stored as
            ``"batch"`` / ``"none"``, so equal settings compare equal.
    """

    hidden_features: int = 1024
    num_residual_blocks: int = 2
    dropout: float = 0.0
    batch_norm: Norm | bool = "batch"

    def __post_init__(self) -> None:
        check_positive_int("hidden_features", self.hidden_features)
        check_int("num_residual_blocks", self.num_residual_blocks, 0)
        p = self.dropout
        if isinstance(p, bool) or not isinstance(p, int | float) or not (
            math.isfinite(p) and 0.0 <= p <= 1.0
        ):
            raise ValueError(f"dropout: expected a probability in [0, 1], got {p!r}")
        object.__setattr__(self, "batch_norm", norm_name(self.batch_norm))


def check_coupling_net(name: str, value: object) -> CouplingNet:
    """``value`` if it is a :class:`CouplingNet`, else ``ValueError`` naming ``name``."""
    if not isinstance(value, CouplingNet):
        raise ValueError(
            f"{name}: expected a condflow.bijectors.CouplingNet (e.g. "
            f"CouplingNet(hidden_features=256)), got {type(value).__name__} {value!r:.60}"
        )
    return value


class ResidualBlock(nn.Module):
    """h + Linear(Dropout(ReLU(N(Linear(ReLU(N(h))))))), on ``[..., H]``, with N the
    normalization ``batch_norm`` (see the module docstring)."""

    def __init__(self, hidden: int, dropout: float = 0.0, batch_norm: bool | str = True) -> None:
        super().__init__()
        kind = norm_name(batch_norm)
        self.norm0 = make_norm(kind, hidden)
        self.linear0 = nn.Linear(hidden, hidden)
        self.norm1 = make_norm(kind, hidden)
        self.dropout = nn.Dropout(dropout)
        self.linear1 = nn.Linear(hidden, hidden)
        nn.init.uniform_(self.linear1.weight, -1e-3, 1e-3)
        nn.init.uniform_(self.linear1.bias, -1e-3, 1e-3)

    def forward(self, h: Tensor) -> Tensor:
        # BatchNorm1d wants [N, H]: statistics are taken over every sample of every row.
        flat = h.reshape(-1, h.shape[-1])
        # ReLU and the residual sum run in place on the fresh intermediates (never on h):
        # on wide layers each saved allocation is a saved pass over memory.
        t = self.norm0(flat)
        t = F.relu(t, inplace=t is not flat)
        t = self.norm1(self.linear0(t)).relu_()
        t = self.linear1(self.dropout(t))
        return t.add_(flat).reshape(h.shape)


class ContextResidualNet(nn.Module):
    """t(z₁, c): input layer on ``[z₁, c]`` → residual blocks → near-zero output layer.

    The input layer ``W [z₁; c] + b`` is split as ``W_z z₁ + (W_c c + b)``; the context
    part is computed once per context row ``[B, H]`` and broadcast over the samples of
    that row, so n samples per context cost no extra context work. With
    ``context_features=0`` the net is unconditional and ``context`` is ignored.
    ``settings``: width, residual blocks, dropout and normalization (:class:`CouplingNet`).

    Shapes: ``z1`` ``[B, ..., in_features]``, ``context`` ``[B, context_features]`` →
    ``[B, ..., out_features]``.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        context_features: int,
        *,
        settings: CouplingNet = CouplingNet(),
    ) -> None:
        super().__init__()
        s = check_coupling_net("settings", settings)
        has_context = context_features > 0
        self.input_z = nn.Linear(in_features, s.hidden_features, bias=not has_context)
        self.input_c = nn.Linear(context_features, s.hidden_features) if has_context else None
        self.blocks = nn.ModuleList(
            ResidualBlock(s.hidden_features, dropout=s.dropout, batch_norm=s.batch_norm)
            for _ in range(s.num_residual_blocks)
        )
        self.output = nn.Linear(s.hidden_features, out_features)
        nn.init.uniform_(self.output.weight, -1e-3, 1e-3)
        nn.init.uniform_(self.output.bias, -1e-3, 1e-3)

    def forward(self, z1: Tensor, context: Tensor | None) -> Tensor:
        h = self.input_z(z1)
        if self.input_c is not None:
            h = h.add_(broadcast_context(self._context_part(context), z1))
        for block in self.blocks:
            h = block(h)
        return self.output(h)

    #: The handle of the enclosing :func:`cached_context_parts`; ``None``: off.
    _context_cache: ContextParts | None = None

    def _context_part(self, context: Tensor | None) -> Tensor:
        layer, cache = self.input_c, self._context_cache
        assert layer is not None
        if cache is None or context is None or (torch.is_grad_enabled() and (
                context.requires_grad or layer.weight.requires_grad)):
            return layer(context)  # off, or a gradient has to flow through it
        parent, index = cache.rows_of(context)
        # The same tensor objects, unmodified, under the same autocast state.
        device = parent.device.type
        key = (parent, parent._version, layer.weight, layer.weight._version, layer.bias,
               layer.bias._version, torch.is_autocast_enabled(device),
               torch.get_autocast_dtype(device))
        hit = cache.parts.get(id(self))
        if hit is None or not all(a is b if isinstance(a, Tensor) else a == b
                                  for a, b in zip(hit[0], key, strict=True)):
            hit = cache.parts[id(self)] = (key, layer(parent))
        return hit[1] if index is None else hit[1][index]


class ContextParts:
    """What :func:`cached_context_parts` keeps: per net the last context part ``W_c c + b``
    with the tensors it was computed from, and the rows that :meth:`select` took last."""

    def __init__(self) -> None:
        self.parts: dict[int, tuple[tuple[object, ...], Tensor]] = {}
        self._selected: tuple[Tensor, Tensor, Tensor] | None = None

    def select(self, context: Tensor, index: Tensor) -> Tensor:
        """``context[index]`` (``[b, C]``; ``context`` itself where ``index`` is every row in
        order), whose context parts the nets take as those rows of the parts of
        ``context``: sub-batches of a fit reuse the parts of the whole batch."""
        if index.shape == context.shape[:1] and bool(
                (index == torch.arange(len(index), device=index.device)).all()):
            return context
        rows = context[index]
        self._selected = (rows, context, index)
        return rows

    def rows_of(self, context: Tensor) -> tuple[Tensor, Tensor | None]:
        """``(parent, index)`` for the rows of the last :meth:`select`, else ``(context,
        None)``."""
        if self._selected is not None and self._selected[0] is context:
            return self._selected[1], self._selected[2]
        return context, None


@contextmanager
def cached_context_parts(module: nn.Module) -> Iterator[ContextParts]:
    """Within the block every :class:`ContextResidualNet` in ``module`` computes the context
    part ``W_c c + b`` of its input layer once and reuses it while the same context tensor
    comes back unmodified (same autocast state, same parameters, none needing a gradient),
    also for rows of it taken by the yielded handle's
    :meth:`~ContextParts.select`: for fits that evaluate a flow many times on fixed
    contexts. Only the last context is kept per net; an enclosing block's cache stays its
    own."""
    nets = [m for m in module.modules()
            if isinstance(m, ContextResidualNet) and m._context_cache is None]
    cache = ContextParts()
    for net in nets:
        net._context_cache = cache
    try:
        yield cache
    finally:
        for net in nets:
            del net._context_cache  # back to the class default (off)
