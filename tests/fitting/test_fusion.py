"""Rotation averaging: projection to SO(3), chordal means."""

import pytest
import torch
from scipy.spatial.transform import Rotation

from condflow.fitting.fusion import average_rotations, project_to_rotation


def random_rotations(*shape: int, seed: int = 0) -> torch.Tensor:
    n = int(torch.Size(shape).numel())
    return torch.as_tensor(Rotation.random(n, random_state=seed).as_matrix()).reshape(
        *shape, 3, 3)


def test_identical_rotations_average_to_themselves():
    r = random_rotations(5)
    views = r[:, None].expand(5, 4, 3, 3)
    assert torch.allclose(average_rotations(views), r, atol=1e-12)
    assert torch.allclose(average_rotations(views.float()), r.float(), atol=1e-6)


def test_random_inputs_give_proper_rotations():
    r = random_rotations(20, 3, seed=1)
    mean = average_rotations(r)
    eye = torch.eye(3, dtype=torch.float64)
    assert torch.allclose(mean @ mean.transpose(-1, -2), eye.expand(20, 3, 3), atol=1e-10)
    assert torch.allclose(torch.linalg.det(mean), torch.ones(20, dtype=torch.float64))
    # Arbitrary matrices, including reflections, also project to proper rotations.
    m = torch.randn(50, 3, 3, dtype=torch.float64)
    m[:25] = -random_rotations(25, seed=2)  # det −1
    p = project_to_rotation(m)
    assert torch.allclose(torch.linalg.det(p), torch.ones(50, dtype=torch.float64))
    assert torch.allclose(p @ p.transpose(-1, -2), eye.expand(50, 3, 3), atol=1e-10)


def test_two_rotations_about_one_axis_average_to_the_middle():
    angles = torch.tensor([[0.2, 1.0], [-0.7, 0.3]], dtype=torch.float64)
    rots = torch.as_tensor(Rotation.from_euler("z", angles.reshape(-1, 1)).as_matrix()).reshape(
        2, 2, 3, 3)
    expected = torch.as_tensor(Rotation.from_euler("z", angles.mean(1)[:, None]).as_matrix())
    assert torch.allclose(average_rotations(rots), expected, atol=1e-12)
    weighted = average_rotations(rots, torch.tensor([[1.0, 0.0], [0.0, 2.0]],
                                                    dtype=torch.float64))
    assert torch.allclose(weighted, rots[[0, 1], [0, 1]], atol=1e-12)


def test_projection_is_the_nearest_rotation():
    r = random_rotations(1, seed=3)[0]
    noisy = r + 0.05 * torch.randn(3, 3, dtype=torch.float64)
    p = project_to_rotation(noisy)
    for other in random_rotations(200, seed=4):
        assert (noisy - p).norm() <= (noisy - other).norm() + 1e-12


def test_errors():
    with pytest.raises(ValueError, match="rotations"):
        average_rotations(torch.randn(4, 3))
    with pytest.raises(ValueError, match="weights"):
        average_rotations(random_rotations(2, 3), torch.ones(3))
