"""Robust keypoint reprojection energy: the Geman–McClure penalty weighted by confidences."""

from __future__ import annotations

from torch import Tensor

from condflow._checks import check_tensor

__all__ = ["check_keypoints", "geman_mcclure", "keypoint_energy"]


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


def check_keypoints(name: str, keypoints: object, num_keypoints: int | None = None) -> Tensor:
    """Validate observed keypoints ``[B, K, 3]`` (x, y, confidence ≥ 0) at an entry point."""
    x = check_tensor(name, keypoints, ("B", num_keypoints, 3))
    if bool((x[..., 2] < 0).any()):
        raise ValueError(f"{name}: confidences (last channel) must be >= 0")
    return x
