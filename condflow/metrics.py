"""3D pose metrics: MPJPE, PA-MPJPE and min-of-n over samples.

All functions take and return millimetres and accept any leading batch dimensions before the
``[J, 3]`` joint axes.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from condflow._checks import check_tensor

__all__ = ["min_of_n", "min_of_n_mpjpe", "mpjpe", "pa_mpjpe", "procrustes_align"]


def _check_pair(pred: object, gt: object) -> tuple[Tensor, Tensor]:
    check_tensor("pred", pred, None)
    check_tensor("gt", gt, None)
    assert isinstance(pred, Tensor) and isinstance(gt, Tensor)
    if pred.dim() < 2 or pred.shape[-1] != 3:
        raise ValueError(f"pred: expected shape [..., J, 3], got {list(pred.shape)}")
    if gt.shape != pred.shape:
        raise ValueError(
            f"gt: expected the same shape as pred {list(pred.shape)}, got {list(gt.shape)}"
        )
    return pred, gt


def _joint_errors_mean(pred: Tensor, gt: Tensor) -> Tensor:
    return torch.linalg.vector_norm(pred - gt, dim=-1).mean(dim=-1)


def mpjpe(pred: Tensor, gt: Tensor, root_index: int | None = 0) -> Tensor:
    """Mean per-joint position error.

    Args:
        pred: predicted joints ``[..., J, 3]`` (mm).
        gt: ground-truth joints ``[..., J, 3]`` (mm).
        root_index: joint subtracted from both before comparing (root alignment);
            ``None`` compares the joints as given.

    Returns:
        ``[...]`` mean Euclidean joint error per example (mm).
    """
    pred, gt = _check_pair(pred, gt)
    if root_index is not None:
        num_joints = pred.shape[-2]
        if not -num_joints <= root_index < num_joints:
            raise ValueError(
                f"root_index: expected an index into {num_joints} joints, got {root_index}"
            )
        pred = pred - pred[..., root_index, :].unsqueeze(-2)
        gt = gt - gt[..., root_index, :].unsqueeze(-2)
    return _joint_errors_mean(pred, gt)


def procrustes_align(pred: Tensor, gt: Tensor) -> Tensor:
    """Similarity-align ``pred`` to ``gt``: the ``s, R, t`` minimizing ``‖s·pred·R + t − gt‖²``.

    ``R`` is a proper rotation (``det R = +1``; reflections are not allowed), ``s > 0`` a scale
    and ``t`` a translation (Umeyama 1991). The SVD is computed in float64 internally.

    Args:
        pred: ``[..., J, 3]`` joints to align.
        gt: ``[..., J, 3]`` target joints.

    Returns:
        ``[..., J, 3]`` aligned ``pred`` in the dtype of ``pred``.
    """
    pred, gt = _check_pair(pred, gt)
    return _procrustes_align64(pred.to(torch.float64), gt.to(torch.float64)).to(pred.dtype)


def _procrustes_align64(x: Tensor, y: Tensor) -> Tensor:
    mu_x = x.mean(dim=-2, keepdim=True)
    mu_y = y.mean(dim=-2, keepdim=True)
    x0 = x - mu_x
    y0 = y - mu_y
    # Cross-covariance H = X0ᵀ Y0 = U S Vᵀ; the best rotation is U D Vᵀ with
    # D = diag(1, 1, sign det(U Vᵀ)) so that det R = +1.
    h = x0.transpose(-1, -2) @ y0
    u, s, vh = torch.linalg.svd(h)
    d = torch.ones_like(s)
    d[..., -1] = torch.where(torch.linalg.det(u @ vh) < 0, -1.0, 1.0)
    r = u @ (d.unsqueeze(-1) * vh)
    var_x = (x0**2).sum(dim=(-1, -2))
    # A degenerate pred (all joints at one point) gets scale 0: it is moved to gt's centroid.
    scale = (d * s).sum(dim=-1) / var_x.clamp_min(1e-12)
    return scale[..., None, None] * (x0 @ r) + mu_y


def pa_mpjpe(pred: Tensor, gt: Tensor) -> Tensor:
    """Procrustes-aligned MPJPE: :func:`mpjpe` after :func:`procrustes_align`.

    Args:
        pred: ``[..., J, 3]`` (mm).
        gt: ``[..., J, 3]`` (mm).

    Returns:
        ``[...]`` per-example error (mm).
    """
    pred, gt = _check_pair(pred, gt)
    y = gt.to(torch.float64)
    aligned = _procrustes_align64(pred.to(torch.float64), y)
    return _joint_errors_mean(aligned, y).to(pred.dtype)


def min_of_n(errors: Tensor) -> Tensor:
    """Best-of-n error: ``[B, n]`` per-sample errors → ``[B]`` minimum over the samples."""
    check_tensor("errors", errors, ("B", "n"))
    if errors.shape[1] == 0:
        raise ValueError("errors: expected at least one sample (n >= 1), got n = 0")
    return errors.min(dim=1).values


def min_of_n_mpjpe(
    samples: Tensor,
    gt: Tensor,
    ns: Sequence[int] = (1, 5, 10, 25, 100),
    metric: str = "mpjpe",
    root_index: int | None = 0,
) -> dict[int, float]:
    """Batch-averaged min-of-n error for several ``n``.

    For each ``n`` the first ``n`` samples are used: samples are drawn i.i.d., so the first
    ``n`` form a valid ``n``-sample draw.

    Args:
        samples: ``[B, N, J, 3]`` samples per example (mm), ``N >= max(ns)``.
        gt: ``[B, J, 3]`` ground truth (mm).
        ns: sample counts to report.
        metric: ``"mpjpe"`` (root-aligned at ``root_index``) or ``"pa_mpjpe"``.
        root_index: root joint for ``"mpjpe"``.

    Returns:
        ``{n: mean over the batch of the min over the first n samples}`` (mm).
    """
    check_tensor("samples", samples, ("B", "N", "J", 3))
    check_tensor("gt", gt, (samples.shape[0], samples.shape[2], 3))
    if metric not in ("mpjpe", "pa_mpjpe"):
        raise ValueError(f"metric: expected 'mpjpe' or 'pa_mpjpe', got {metric!r}")
    ns = list(ns)
    if not ns or any(isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in ns):
        raise ValueError(f"ns: expected a non-empty sequence of integers >= 1, got {ns!r}")
    if max(ns) > samples.shape[1]:
        raise ValueError(f"ns: largest n = {max(ns)} exceeds the {samples.shape[1]} samples given")
    num_used = max(ns)
    used = samples[:, :num_used]
    target = gt.unsqueeze(1).expand_as(used)
    if metric == "mpjpe":
        errors = mpjpe(used, target, root_index=root_index)
    else:
        errors = pa_mpjpe(used, target)
    return {n: float(min_of_n(errors[:, :n]).mean()) for n in ns}
