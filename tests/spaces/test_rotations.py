import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from condflow.spaces.rotations import (
    axis_angle_to_matrix,
    matrix_to_axis_angle,
    matrix_to_rotation_6d,
    orthonormalize_6d,
    rotation_6d_to_matrix,
)


def _random_rotations(n: int, seed: int = 0) -> Rotation:
    return Rotation.random(n, random_state=seed)


def _rotvecs_with_angles(angles: np.ndarray, seed: int = 0) -> np.ndarray:
    axes = np.random.default_rng(seed).normal(size=(len(angles), 3))
    axes /= np.linalg.norm(axes, axis=1, keepdims=True)
    return axes * angles[:, None]


def _assert_proper_rotations(r: torch.Tensor, atol: float) -> None:
    eye = torch.eye(3, dtype=r.dtype).expand_as(r)
    torch.testing.assert_close(r.transpose(-1, -2) @ r, eye, atol=atol, rtol=0)
    torch.testing.assert_close(torch.linalg.det(r), torch.ones(r.shape[:-2], dtype=r.dtype),
                               atol=atol, rtol=0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_axis_angle_to_matrix_matches_scipy(dtype):
    rots = _random_rotations(500)
    aa = torch.tensor(rots.as_rotvec(), dtype=dtype)
    expected = torch.tensor(rots.as_matrix(), dtype=dtype)
    atol = 1e-6 if dtype == torch.float32 else 1e-12
    torch.testing.assert_close(axis_angle_to_matrix(aa), expected, atol=atol, rtol=0)


def test_axis_angle_to_matrix_small_and_zero_angles():
    angles = np.concatenate([[0.0], np.logspace(-12, -1, 40)])
    rv = _rotvecs_with_angles(angles, seed=1)
    out = axis_angle_to_matrix(torch.tensor(rv))
    torch.testing.assert_close(out, torch.tensor(Rotation.from_rotvec(rv).as_matrix()),
                               atol=1e-14, rtol=0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_matrix_to_axis_angle_matches_scipy(dtype):
    rots = _random_rotations(500, seed=2)
    out = matrix_to_axis_angle(torch.tensor(rots.as_matrix(), dtype=dtype))
    atol = 2e-5 if dtype == torch.float32 else 1e-10
    torch.testing.assert_close(out, torch.tensor(rots.as_rotvec(), dtype=dtype), atol=atol,
                               rtol=0)


def test_matrix_to_axis_angle_near_pi():
    angles = np.pi - np.array([1e-2, 1e-4, 1e-6, 1e-8])
    rv = _rotvecs_with_angles(angles, seed=3)
    mats = Rotation.from_rotvec(rv).as_matrix()
    out = matrix_to_axis_angle(torch.tensor(mats))
    torch.testing.assert_close(out, torch.tensor(Rotation.from_matrix(mats).as_rotvec()),
                               atol=1e-7, rtol=0)
    torch.testing.assert_close(out, torch.tensor(rv), atol=1e-7, rtol=0)


def test_matrix_to_axis_angle_exactly_pi_round_trips():
    # At pi the axis sign is arbitrary, but the rotation must come back.
    rv = _rotvecs_with_angles(np.full(50, np.pi), seed=4)
    rv[:3] = np.pi * np.eye(3)
    mats = torch.tensor(Rotation.from_rotvec(rv).as_matrix())
    aa = matrix_to_axis_angle(mats)
    torch.testing.assert_close(aa.norm(dim=-1), torch.full((50,), np.pi, dtype=aa.dtype))
    torch.testing.assert_close(axis_angle_to_matrix(aa), mats, atol=1e-12, rtol=0)


def test_matrix_to_axis_angle_near_zero():
    angles = np.concatenate([[0.0], np.logspace(-10, -2, 20)])
    rv = _rotvecs_with_angles(angles, seed=5)
    out = matrix_to_axis_angle(torch.tensor(Rotation.from_rotvec(rv).as_matrix()))
    torch.testing.assert_close(out, torch.tensor(rv), atol=1e-12, rtol=0)


def test_leading_dimensions_are_kept():
    aa = torch.randn(2, 3, 5, 3, generator=torch.Generator().manual_seed(0))
    r = axis_angle_to_matrix(aa)
    assert r.shape == (2, 3, 5, 3, 3)
    assert matrix_to_axis_angle(r).shape == (2, 3, 5, 3)
    assert matrix_to_rotation_6d(r).shape == (2, 3, 5, 6)
    assert rotation_6d_to_matrix(matrix_to_rotation_6d(r)).shape == (2, 3, 5, 3, 3)


def test_6d_layout_is_first_two_columns():
    r = torch.tensor(_random_rotations(1, seed=6).as_matrix())[0]
    x = matrix_to_rotation_6d(r)
    torch.testing.assert_close(x.reshape(3, 2), r[:, :2])
    torch.testing.assert_close(x[0::2], r[:, 0])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_6d_round_trip(dtype):
    r = torch.tensor(_random_rotations(300, seed=7).as_matrix(), dtype=dtype)
    atol = 1e-6 if dtype == torch.float32 else 1e-12
    back = rotation_6d_to_matrix(matrix_to_rotation_6d(r))
    assert back.dtype == dtype
    torch.testing.assert_close(back, r, atol=atol, rtol=0)


def test_6d_to_matrix_gives_proper_rotations_for_arbitrary_input():
    x = 3.0 * torch.randn(1000, 6, generator=torch.Generator().manual_seed(8))
    r = rotation_6d_to_matrix(x)
    _assert_proper_rotations(r, atol=1e-5)
    # The first column is the normalised first input column (Gram-Schmidt).
    a1 = x.reshape(-1, 3, 2)[..., 0]
    torch.testing.assert_close(r[..., 0], a1 / a1.norm(dim=-1, keepdim=True))


def test_6d_to_matrix_is_scale_invariant_per_column():
    x = torch.randn(10, 6, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    scaled = x.reshape(10, 3, 2) * torch.tensor([2.5, 0.1], dtype=torch.float64)
    torch.testing.assert_close(rotation_6d_to_matrix(scaled.reshape(10, 6)),
                               rotation_6d_to_matrix(x))


def test_zero_6d_input_is_finite_with_finite_gradient():
    x = torch.zeros(4, 6, requires_grad=True)
    r = rotation_6d_to_matrix(x)
    assert torch.isfinite(r).all()
    r.sum().backward()
    assert torch.isfinite(x.grad).all()


def test_orthonormalize_6d_is_a_projection():
    x = torch.randn(100, 6, generator=torch.Generator().manual_seed(10), dtype=torch.float64)
    y = orthonormalize_6d(x)
    cols = y.reshape(-1, 3, 2)
    torch.testing.assert_close(cols.transpose(-1, -2) @ cols,
                               torch.eye(2, dtype=torch.float64).expand(100, 2, 2))
    torch.testing.assert_close(orthonormalize_6d(y), y)
    assert (x - y).abs().max() > 0.1


def test_gradients_are_finite_at_zero_and_pi():
    aa = torch.zeros(3, 3, dtype=torch.float64)
    aa[1, 0] = np.pi
    aa[2] = torch.tensor([1e-9, -2e-9, 0.0])
    aa.requires_grad_(True)
    r = axis_angle_to_matrix(aa)
    back = matrix_to_axis_angle(r)
    (r.sum() + back.sum()).backward()
    assert torch.isfinite(aa.grad).all()

    mats = torch.eye(3, dtype=torch.float64).repeat(2, 1, 1).requires_grad_(True)
    matrix_to_axis_angle(mats).pow(2).sum().backward()
    assert torch.isfinite(mats.grad).all()


def test_axis_angle_gradcheck():
    aa = torch.tensor([[0.3, -0.2, 0.5], [1e-5, 2e-5, -1e-5], [2.0, 1.0, -0.5]],
                      dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(axis_angle_to_matrix, (aa,))
    r = axis_angle_to_matrix(aa.detach()).requires_grad_(True)
    assert torch.autograd.gradcheck(matrix_to_axis_angle, (r,))
    x = torch.randn(3, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(11))
    assert torch.autograd.gradcheck(rotation_6d_to_matrix, (x.requires_grad_(True),))


@pytest.mark.parametrize(
    ("fn", "arg", "shape"),
    [
        (rotation_6d_to_matrix, "x", (4, 5)),
        (matrix_to_rotation_6d, "matrix", (4, 3, 2)),
        (axis_angle_to_matrix, "axis_angle", (4, 4)),
        (matrix_to_axis_angle, "matrix", (4, 9)),
    ],
)
def test_wrong_trailing_shape_raises(fn, arg, shape):
    with pytest.raises(ValueError, match=arg):
        fn(torch.zeros(shape))
