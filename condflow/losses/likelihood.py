"""L_nll: the negative log-likelihood of ground-truth outputs under the conditional flow."""

from __future__ import annotations

import torch
from torch import Tensor

from condflow._checks import check_tensor

__all__ = ["nll_loss"]


def nll_loss(log_prob: Tensor, mask: Tensor | None = None) -> Tensor:
    """Mean negative log-likelihood over the available examples.

    Args:
        log_prob: ``[B]`` (or ``[B, ...]``) log-densities of the ground truth.
        mask: optional ``[B]`` availability (e.g. ``has_smpl``). Unavailable examples are left
            out of the mean exactly (value and gradient); with none available the loss is 0.

    Returns:
        Scalar ``-mean(log_prob[mask])``.
    """
    check_tensor("log_prob", log_prob, finite=False)
    if log_prob.dim() == 0:
        raise ValueError("log_prob: expected shape [B, ...], got a scalar")
    if mask is None:
        return -log_prob.mean()
    check_tensor("mask", mask, [log_prob.shape[0]], floating=False, finite=False)
    keep = mask if mask.dtype == torch.bool else mask > 0
    keep = keep.reshape(-1, *([1] * (log_prob.dim() - 1))).expand_as(log_prob)
    total = torch.where(keep, -log_prob, torch.zeros_like(log_prob)).sum()
    return total / keep.sum().clamp_min(1).to(log_prob.dtype)
