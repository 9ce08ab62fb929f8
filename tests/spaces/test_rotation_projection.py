"""Projection onto SO(3) and chordal means of rotations."""

import pytest
import torch
from scipy.spatial.transform import Rotation

from condflow.spaces.rotations import (
    average_rotations,
    axis_angle_to_matrix,
    matrix_to_axis_angle,
    project_to_rotation,
    quaternion_to_matrix,
)


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


# The three projections that project_to_rotation replaced (fusion, the mean-pose baseline,
# Procrustes alignment), kept verbatim as references.
def _fusion_projection(matrix):
    u, _, vh = torch.linalg.svd(matrix)
    det = torch.linalg.det(u @ vh)
    d = torch.ones_like(matrix[..., 0])
    d[..., 2] = torch.where(det < 0, -1.0, 1.0)
    return u @ (d[..., :, None] * vh)


def _mean_pose_projection(rot):
    u, _, vh = torch.linalg.svd(rot)
    det = torch.linalg.det(u @ vh)
    u = torch.cat([u[..., :2], u[..., 2:] * det[:, None, None]], -1)
    return u @ vh


def _procrustes_projection(h):
    u, s, vh = torch.linalg.svd(h)
    d = torch.ones_like(s)
    d[..., -1] = torch.where(torch.linalg.det(u @ vh) < 0, -1.0, 1.0)
    return u @ (d.unsqueeze(-1) * vh), d * s


def test_projection_agrees_with_the_implementations_it_replaced():
    gen = torch.Generator().manual_seed(5)
    m = torch.randn(200, 3, 3, dtype=torch.float64, generator=gen)  # about half det < 0
    near = random_rotations(100, seed=6) + 0.3 * torch.randn(100, 3, 3, dtype=torch.float64,
                                                             generator=gen)
    for x in (m, near):
        p, signed = project_to_rotation(x, return_singular_values=True)
        ref, ref_signed = _procrustes_projection(x)
        torch.testing.assert_close(p, ref, rtol=0, atol=1e-12)
        torch.testing.assert_close(signed, ref_signed, rtol=0, atol=1e-12)
        torch.testing.assert_close(p, _fusion_projection(x), rtol=0, atol=1e-12)
        torch.testing.assert_close(p, _mean_pose_projection(x), rtol=0, atol=1e-12)
    # float32 input: computed in float64, returned in float32, as accurate as float32 allows.
    p32 = project_to_rotation(m.float())
    assert p32.dtype == torch.float32
    torch.testing.assert_close(p32, project_to_rotation(m).float(), rtol=0, atol=1e-6)


def test_projection_of_a_known_polar_decomposition():
    r = random_rotations(4, seed=7)
    # M = R S with S positive definite: the nearest rotation is R, the singular values S's.
    s = torch.tensor([3.0, 2.0, 0.5], dtype=torch.float64)
    p, signed = project_to_rotation(r @ torch.diag(s), return_singular_values=True)
    torch.testing.assert_close(p, r, rtol=0, atol=1e-12)
    torch.testing.assert_close(signed, s.expand(4, 3), rtol=0, atol=1e-12)
    # M = R diag(3, 2, -1) (det < 0): the nearest rotation is still R (only the smallest
    # direction is flipped: tr(Rᵀ M) = 3 + 2 - 1 beats every other sign pattern), and the
    # signed singular values are (3, 2, -1).
    d = torch.tensor([3.0, 2.0, -1.0], dtype=torch.float64)
    p, signed = project_to_rotation(r @ torch.diag(d), return_singular_values=True)
    torch.testing.assert_close(p, r, rtol=0, atol=1e-12)
    torch.testing.assert_close(signed, d.expand(4, 3), rtol=0, atol=1e-12)


def test_projection_is_nearer_than_every_perturbation_for_det_negative_input():
    gen = torch.Generator().manual_seed(8)
    m = -random_rotations(1, seed=9)[0] + 0.2 * torch.randn(3, 3, dtype=torch.float64,
                                                            generator=gen)
    assert torch.linalg.det(m) < 0
    p, signed = project_to_rotation(m, return_singular_values=True)
    best = (m - p).norm()
    # tr(Rᵀ M) is maximal at R = P, and its maximum is the sum of the signed singular values.
    torch.testing.assert_close((p * m).sum(), signed.sum(), rtol=0, atol=1e-12)
    for scale in (1e-3, 1e-1, 1.0):
        omega = scale * torch.randn(500, 3, dtype=torch.float64, generator=gen)
        others = axis_angle_to_matrix(omega) @ p
        assert bool(((m - others).flatten(1).norm(dim=1) >= best - 1e-12).all())
    others = random_rotations(2000, seed=10)
    assert bool(((m - others).flatten(1).norm(dim=1) >= best - 1e-12).all())


def test_projection_rejects_a_wrong_shape():
    with pytest.raises(ValueError, match=r"matrix: expected shape \[\.\.\., 3, 3\]"):
        project_to_rotation(torch.randn(4, 3))


def test_quaternion_to_matrix_matches_scipy_for_any_scale_and_sign():
    rot = Rotation.random(50, random_state=11)
    xyzw = torch.as_tensor(rot.as_quat())
    wxyz = torch.cat([xyzw[:, 3:], xyzw[:, :3]], 1)
    expected = torch.as_tensor(rot.as_matrix())
    for q in (wxyz, 3.0 * wxyz, -wxyz):
        torch.testing.assert_close(quaternion_to_matrix(q), expected, rtol=0, atol=1e-12)
    # Round trip through the matrix → axis-angle → matrix conversions.
    back = axis_angle_to_matrix(matrix_to_axis_angle(quaternion_to_matrix(wxyz)))
    torch.testing.assert_close(back, expected, rtol=0, atol=1e-10)
    with pytest.raises(ValueError, match="quaternion"):
        quaternion_to_matrix(torch.randn(2, 3))
