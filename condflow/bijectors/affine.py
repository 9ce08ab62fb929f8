"""A fixed (non-trainable) per-feature affine map, e.g. data standardization."""

from __future__ import annotations

import torch
from torch import Tensor

from condflow.bijectors.base import Bijector, constant_logabsdet

__all__ = ["FixedAffine"]


class FixedAffine(Bijector):
    """x = scale ⊙ z + shift with constant buffers ``scale``/``shift`` ``[d]``.

    Placed last in the generative direction it maps a flow on standardized features to data
    units (e.g. millimetres) so ``log_prob`` is a density in those units; log|det| = Σ log scale.
    """

    shift: Tensor
    scale: Tensor

    def __init__(self, shift: Tensor, scale: Tensor) -> None:
        super().__init__()
        shift, scale = torch.as_tensor(shift).float(), torch.as_tensor(scale).float()
        if shift.dim() != 1 or shift.shape != scale.shape:
            raise ValueError(
                "shift/scale: expected two [d] tensors, "
                f"got {list(shift.shape)} and {list(scale.shape)}"
            )
        if not bool((scale > 0).all()) or not bool(torch.isfinite(shift).all()):
            raise ValueError(
                "scale: expected finite positive values; shift: expected finite values"
            )
        self.register_buffer("shift", shift)
        self.register_buffer("scale", scale)

    def forward(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return z * self.scale + self.shift, constant_logabsdet(self.scale.log().sum(), z)

    def inverse(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return (x - self.shift) / self.scale, constant_logabsdet(-self.scale.log().sum(), x)
