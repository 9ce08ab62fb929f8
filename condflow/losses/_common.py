"""Shape handling shared by the per-example loss terms."""

from __future__ import annotations

import torch
from torch import Tensor

from condflow._checks import check_tensor

__all__ = ["align_samples", "apply_mask", "check_trailing_match", "pointwise"]


def align_samples(
    pred_name: str, pred: Tensor, gt_name: str, gt: Tensor, event_ndim: int
) -> Tensor:
    """Check ``pred`` is ``[B, *event]`` or ``[B, n, *event]`` and ``gt`` is ``[B, *event']``
    (``event_ndim`` trailing dims each). Returns ``gt`` with a sample axis added when ``pred``
    has one, so that the two broadcast."""
    check_tensor(pred_name, pred, finite=False)
    check_tensor(gt_name, gt, finite=False)
    if pred.dim() not in (event_ndim + 1, event_ndim + 2):
        raise ValueError(
            f"{pred_name}: expected {event_ndim} trailing dimensions after [B] or [B, n], "
            f"got shape {list(pred.shape)}"
        )
    if gt.dim() != event_ndim + 1 or gt.shape[0] != pred.shape[0]:
        raise ValueError(
            f"{gt_name}: expected [B, ...] with B = {pred.shape[0]} and {event_ndim} trailing "
            f"dimensions, got shape {list(gt.shape)}"
        )
    return gt[:, None] if pred.dim() == event_ndim + 2 else gt


def check_trailing_match(pred_name: str, pred: Tensor, gt_name: str, gt: Tensor) -> None:
    """Raise unless ``pred`` and ``gt`` agree on every dimension after the batch/sample ones."""
    k = gt.dim() - 1
    if tuple(pred.shape[-k:]) != tuple(gt.shape[1:]):
        raise ValueError(
            f"{pred_name}: trailing shape {list(pred.shape[-k:])} does not match {gt_name} "
            f"{list(gt.shape[1:])}"
        )


def apply_mask(loss: Tensor, mask: Tensor | None) -> Tensor:
    """Zero the rows of per-example losses ``[B]`` or ``[B, n]`` where ``mask [B]`` is False/0.

    Uses ``torch.where`` so masked rows contribute exactly zero, gradients included.
    """
    if mask is None:
        return loss
    check_tensor("mask", mask, [loss.shape[0]], floating=False, finite=False)
    keep = mask if mask.dtype == torch.bool else mask > 0
    keep = keep.reshape(-1, *([1] * (loss.dim() - 1)))
    return torch.where(keep, loss, torch.zeros_like(loss))


def pointwise(diff: Tensor, kind: str) -> Tensor:
    """Elementwise penalty of a difference: ``|d|`` (``"l1"``) or ``d^2`` (``"l2"``)."""
    if kind == "l1":
        return diff.abs()
    if kind == "l2":
        return diff * diff
    raise ValueError(f"kind: expected 'l1' or 'l2', got {kind!r}")
