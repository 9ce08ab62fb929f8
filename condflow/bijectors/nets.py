"""The context-conditioned residual MLP used inside coupling layers."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from condflow.bijectors.base import broadcast_context


class ResidualBlock(nn.Module):
    """h + Linear(Dropout(ReLU(BN(Linear(ReLU(BN(h))))))), on ``[..., H]``."""

    def __init__(self, hidden: int, dropout: float = 0.0, batch_norm: bool = True) -> None:
        super().__init__()
        self.norm0 = nn.BatchNorm1d(hidden) if batch_norm else nn.Identity()
        self.linear0 = nn.Linear(hidden, hidden)
        self.norm1 = nn.BatchNorm1d(hidden) if batch_norm else nn.Identity()
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
        batch_norm: bool = True,
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
