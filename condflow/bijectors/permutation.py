"""Fixed feature permutations (log|det| = 0)."""

from __future__ import annotations

import torch
from torch import Tensor

from condflow.bijectors.base import Bijector

__all__ = ["Permutation", "RandomPermutation", "ReversePermutation"]


class Permutation(Bijector):
    """x = z[..., perm]; the inverse permutation is stored, not recomputed."""

    permutation: Tensor
    inverse_permutation: Tensor

    def __init__(self, permutation: Tensor) -> None:
        super().__init__()
        permutation = torch.as_tensor(permutation, dtype=torch.long)
        n = permutation.numel()
        if permutation.dim() != 1 or not torch.equal(permutation.sort().values, torch.arange(n)):
            raise ValueError(f"permutation: expected a permutation of 0..{n - 1}")
        self.register_buffer("permutation", permutation)
        self.register_buffer("inverse_permutation", torch.argsort(permutation))

    def forward(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return z[..., self.permutation], z.new_zeros(z.shape[:-1])

    def inverse(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return x[..., self.inverse_permutation], x.new_zeros(x.shape[:-1])


class ReversePermutation(Permutation):
    """Reverses the feature order."""

    def __init__(self, features: int) -> None:
        super().__init__(torch.arange(features - 1, -1, -1))


class RandomPermutation(Permutation):
    """A random permutation drawn once from ``seed``."""

    def __init__(self, features: int, seed: int = 0) -> None:
        gen = torch.Generator().manual_seed(seed)
        super().__init__(torch.randperm(features, generator=gen))
