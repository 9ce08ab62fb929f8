"""Geman–McClure penalty and the confidence-weighted keypoint energy."""

import torch

from condflow.fitting.robust import geman_mcclure, keypoint_energy, keypoint_residuals


def test_geman_mcclure_hand_values():
    r2 = torch.tensor([0.0, 1e-8, 4.0, 1e6])
    rho = geman_mcclure(r2, sigma=2.0)
    assert rho[0] == 0
    assert torch.isclose(rho[1], torch.tensor(1e-8), rtol=1e-6)  # quadratic near 0
    assert torch.isclose(rho[2], torch.tensor(2.0))  # r = σ: σ²/2
    assert rho[3] < 4.0 and torch.isclose(rho[3], torch.tensor(4.0), rtol=1e-4)  # bounded by σ²


def test_keypoint_energy_weights_by_confidence_and_ignores_unobserved():
    projected = torch.zeros(1, 3, 2)
    observed = torch.tensor([[[3.0, 4.0, 1.0], [1.0, 0.0, 0.5], [1e6, -1e6, 0.0]]])
    plain = keypoint_energy(projected, observed)
    assert torch.allclose(plain, torch.tensor([25.0 + 0.5]))
    robust = keypoint_energy(projected, observed, sigma=1.0)
    assert torch.allclose(robust, torch.tensor([25 / 26 + 0.5 * 0.5]))
    projected.requires_grad_(True)
    keypoint_energy(projected, observed, sigma=1.0).sum().backward()
    assert torch.equal(projected.grad[0, 2], torch.zeros(2))
    assert (projected.grad[0, 0] != 0).all()


def test_keypoint_residuals_square_to_the_energy_and_ignore_unobserved():
    g = torch.Generator().manual_seed(0)
    projected = torch.randn(2, 4, 2, generator=g, dtype=torch.float64).requires_grad_(True)
    observed = torch.rand(2, 4, 3, generator=g, dtype=torch.float64)
    observed[0, 1] = torch.tensor([1e6, -1e6, 0.0])
    for sigma in (None, 0.3):
        r = keypoint_residuals(projected, observed, sigma)
        assert r.shape == (2, 8)
        energy = keypoint_energy(projected, observed, sigma)
        torch.testing.assert_close(r.pow(2).sum(1), energy, rtol=1e-12, atol=0)
        assert torch.equal(r[0, 2:4], torch.zeros(2, dtype=torch.float64))
        (grad,) = torch.autograd.grad(r.pow(2).sum(), projected)
        (ref,) = torch.autograd.grad(energy.sum(), projected)
        torch.testing.assert_close(grad, ref, rtol=1e-12, atol=1e-15)
        assert torch.equal(grad[0, 1], torch.zeros(2, dtype=torch.float64))
    # Smooth at a zero residual: finite derivatives there.
    at = observed[..., :2].clone().requires_grad_(True)
    (g0,) = torch.autograd.grad(keypoint_residuals(at, observed, 0.3).sum(), at)
    assert torch.isfinite(g0).all()
