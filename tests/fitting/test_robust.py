"""Geman–McClure penalty and the confidence-weighted keypoint energy."""

import torch

from condflow.fitting.robust import geman_mcclure, keypoint_energy


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
