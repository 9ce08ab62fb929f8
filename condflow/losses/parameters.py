"""Losses on body-model parameters: joint rotation matrices and shape coefficients."""

from __future__ import annotations

from torch import Tensor

from condflow.losses._common import align_samples, apply_mask, check_trailing_match

__all__ = ["betas_loss", "rotmat_loss"]


def rotmat_loss(pred_rotmat: Tensor, gt_rotmat: Tensor, mask: Tensor | None = None) -> Tensor:
    """Squared error between rotation matrices, summed per example (and sample).

    Args:
        pred_rotmat: ``[B, J, 3, 3]`` or ``[B, n, J, 3, 3]``.
        gt_rotmat: ``[B, J, 3, 3]``.
        mask: optional ``[B]`` availability (``has_smpl``); unavailable examples give exactly 0.

    Returns:
        ``[B]`` or ``[B, n]``.
    """
    gt = align_samples("pred_rotmat", pred_rotmat, "gt_rotmat", gt_rotmat, 3)
    if tuple(gt_rotmat.shape[-2:]) != (3, 3):
        raise ValueError(f"gt_rotmat: expected shape [B, J, 3, 3], got {list(gt_rotmat.shape)}")
    check_trailing_match("pred_rotmat", pred_rotmat, "gt_rotmat", gt_rotmat)
    loss = ((pred_rotmat - gt) ** 2).sum(dim=(-3, -2, -1))
    return apply_mask(loss, mask)


def betas_loss(pred_betas: Tensor, gt_betas: Tensor, mask: Tensor | None = None) -> Tensor:
    """Squared error between shape coefficients, summed per example (and sample).

    Args:
        pred_betas: ``[B, D]`` or ``[B, n, D]``.
        gt_betas: ``[B, D]``.
        mask: optional ``[B]`` availability (``has_smpl``); unavailable examples give exactly 0.

    Returns:
        ``[B]`` or ``[B, n]``.
    """
    gt = align_samples("pred_betas", pred_betas, "gt_betas", gt_betas, 1)
    check_trailing_match("pred_betas", pred_betas, "gt_betas", gt_betas)
    loss = ((pred_betas - gt) ** 2).sum(dim=-1)
    return apply_mask(loss, mask)
