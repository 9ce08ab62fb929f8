"""The contract between a training objective and :func:`condflow.train.train`."""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

__all__ = ["Objective"]


class Objective(nn.Module):
    """A training objective: ``forward(batch)`` returns a dict of scalar losses with the
    total under ``"loss"`` (the only one differentiated; the others are logged).

    The loop wraps the objective in ``DistributedDataParallel`` under ``torchrun``, so the
    model's parameters must be reachable from it (``self.model``) and anything trained by
    other means (e.g. a discriminator with its own optimizer) must not be. State of that
    kind is saved with :meth:`extra_state`, restored with :meth:`load_extra_state` and
    updated in :meth:`after_step`; the defaults do nothing.
    """

    def forward(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        raise NotImplementedError

    def after_step(self, step: int) -> None:
        """Called after optimizer step ``step`` (0-based) of the model."""

    def extra_state(self) -> dict[str, Any]:
        """State beyond the model's to checkpoint (tensors and plain values only)."""
        return {}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`extra_state` returned."""
