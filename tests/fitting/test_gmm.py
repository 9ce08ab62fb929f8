"""Gaussian-mixture EM and the cached priors."""

import numpy as np
import pytest
import torch
from scipy.stats import multivariate_normal

from condflow.fitting.gmm_prior import GaussianMixture, fit_gmm, pose_prior, skeleton_prior


def two_clusters(n: int = 400, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(n, 3, generator=g, dtype=torch.float64) * 0.3 + torch.tensor([4.0, 0, 0])
    b = torch.randn(n, 3, generator=g, dtype=torch.float64) @ torch.tensor(
        [[1.0, 0.5, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 0.2]], dtype=torch.float64) - 3.0
    return torch.cat([a, b])


def test_em_increases_the_likelihood():
    g = torch.Generator().manual_seed(2)
    centres = torch.tensor([[0.0, 0.0], [1.5, 0.5], [0.5, 2.0]], dtype=torch.float64)
    data = (centres[torch.randint(3, (600,), generator=g)]
            + 0.6 * torch.randn(600, 2, generator=g, dtype=torch.float64))
    fit = fit_gmm(data, num_components=4, iterations=40, tol=0.0)
    ll = np.array(fit.log_likelihood)
    assert len(ll) == 40 and (np.diff(ll) >= -1e-10).all() and ll[-1] > ll[0] + 0.01


def test_em_finds_separated_clusters():
    fit = fit_gmm(two_clusters(), num_components=2, iterations=50)
    means = fit.gmm.means[fit.gmm.means[:, 0].argsort()]
    assert torch.allclose(means, torch.tensor([[-3.0, -3.0, -3.0], [4.0, 0.0, 0.0]],
                                              dtype=torch.float64), atol=0.15)
    assert torch.allclose(fit.gmm.log_weights.exp(), torch.full((2,), 0.5,
                                                                dtype=torch.float64), atol=0.01)


def test_log_prob_matches_scipy():
    g = torch.Generator().manual_seed(1)
    weights = torch.tensor([0.2, 0.8], dtype=torch.float64)
    means = torch.randn(2, 4, generator=g, dtype=torch.float64)
    a = torch.randn(2, 4, 4, generator=g, dtype=torch.float64)
    cov = a @ a.transpose(1, 2) + 0.5 * torch.eye(4, dtype=torch.float64)
    gmm = GaussianMixture.from_covariances(weights, means, cov)
    x = torch.randn(7, 4, generator=g, dtype=torch.float64)
    expected = np.log(sum(float(w) * multivariate_normal(m.numpy(), c.numpy()).pdf(x.numpy())
                          for w, m, c in zip(weights, means, cov, strict=True)))
    assert np.allclose(gmm.log_prob(x).numpy(), expected, atol=1e-10)
    # The prior energy is −log p shifted by a constant, and ≥ about 0 near the components.
    assert torch.allclose(gmm(x) + gmm.log_prob(x), gmm.log_peak().expand(7))


def test_degenerate_data_stay_finite_with_regularization():
    data = torch.cat([torch.randn(100, 2), torch.zeros(100, 1)], 1)  # no variance along z
    gmm = skeleton_prior(data, num_components=1)
    assert torch.isfinite(gmm.log_prob(torch.tensor([[0.0, 0.0, 0.1]]))).all()


def test_pose_prior_is_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("CONDFLOW_CACHE_DIR", str(tmp_path))
    first = pose_prior(num_components=2, num_samples=300)
    files = list((tmp_path / "priors").glob("smpl-pose-gmm-*.pt"))
    assert len(files) == 1 and first.dim == 69 and first.num_components == 2
    again = pose_prior(num_components=2, num_samples=300)
    assert torch.equal(again.means, first.means)
    files[0].write_bytes(b"damaged")
    refitted = pose_prior(num_components=2, num_samples=300)
    assert torch.allclose(refitted.means, first.means)


def test_errors():
    with pytest.raises(ValueError, match="num_components"):
        fit_gmm(torch.randn(10, 2), num_components=0)
    with pytest.raises(ValueError, match="at least num_components"):
        fit_gmm(torch.randn(3, 2), num_components=5)
    with pytest.raises(ValueError, match="data"):
        fit_gmm(torch.tensor([[0.0, float("nan")]] * 10), num_components=1)
