import numpy as np
import pytest
import torch

from condflow.body.camera import (
    backproject_pixels,
    look_at_cameras,
    normalized_to_pixels,
    perspective_projection,
    pinhole_translation,
    pixels_to_normalized,
    project_to_crop,
    weak_perspective_to_translation,
)

F64 = torch.float64


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_weak_perspective_to_translation_hand_worked():
    cam = torch.tensor([[0.9, 0.1, -0.2], [2.0, 0.0, 0.0]], dtype=F64)
    t = weak_perspective_to_translation(cam, focal_length=5000.0, img_res=224)
    expected = torch.tensor([[0.1, -0.2, 10000 / (224 * 0.9)], [0.0, 0.0, 10000 / 448]],
                            dtype=F64)
    torch.testing.assert_close(t, expected)
    assert torch.isfinite(weak_perspective_to_translation(torch.zeros(1, 3))).all()


def test_perspective_projection_hand_worked():
    points = torch.tensor([[[1.0, 2.0, 0.0], [0.0, 0.0, 5.0]]], dtype=F64)
    t = torch.tensor([[0.0, 0.0, 10.0]], dtype=F64)
    px = perspective_projection(points, t, focal_length=100.0,
                                camera_center=torch.tensor([[50.0, 60.0]], dtype=F64))
    torch.testing.assert_close(px, torch.tensor([[[60.0, 80.0], [50.0, 60.0]]], dtype=F64))
    # A rotation of 90 degrees about z maps x to y.
    rz = torch.tensor([[[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]], dtype=F64)
    px_r = perspective_projection(points[:, :1], t, focal_length=torch.tensor([[100.0, 50.0]],
                                  dtype=F64), rotation=rz)
    torch.testing.assert_close(px_r, torch.tensor([[[-20.0, 5.0]]], dtype=F64))


def test_projection_and_backprojection_round_trip():
    points = torch.randn(4, 10, 3, generator=_gen(0), dtype=F64)
    t = torch.tensor([0.1, -0.3, 20.0], dtype=F64).expand(4, 3)
    f = torch.tensor([900.0, 1100.0], dtype=F64).expand(4, 2)
    c = torch.tensor([112.0, 100.0], dtype=F64).expand(4, 2)
    px = perspective_projection(points, t, f, camera_center=c)
    depth = (points + t[:, None])[..., 2]
    back = backproject_pixels(px, depth, f, camera_center=c)
    torch.testing.assert_close(back, points + t[:, None])


def test_normalized_coordinates_round_trip_and_corners():
    px = torch.tensor([[0.0, 0.0], [224.0, 112.0]])
    uv = pixels_to_normalized(px, 224)
    torch.testing.assert_close(uv, torch.tensor([[-1.0, -1.0], [1.0, 0.0]]))
    p = 224 * torch.rand(5, 7, 2, generator=_gen(1))
    torch.testing.assert_close(normalized_to_pixels(pixels_to_normalized(p, 224), 224), p)


def test_project_to_crop_is_weak_perspective_for_a_far_camera():
    points = 0.5 * torch.randn(3, 8, 3, generator=_gen(2), dtype=F64)
    cam = torch.tensor([[0.9, 0.05, -0.1], [1.2, 0.0, 0.2], [0.6, -0.3, 0.0]], dtype=F64)
    uv = project_to_crop(points, cam, focal_length=1e7, img_res=224)
    expected = cam[:, None, :1] * (points[..., :2] + cam[:, None, 1:])
    torch.testing.assert_close(uv, expected, atol=1e-4, rtol=0)
    # With ProHMR's focal length it stays close (depth ~ 50 m) but is perspective.
    uv_5000 = project_to_crop(points, cam, focal_length=5000.0, img_res=224)
    err = (uv_5000 - expected).abs().max()
    assert 1e-3 < err < 0.1


def test_project_to_crop_matches_explicit_pipeline_and_has_gradients():
    points = torch.randn(2, 5, 3, generator=_gen(3))
    cam = torch.tensor([[0.9, 0.1, 0.0], [1.1, -0.1, 0.2]], requires_grad=True)
    uv = project_to_crop(points, cam, 5000.0, 256)
    t = weak_perspective_to_translation(cam, 5000.0, 256)
    px = perspective_projection(points, t, 5000.0, camera_center=torch.tensor([128.0, 128.0]))
    torch.testing.assert_close(uv, pixels_to_normalized(px, 256))
    uv.sum().backward()
    assert torch.isfinite(cam.grad).all() and cam.grad.abs().sum() > 0


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="cam: expected shape"):
        weak_perspective_to_translation(torch.zeros(2, 2))
    with pytest.raises(ValueError, match="img_res"):
        weak_perspective_to_translation(torch.zeros(2, 3), img_res=0)
    with pytest.raises(ValueError, match="points: expected shape"):
        perspective_projection(torch.zeros(2, 5, 2), torch.zeros(2, 3))
    with pytest.raises(ValueError, match="focal_length"):
        perspective_projection(torch.zeros(2, 5, 3), torch.zeros(2, 3), focal_length=-1.0)
    with pytest.raises(ValueError, match="depth: expected shape"):
        backproject_pixels(torch.zeros(2, 5, 2), torch.ones(2, 4))


def test_pinhole_translation_recovers_the_translation():
    g = torch.Generator().manual_seed(0)
    points = torch.randn(5, 16, 3, generator=g, dtype=torch.float64) * 0.4
    transl = torch.tensor([[0.3, -0.1, 4.0]], dtype=torch.float64) + 0.5 * torch.rand(
        5, 3, generator=g, dtype=torch.float64)
    cam = points + transl[:, None]
    kp = torch.cat([1.7 * cam[..., :2] / cam[..., 2:], torch.ones(5, 16, 1, dtype=torch.float64)],
                   -1)
    kp[1, 3:, 2] = 0.0  # three visible joints still determine T
    kp[1, 3:, :2] = 123.0  # unobserved coordinates are ignored
    assert torch.allclose(pinhole_translation(points, kp, focal=1.7), transl, atol=1e-5)


def test_look_at_cameras_look_at_their_targets():
    cams = look_at_cameras(np.random.default_rng(0), 50, target_jitter_m=0.0)
    rot = cams.rotation
    np.testing.assert_allclose(rot @ rot.transpose(0, 2, 1), np.broadcast_to(np.eye(3), rot.shape),
                               atol=1e-12)
    np.testing.assert_allclose(np.linalg.det(rot), 1.0, atol=1e-12)
    # With no jitter every camera looks at the origin: it lies on the optical axis (x = y = 0)
    # at the camera's distance, and the world's up (+y) points up in the image (-y, OpenCV).
    origin = cams.to_camera(np.zeros((50, 1, 3)))[:, 0]
    distance = np.linalg.norm(cams.position, axis=-1)
    np.testing.assert_allclose(origin[:, :2], 0.0, atol=1e-12)
    np.testing.assert_allclose(origin[:, 2], distance, atol=1e-12)
    assert ((distance >= 3.5) & (distance <= 7.0)).all()
    up = cams.to_camera(np.array([[[0.0, 1.0, 0.0]]]).repeat(50, 0))[:, 0] - origin
    assert (up[:, 1] < 0).all()
