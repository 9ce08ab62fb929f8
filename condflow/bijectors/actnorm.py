"""ActNorm: x = a ⊙ z + b with data-dependent initialization (ProHMR's "instance norm")."""

from __future__ import annotations

import warnings
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn

from condflow.bijectors.base import Bijector, constant_logabsdet

__all__ = ["ActNorm"]


class ActNorm(Bijector):
    """Per-feature affine map ``x = exp(log_scale) ⊙ z + shift``; log|det| = Σ log_scale.

    ``parametrization="normalizing"`` stores the map of the other direction instead,
    ``z = exp(log_scale) ⊙ x + shift`` (nflows' ActNorm, whose ``forward`` is x → z; the
    layout of ProHMR's checkpoints), so such parameters are used as they are, not converted.

    The first call of ``inverse`` in training mode (the normalizing direction, i.e. the
    first ``log_prob`` on data) sets ``shift``/``log_scale`` so that the normalized batch has
    zero mean and unit variance per feature (averaged across processes under
    ``torch.distributed``); a feature constant in that batch keeps scale 1, with a warning
    naming it. Whether that happened is the buffer ``initialized``, saved in
    the ``state_dict``: a loaded model never re-initializes. A Python mirror of the buffer
    keeps the hot path free of host-device syncs.
    """

    initialized: Tensor

    def __init__(
        self, features: int, eps: float = 1e-6, parametrization: str = "generative"
    ) -> None:
        super().__init__()
        if parametrization not in ("generative", "normalizing"):
            raise ValueError(
                "parametrization: expected 'generative' or 'normalizing', "
                f"got {parametrization!r}"
            )
        self.features = features
        self.eps = eps
        self.normalizing = parametrization == "normalizing"
        self.log_scale = nn.Parameter(torch.zeros(features))
        self.shift = nn.Parameter(torch.zeros(features))
        self.register_buffer("initialized", torch.tensor(False))
        self._initialized = False

    def _load_from_state_dict(
        self, state_dict: dict[str, Any], prefix: str, *args: Any, **kwargs: Any
    ) -> None:
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        self._initialized = bool(self.initialized)

    @torch.no_grad()
    def initialize(self, x: Tensor) -> None:
        """Data-dependent initialization from a batch ``x`` ``[..., d]`` of data."""
        flat = x.detach().reshape(-1, self.features).to(self.shift.dtype)
        stats = torch.cat([flat.sum(0), flat.pow(2).sum(0), flat.new_tensor([flat.shape[0]])])
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(stats)
        total, total_sq, count = stats[: self.features], stats[self.features : -1], stats[-1]
        mean = total / count
        var = (total_sq / count - mean.pow(2)).clamp_min(0)
        # A (near-)constant feature has no scale to learn from this batch: scaling it by
        # 1/sqrt(eps) would blow up every later value of it (log-densities of -1e5), so it
        # keeps scale 1. The threshold is relative, as E[x²] - E[x]² loses digits.
        constant = var <= self.eps * (1 + mean.pow(2))
        if bool(constant.any()):
            warnings.warn(
                f"ActNorm: feature(s) {constant.nonzero().flatten().tolist()} are constant in "
                "the initialization batch; their scale is left at 1 (log_scale 0)",
                stacklevel=3,
            )
        log_std = torch.where(constant, 0.0, 0.5 * torch.log(var + self.eps))
        if self.normalizing:  # z = (x - mean) / std = exp(-log_std) x - mean exp(-log_std)
            self.log_scale.copy_(-log_std)
            self.shift.copy_(-mean * torch.exp(-log_std))
        else:
            self.shift.copy_(mean)
            self.log_scale.copy_(log_std)
        self.initialized.fill_(True)
        self._initialized = True

    def forward(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        if self.normalizing:
            x = (z - self.shift) / self.log_scale.exp()
            return x, constant_logabsdet(-self.log_scale.sum(), z)
        x = z * self.log_scale.exp() + self.shift
        return x, constant_logabsdet(self.log_scale.sum(), z)

    def inverse(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        if self.training and not self._initialized:
            self.initialize(x)
        if self.normalizing:
            z = self.log_scale.exp() * x + self.shift
            return z, constant_logabsdet(self.log_scale.sum(), x)
        z = (x - self.shift) * torch.exp(-self.log_scale)
        return z, constant_logabsdet(-self.log_scale.sum(), x)
