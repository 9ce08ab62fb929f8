"""Keypoint reprojection (2D) and root-aligned 3D keypoint losses with confidences."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor

from condflow.losses._common import align_samples, apply_mask, pointwise

__all__ = ["keypoint_2d_loss", "keypoint_3d_loss"]


def keypoint_2d_loss(
    pred: Tensor, gt: Tensor, mask: Tensor | None = None, kind: str = "l1"
) -> Tensor:
    """Confidence-weighted 2D keypoint loss, one value per example (and sample).

    Args:
        pred: ``[B, K, 2]`` or ``[B, n, K, 2]`` predicted keypoints (normalised crop coords).
        gt: ``[B, K, 3]`` ground truth ``(x, y, confidence)``.
        mask: optional ``[B]`` availability; unavailable examples give exactly 0.
        kind: ``"l1"`` (ProHMR) or ``"l2"`` (SPIN) elementwise penalty.

    Returns:
        ``[B]`` or ``[B, n]``: ``sum_k conf_k * sum_xy penalty(pred - gt)``.
    """
    gt = align_samples("pred", pred, "gt", gt, 2)
    if pred.shape[-1] != 2 or gt.shape[-1] != 3 or pred.shape[-2] != gt.shape[-2]:
        raise ValueError(
            f"pred, gt: expected [..., K, 2] and [B, K, 3], got {list(pred.shape)} and "
            f"{list(gt.shape)}"
        )
    conf = gt[..., 2:]
    loss = (conf * pointwise(pred - gt[..., :2], kind)).sum(dim=(-2, -1))
    return apply_mask(loss, mask)


def keypoint_3d_loss(
    pred: Tensor,
    gt: Tensor,
    pelvis_ids: int | Sequence[int] | None = 0,
    mask: Tensor | None = None,
    kind: str = "l1",
) -> Tensor:
    """Confidence-weighted, root-aligned 3D keypoint loss, one value per example (and sample).

    Both skeletons are translated so that their pelvis (the mean of the joints ``pelvis_ids``,
    e.g. the two hips as in SPIN) sits at the origin; ``None`` skips the alignment.

    Args:
        pred: ``[B, K, 3]`` or ``[B, n, K, 3]`` predicted joints.
        gt: ``[B, K, 4]`` ground truth ``(x, y, z, confidence)``.
        pelvis_ids: joint index or indices defining the pelvis.
        mask: optional ``[B]`` availability (``has_3d``); unavailable examples give exactly 0.
        kind: ``"l1"`` or ``"l2"`` elementwise penalty.

    Returns:
        ``[B]`` or ``[B, n]``: ``sum_k conf_k * sum_xyz penalty(pred - gt)`` after alignment.
    """
    gt = align_samples("pred", pred, "gt", gt, 2)
    if pred.shape[-1] != 3 or gt.shape[-1] != 4 or pred.shape[-2] != gt.shape[-2]:
        raise ValueError(
            f"pred, gt: expected [..., K, 3] and [B, K, 4], got {list(pred.shape)} and "
            f"{list(gt.shape)}"
        )
    conf, gt_xyz = gt[..., 3:], gt[..., :3]
    if pelvis_ids is not None:
        ids = [pelvis_ids] if isinstance(pelvis_ids, int) else list(pelvis_ids)
        num_joints = pred.shape[-2]
        if not ids or any(not -num_joints <= i < num_joints for i in ids):
            raise ValueError(
                f"pelvis_ids: expected joint indices in [0, {num_joints}), got {pelvis_ids!r}"
            )
        pred = pred - pred[..., ids, :].mean(dim=-2, keepdim=True)
        gt_xyz = gt_xyz - gt_xyz[..., ids, :].mean(dim=-2, keepdim=True)
    loss = (conf * pointwise(pred - gt_xyz, kind)).sum(dim=(-2, -1))
    return apply_mask(loss, mask)
