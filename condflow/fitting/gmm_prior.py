"""Gaussian-mixture priors for the generic-prior baselines, fitted by EM.

``fit_gmm`` is a small full-covariance EM (k-means++-style seeding, covariance regularization
``reg_covar · I`` as in scikit-learn); ``pose_prior`` fits one over the 69-d SMPL body pose
(axis-angle) to pose-generator samples, SMPLify-style, and caches it under the cache dir;
``skeleton_prior`` fits one over root-relative 3D skeletons (the training targets).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from condflow._checks import check_positive_int, check_tensor
from condflow._io import cache_path, cached_file
from condflow.body.poses import PoseGenerator

__all__ = ["GMMFit", "GaussianMixture", "fit_gmm", "pose_prior", "skeleton_prior"]


class GaussianMixture(nn.Module):
    """p(x) = Σ_k π_k N(x; μ_k, Σ_k) over ``[..., D]``.

    Stored as ``log_weights [K]``, ``means [K, D]`` and the Cholesky factors of the
    precisions ``precision_chol [K, D, D]`` (lower triangular L with Σ⁻¹ = L Lᵀ), all buffers
    (a fixed prior, saved in the ``state_dict``).
    """

    log_weights: Tensor
    means: Tensor
    precision_chol: Tensor

    def __init__(self, log_weights: Tensor, means: Tensor, precision_chol: Tensor) -> None:
        super().__init__()
        k, d = means.shape
        check_tensor("log_weights", log_weights, (k,))
        check_tensor("precision_chol", precision_chol, (k, d, d))
        self.register_buffer("log_weights", log_weights)
        self.register_buffer("means", means)
        self.register_buffer("precision_chol", precision_chol)

    @classmethod
    def from_covariances(cls, weights: Tensor, means: Tensor, covariances: Tensor
                         ) -> GaussianMixture:
        """From mixture weights ``[K]``, means ``[K, D]`` and covariances ``[K, D, D]``."""
        eye = torch.eye(means.shape[1], dtype=covariances.dtype, device=covariances.device)
        chol = torch.linalg.cholesky(covariances)  # Σ = C Cᵀ, Σ⁻¹ = C⁻ᵀ C⁻¹
        inv = torch.linalg.solve_triangular(chol, eye.expand_as(chol), upper=False)
        return cls(weights.log(), means, inv.transpose(-1, -2))

    @property
    def num_components(self) -> int:
        return int(self.means.shape[0])

    @property
    def dim(self) -> int:
        return int(self.means.shape[1])

    def component_log_prob(self, x: Tensor) -> Tensor:
        """log π_k + log N(x; μ_k, Σ_k): ``[..., D] -> [..., K]``."""
        diff = x[..., None, :] - self.means  # [..., K, D]
        y = torch.einsum("...kd,kde->...ke", diff, self.precision_chol)  # Lᵀ(x − μ) per k
        log_det = self.precision_chol.diagonal(dim1=-2, dim2=-1).log().sum(-1)  # ½ log|Σ⁻¹|
        log_norm = -0.5 * self.dim * math.log(2 * math.pi) + log_det
        return self.log_weights + log_norm - 0.5 * y.pow(2).sum(-1)

    def log_prob(self, x: Tensor) -> Tensor:
        """log p(x): ``[..., D] -> [...]``."""
        return torch.logsumexp(self.component_log_prob(x), dim=-1)

    def log_peak(self) -> Tensor:
        """max_k log π_k N(μ_k; μ_k, Σ_k): the highest component density (a scalar)."""
        return self.component_log_prob(self.means).diagonal().max()

    def forward(self, x: Tensor) -> Tensor:
        """The prior energy −log p(x) + :meth:`log_peak`: ``[..., D] -> [...]``.

        The constant offset makes the energy about ½ (squared Mahalanobis distance) near the
        strongest component instead of carrying a large normalizing constant, so relative
        stopping rules of fits measure changes of the energy, not of the constant.
        """
        return self.log_peak() - self.log_prob(x)


@dataclass
class GMMFit:
    """A fitted mixture and the mean log-likelihood of the data after each EM iteration."""

    gmm: GaussianMixture
    log_likelihood: list[float]


def _seed_means(x: Tensor, k: int, generator: torch.Generator) -> Tensor:
    """k-means++ seeding: each next mean drawn with probability ∝ squared distance."""
    n = x.shape[0]
    first = torch.randint(n, (1,), generator=generator)
    means = [x[first[0]]]
    d2 = (x - means[0]).pow(2).sum(1)
    for _ in range(1, k):
        probs = d2 / d2.sum() if d2.sum() > 0 else torch.full_like(d2, 1.0 / n)
        i = torch.multinomial(probs, 1, generator=generator)[0]
        means.append(x[i])
        d2 = torch.minimum(d2, (x - x[i]).pow(2).sum(1))
    return torch.stack(means)


def fit_gmm(
    data: Tensor,
    num_components: int = 8,
    iterations: int = 100,
    reg_covar: float = 1e-6,
    tol: float = 1e-6,
    seed: int = 0,
) -> GMMFit:
    """Fit a full-covariance Gaussian mixture to ``data [N, D]`` by EM (float64 inside).

    Initialization: k-means++ seeding, responsibilities by nearest mean, then M-step. Each
    covariance gets ``reg_covar · I`` added (keeps it positive definite when the data are
    degenerate, e.g. joints that rotate about one axis only). Stops when the mean
    log-likelihood improves by less than ``tol`` or after ``iterations``. EM never decreases
    the (regularized-M-step) likelihood; ``log_likelihood`` records it.
    """
    data = check_tensor("data", data, ("N", "D"))
    k = check_positive_int("num_components", num_components)
    check_positive_int("iterations", iterations)
    if data.shape[0] < k:
        raise ValueError(f"data: expected at least num_components = {k} rows, "
                         f"got {data.shape[0]}")
    if not reg_covar > 0:
        raise ValueError(f"reg_covar: expected a positive number, got {reg_covar!r}")
    x = data.detach().to(torch.float64)
    n, d = x.shape
    generator = torch.Generator().manual_seed(seed)
    means = _seed_means(x, k, generator)
    nearest = torch.cdist(x, means).argmin(1)
    resp = torch.nn.functional.one_hot(nearest, k).to(x.dtype)
    eye = torch.eye(d, dtype=x.dtype)
    history: list[float] = []
    gmm = None
    for _ in range(iterations):
        # M-step.
        nk = resp.sum(0) + 10 * torch.finfo(x.dtype).eps
        means = (resp.T @ x) / nk[:, None]
        diff = x[None] - means[:, None]  # [K, N, D]
        cov = (resp.T[..., None] * diff).transpose(1, 2) @ diff / nk[:, None, None]
        cov = cov + reg_covar * eye
        gmm = GaussianMixture.from_covariances(nk / n, means, cov)
        # E-step.
        log_r = gmm.component_log_prob(x)  # [N, K]
        log_px = torch.logsumexp(log_r, 1)
        resp = (log_r - log_px[:, None]).exp()
        history.append(float(log_px.mean()))
        if len(history) > 1 and abs(history[-1] - history[-2]) < tol:
            break
    assert gmm is not None
    return GMMFit(gmm.to(data.dtype), history)


def _cached_gmm(kind: str, key: dict, make: Callable[[], GaussianMixture]) -> GaussianMixture:
    def load(path: Path) -> GaussianMixture:
        state = torch.load(path, weights_only=True)
        return GaussianMixture(state["log_weights"], state["means"], state["precision_chol"])

    return cached_file(
        cache_path("priors", kind, key, ".pt"),
        make,
        load,
        lambda gmm, f: torch.save(dict(gmm.state_dict()), f),
    )


def pose_prior(
    num_components: int = 8,
    num_samples: int = 20000,
    seed: int = 0,
    reg_covar: float = 1e-3,
    cache: bool = True,
) -> GaussianMixture:
    """SMPLify-style pose prior: a GMM over the 69-d SMPL body pose (axis-angle, the 23 joints
    after the root) fitted to ``num_samples`` pose-generator samples; cached under
    ``<cache>/priors/``. ``reg_covar`` (rad²) keeps the single-axis joints (knees, elbows)
    from collapsing to zero variance off their axis."""
    def make() -> GaussianMixture:
        poses = PoseGenerator(seed=seed, random_orient=False).sample(num_samples)
        return fit_gmm(poses.body_pose.reshape(num_samples, 69), num_components,
                       reg_covar=reg_covar, seed=seed).gmm

    key = {"version": 1, "components": num_components, "samples": num_samples, "seed": seed,
           "reg_covar": reg_covar}
    return _cached_gmm("smpl-pose-gmm", key, make) if cache else make()


def skeleton_prior(skeletons: Tensor, num_components: int = 1, reg_covar: float = 1e-6,
                   seed: int = 0) -> GaussianMixture:
    """A GMM (default a single Gaussian) over skeleton features ``[N, D]`` (e.g. the training
    targets' root-relative joints in metres, flattened)."""
    return fit_gmm(skeletons, num_components, reg_covar=reg_covar, seed=seed).gmm
