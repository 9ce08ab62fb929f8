"""Robust keypoint reprojection energy: the Geman–McClure penalty weighted by confidences."""

from __future__ import annotations

from torch import Tensor

from condflow._checks import check_tensor

__all__ = ["check_keypoints", "geman_mcclure", "keypoint_energy", "keypoint_residuals"]


def geman_mcclure(squared_residual: Tensor, sigma: float) -> Tensor:
    """ρ(r²) = σ² r² / (σ² + r²), elementwise on squared residuals ``[...]``.

    Quadratic (≈ r²) for residuals much smaller than ``sigma``, bounded by σ² for large ones,
    so a few wrong keypoints cannot dominate the fit (SMPLify's "GMoF").
    """
    s2 = float(sigma) ** 2
    return s2 * squared_residual / (s2 + squared_residual)


def keypoint_energy(
    projected: Tensor, observed: Tensor, sigma: float | None = None
) -> Tensor:
    """E_J = Σ_k w_k ρ(‖x̂_k − x_k‖²): the confidence-weighted robust 2D error per example.

    Args:
        projected: ``[B, K, 2]`` predicted 2D keypoints.
        observed: ``[B, K, 3]`` observed keypoints ``(x, y, confidence)``; confidence 0
            removes a keypoint (its coordinates are ignored, whatever they are).
        sigma: Geman–McClure scale in the units of the keypoints; ``None`` uses the plain
            squared error.

    Returns:
        ``[B]``.
    """
    conf = observed[..., 2]
    sq = (projected - observed[..., :2]).pow(2).sum(-1)
    if sigma is not None:
        sq = geman_mcclure(sq, sigma)
    # where(): an unobserved keypoint's (possibly huge) residual must not reach the gradient.
    return (conf * sq.where(conf > 0, sq.new_zeros(()))).sum(-1)


def keypoint_residuals(
    projected: Tensor, observed: Tensor, sigma: float | None = None
) -> Tensor:
    """Residuals ``[B, 2K]`` whose squared sum is :func:`keypoint_energy` exactly.

    With d_k = x̂_k − x_k and s_k = ‖d_k‖², keypoint k contributes the 2-vector

        r_k = √w_k ψ(s_k) d_k,   ψ(s) = √(ρ(s)/s) = σ / √(σ² + s)

    (ψ = 1 for ``sigma=None``), so ‖r_k‖² = w_k σ² s_k / (σ² + s_k) = w_k ρ(s_k): the
    Geman–McClure term as a sum of squares of smooth residuals (ψ is smooth in d_k, also at
    d_k = 0), for Gauss–Newton / Levenberg–Marquardt. Their Gauss–Newton curvature differs
    from IRLS's (weights ρ'(s) held fixed) for large residuals but agrees as s ≪ σ², and
    ∇E_J = 2 Jᵀr exactly. Unobserved keypoints (confidence 0) give zero residuals.
    """
    conf = observed[..., 2]
    seen = conf > 0
    # where(): an unobserved keypoint's (possibly huge) residual must not reach the gradient.
    diff = (projected - observed[..., :2]).where(seen[..., None], projected.new_zeros(()))
    weight = conf.where(seen, conf.new_zeros(())).sqrt()
    if sigma is not None:
        s2 = float(sigma) ** 2
        weight = weight * (s2 / (s2 + diff.pow(2).sum(-1))).sqrt()
    return (diff * weight[..., None]).flatten(1)


def check_keypoints(name: str, keypoints: object, num_keypoints: int | None = None) -> Tensor:
    """Validate observed keypoints ``[B, K, 3]`` (x, y, confidence ≥ 0) at an entry point."""
    x = check_tensor(name, keypoints, ("B", num_keypoints, 3))
    if bool((x[..., 2] < 0).any()):
        raise ValueError(f"{name}: confidences (last channel) must be >= 0")
    return x
