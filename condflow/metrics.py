"""3D pose metrics: MPJPE, PA-MPJPE, min-of-n over samples, and what the uncertainty of a
probabilistic model is worth (rank correlation of predicted spread with error, calibration
of per-joint sample regions); the 14 evaluation joints of SPIN/ProHMR and the mean-pose
baseline.

All error functions take and return millimetres and accept any leading batch dimensions
before the ``[J, 3]`` joint axes.

**Min-of-n** (the paper's "min", ProHMR's ``eval_regression.py`` with its default
``--num_samples 4096``): for each example, the error of the best of its first n samples;
the reported number is the mean of that minimum over the examples.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from condflow._checks import check_positive_int, check_tensor, check_trailing, is_int_at_least
from condflow.joints import H36M_TO_J14, J14_HIPS
from condflow.spaces.rotations import average_rotations, project_to_rotation

__all__ = [
    "CALIBRATION_LEVELS",
    "j14_joints",
    "mean_pose",
    "min_of_n",
    "min_of_n_mpjpe",
    "mpjpe",
    "pa_mpjpe",
    "procrustes_align",
    "rank",
    "region_coverage",
    "sample_errors",
    "sample_spread",
    "spearman",
]

#: The nominal levels q of :func:`region_coverage`.
CALIBRATION_LEVELS: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


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
    # The best rotation is the proper rotation nearest to the cross-covariance H = X0ᵀ Y0,
    # U D Vᵀ from H = U S Vᵀ; the best scale is tr(D S) / ‖X0‖².
    h = x0.transpose(-1, -2) @ y0
    r, signed_s = project_to_rotation(h, return_singular_values=True)
    var_x = (x0**2).sum(dim=(-1, -2))
    # A degenerate pred (all joints at one point) gets scale 0: it is moved to gt's centroid.
    scale = signed_s.sum(dim=-1) / var_x.clamp_min(1e-12)
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
    if not ns or not all(is_int_at_least(n, 1) for n in ns):
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


def sample_errors(
    draw: Callable[[int], Tensor],
    gt: Tensor,
    num_samples: int,
    metrics: Sequence[str] = ("mpjpe", "pa_mpjpe"),
    root_index: int | None = 0,
    chunk: int = 64,
) -> dict[str, Tensor]:
    """Per-sample errors of ``num_samples`` samples, drawn and scored ``chunk`` at a time so
    that memory stays bounded however large ``num_samples`` is (e.g. 4096).

    Args:
        draw: ``draw(k)`` returns ``k`` new samples per example, ``[B, k, J, 3]`` (mm).
        gt: ``[B, J, 3]`` ground truth (mm).
        num_samples: N, the total number of samples.
        metrics: any of ``"mpjpe"`` (root-aligned at ``root_index``) and ``"pa_mpjpe"``.
        chunk: samples per draw.

    Returns:
        ``{metric: [B, N] errors}`` (mm), samples in the order drawn, so ``[:, :n]`` is an
        n-sample draw for :func:`min_of_n`.
    """
    check_tensor("gt", gt, ("B", "J", 3))
    check_positive_int("num_samples", num_samples)
    check_positive_int("chunk", chunk)
    unknown = [m for m in metrics if m not in ("mpjpe", "pa_mpjpe")]
    if unknown or not metrics:
        raise ValueError(f"metrics: expected some of 'mpjpe', 'pa_mpjpe', got {list(metrics)}")
    parts: dict[str, list[Tensor]] = {m: [] for m in metrics}
    done = 0
    while done < num_samples:
        k = min(chunk, num_samples - done)
        samples = draw(k)
        check_tensor("draw(k)", samples, (gt.shape[0], k, gt.shape[1], 3))
        target = gt.unsqueeze(1).expand_as(samples)
        for m in metrics:
            err = mpjpe(samples, target, root_index) if m == "mpjpe" else pa_mpjpe(samples, target)
            parts[m].append(err)
        done += k
    return {m: torch.cat(v, dim=1) for m, v in parts.items()}


def sample_spread(samples: Tensor, center: Tensor) -> Tensor:
    """Predicted spread: mean distance of the samples' joints from ``center``'s.

    Args:
        samples: ``[B, N, J, 3]`` (mm); center: ``[B, J, 3]`` (mm), e.g. the mode.

    Returns:
        ``[B]`` mean over samples and joints of ``‖sample_j − center_j‖`` (mm).
    """
    check_tensor("samples", samples, ("B", "N", "J", 3))
    check_tensor("center", center, (samples.shape[0], samples.shape[2], 3))
    return (samples - center.unsqueeze(1)).norm(dim=-1).mean((1, 2))


def rank(values: Tensor) -> Tensor:
    """Ranks ``0 .. N-1`` of a ``[N]`` tensor (float64), ties given their average rank."""
    check_tensor("values", values, ("N",))
    order = values.argsort()
    sorted_values = values[order]
    _, inverse, counts = torch.unique_consecutive(
        sorted_values, return_inverse=True, return_counts=True
    )
    ends = counts.cumsum(0).to(torch.float64)
    mean_rank = ends - (counts.to(torch.float64) + 1) / 2  # average of the tied positions
    ranks = torch.empty_like(mean_rank[inverse])
    ranks[order] = mean_rank[inverse]
    return ranks


def spearman(a: Tensor, b: Tensor) -> float:
    """Spearman rank correlation of two ``[N]`` tensors (Pearson correlation of their ranks,
    ties averaged). ``nan`` when either is constant: a constant predictor ranks nothing."""
    check_tensor("a", a, ("N",))
    check_tensor("b", b, (a.shape[0],))
    if a.shape[0] < 2:
        raise ValueError(f"a: expected at least 2 values, got {a.shape[0]}")
    ra, rb = rank(a), rank(b)
    ra, rb = ra - ra.mean(), rb - rb.mean()
    denom = float(ra.norm() * rb.norm())
    return float((ra * rb).sum()) / denom if denom > 0 else float("nan")


def region_coverage(
    samples: Tensor, gt: Tensor, levels: Sequence[float] = CALIBRATION_LEVELS
) -> Tensor:
    """Calibration of per-joint sample regions.

    For each example and joint, the q-region is the ball around the samples' mean position
    of that joint whose radius is the q-quantile of the samples' distances from it (it holds
    a fraction q of the samples). The coverage at q is the fraction of ground-truth joints
    inside their q-region; a calibrated model has coverage ≈ q (below: over-confident,
    above: under-confident).

    Args:
        samples: ``[B, N, J, 3]`` (mm), N ≥ 2; gt: ``[B, J, 3]`` (mm). Joints that are fixed
            by construction (e.g. a root at the origin) should be left out: their region is
            a point that always contains the ground truth.
        levels: nominal levels q in (0, 1).

    Returns:
        ``[len(levels)]`` coverage per level (float64), over all examples and joints.
    """
    check_tensor("samples", samples, ("B", "N", "J", 3))
    check_tensor("gt", gt, (samples.shape[0], samples.shape[2], 3))
    if samples.shape[1] < 2:
        raise ValueError(f"samples: expected at least 2 samples per example, got "
                         f"{samples.shape[1]}")
    q = torch.as_tensor(list(levels), dtype=torch.float64)
    if q.dim() != 1 or q.numel() == 0 or not bool(((q > 0) & (q < 1)).all()):
        raise ValueError(f"levels: expected a non-empty sequence of numbers in (0, 1), got "
                         f"{list(levels)!r}")
    x = samples.to(torch.float64)
    center = x.mean(1)  # [B, J, 3]
    radii = torch.quantile((x - center.unsqueeze(1)).norm(dim=-1), q, dim=1)  # [L, B, J]
    distance = (gt.to(torch.float64) - center).norm(dim=-1)  # [B, J]
    return (distance.unsqueeze(0) <= radii).to(torch.float64).mean((1, 2))


def j14_joints(eval_joints: Tensor) -> Tensor:
    """The 14 LSP evaluation joints of SPIN/ProHMR, in millimetres relative to the mid-hip.

    Args:
        eval_joints: ``[..., 17, 3]`` Human3.6M joints (:data:`condflow.joints.H36M_JOINT_NAMES`
            order) in metres, e.g. the body model's evaluation joints.

    Returns:
        ``[..., 14, 3]`` the joints :data:`condflow.joints.H36M_TO_J14` in millimetres, minus
        the mean of the two hips (:data:`condflow.joints.J14_HIPS`).
    """
    check_trailing("eval_joints", eval_joints, (17, 3), finite=False)
    joints = eval_joints[..., list(H36M_TO_J14), :] * 1000.0
    return joints - joints[..., list(J14_HIPS), :].mean(-2, keepdim=True)


def mean_pose(body_pose: Tensor, betas: Tensor) -> tuple[Tensor, Tensor]:
    """The mean-pose baseline's body: each joint's chordal mean rotation and the mean shape.

    The per-joint mean rotation matrix is projected back to SO(3)
    (:func:`condflow.spaces.rotations.average_rotations`): the rotation minimizing the sum of
    squared Frobenius distances to the examples' rotations of that joint.

    Args:
        body_pose: ``[N, J, 3, 3]`` rotation matrices of the N examples' joints (for SMPL's
            body pose J = 23: every joint but the root); pass float64 for a large N.
        betas: ``[N, 10]`` shape coefficients (any trailing size) of the same examples.

    Returns:
        ``([J, 3, 3], [10])``: the mean rotations and the mean shape, in the inputs' dtypes.
    """
    check_tensor("body_pose", body_pose, ("N", "J", 3, 3))
    check_tensor("betas", betas, (body_pose.shape[0], "D"))
    if body_pose.shape[0] == 0:
        raise ValueError("body_pose: expected at least one example, got N = 0")
    return average_rotations(body_pose.transpose(0, 1)), betas.mean(0)
