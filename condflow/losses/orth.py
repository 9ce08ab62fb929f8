"""L_orth: keeps the flow's 6D rotation outputs close to orthonormal column pairs."""

from __future__ import annotations

from torch import Tensor

from condflow._checks import check_trailing
from condflow.spaces.rotations import orthonormalize_6d

__all__ = ["orthonormality_loss"]


def orthonormality_loss(x6d: Tensor) -> Tensor:
    """Mean squared distance of 6D vectors ``[..., 6]`` from their Gram-Schmidt projection.

    Returns a scalar: ``mean over [...] of |x - orthonormalize_6d(x)|^2``; zero exactly when
    every 6D vector holds two orthonormal columns.
    """
    check_trailing("x6d", x6d, (6,), finite=False)
    diff = x6d - orthonormalize_6d(x6d)
    return (diff * diff).sum(dim=-1).mean()
