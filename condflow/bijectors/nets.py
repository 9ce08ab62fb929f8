"""The context-conditioned residual MLP used inside coupling layers.

Normalization (``batch_norm``): ``True`` or ``"batch"`` is ProHMR's batch norm. In training
mode its statistics come from the current batch, so the train-mode ``log_prob`` of an
example depends on the other examples of its batch (in eval mode the running statistics are
used and it does not). ``"layer"`` normalizes each row over its features (``LayerNorm``),
the same in both modes and independent of the batch; ``False`` or ``"none"`` normalizes
nothing.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from condflow.bijectors.base import broadcast_context

#: Normalizations of the residual blocks, by name (``batch_norm`` also takes True / False).
NORMS = ("batch", "layer", "none")


def norm_name(batch_norm: bool | str) -> str:
    """``"batch"``, ``"layer"`` or ``"none"`` for a ``batch_norm`` argument; ``ValueError``
    otherwise."""
    if isinstance(batch_norm, bool):
        return "batch" if batch_norm else "none"
    if batch_norm not in NORMS:
        raise ValueError(f"batch_norm: expected True, False or one of {NORMS}, got {batch_norm!r}")
    return batch_norm


def _norm(kind: str, hidden: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm1d(hidden)
    return nn.LayerNorm(hidden) if kind == "layer" else nn.Identity()


class ResidualBlock(nn.Module):
    """h + Linear(Dropout(ReLU(N(Linear(ReLU(N(h))))))), on ``[..., H]``, with N the
    normalization ``batch_norm`` (see the module docstring)."""

    def __init__(self, hidden: int, dropout: float = 0.0, batch_norm: bool | str = True) -> None:
        super().__init__()
        kind = norm_name(batch_norm)
        self.norm0 = _norm(kind, hidden)
        self.linear0 = nn.Linear(hidden, hidden)
        self.norm1 = _norm(kind, hidden)
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
    ``batch_norm``: the residual blocks' normalization (see the module docstring).

    Shapes: ``z1`` ``[B, ..., in_features]``, ``context`` ``[B, context_features]`` →
    ``[B, ..., out_features]``.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        context_features: int,
        hidden_features: int = 1024,
        num_blocks: int = 2,
        dropout: float = 0.0,
        batch_norm: bool | str = True,
    ) -> None:
        super().__init__()
        has_context = context_features > 0
        self.input_z = nn.Linear(in_features, hidden_features, bias=not has_context)
        self.input_c = nn.Linear(context_features, hidden_features) if has_context else None
        self.blocks = nn.ModuleList(
            ResidualBlock(hidden_features, dropout, batch_norm) for _ in range(num_blocks)
        )
        self.output = nn.Linear(hidden_features, out_features)
        nn.init.uniform_(self.output.weight, -1e-3, 1e-3)
        nn.init.uniform_(self.output.bias, -1e-3, 1e-3)

    def forward(self, z1: Tensor, context: Tensor | None) -> Tensor:
        h = self.input_z(z1)
        if self.input_c is not None:
            h = h.add_(broadcast_context(self.input_c(context), z1))
        for block in self.blocks:
            h = block(h)
        return self.output(h)
