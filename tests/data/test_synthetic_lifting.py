"""The synthetic lifting sets: the cameras do not depend on the poses, and the multi-view set
is one world skeleton seen by calibrated cameras."""

import numpy as np
import pytest
import torch
from scipy.stats import chi2_contingency

from condflow.data.synthetic_lifting import (
    LiftingSetConfig,
    draw_lifting_scenes,
    make_lifting_set,
    make_multiview_lifting_set,
    scene_rng,
)


def _azimuth_deg(rotation: np.ndarray) -> np.ndarray:
    """Azimuth of each look-at camera's position around the origin (its forward axis
    points back at it)."""
    forward = rotation[:, 2]
    return np.degrees(np.arctan2(-forward[:, 0], -forward[:, 2])) % 360.0


def test_camera_azimuth_is_independent_of_the_pose_family(body):
    # Drawn from the pose generator's own stream, each family was seen from one 60° sector
    # only: the camera direction could be read off the pose.
    cfg = LiftingSetConfig(size=3000, seed=0)
    scenes = draw_lifting_scenes(cfg, body, scene_rng(cfg))
    sector = (_azimuth_deg(scenes.cameras.rotation) // 60).astype(int)
    family = scenes.poses.family.numpy()
    table = np.zeros((family.max() + 1, 6))
    np.add.at(table, (family, sector), 1)
    assert (table > 0).all(), table
    assert chi2_contingency(table).pvalue > 1e-3, table


def test_multiview_set_is_one_world_skeleton_in_calibrated_views(body):
    cfg = LiftingSetConfig(size=6, seed=4, noise_px=0.0, joint_dropout=0.0, limb_dropout=0.0)
    views = make_multiview_lifting_set(cfg, 4, body)
    assert views["keypoints_2d"].shape == (6, 4, 16, 3)
    rot = views["rotation"].double()
    torch.testing.assert_close(rot @ rot.transpose(-1, -2), torch.eye(3).expand(6, 4, 3, 3)
                               .double(), atol=1e-6, rtol=0)
    seen = torch.einsum("pvij,pkj->pvki", views["rotation"], views["joints_world"])
    torch.testing.assert_close(seen, views["joints_3d"], atol=1e-3, rtol=0)  # mm
    # Evenly spaced azimuths around each person.
    az = _azimuth_deg(views["rotation"].reshape(-1, 3, 3).double().numpy()).reshape(6, 4)
    gaps = np.diff(np.sort(az, 1), axis=1)
    np.testing.assert_allclose(gaps, 90.0, atol=1e-3)
    # One view is the single-view set's kind: the same bodies, root-relative camera frame.
    single = make_lifting_set(LiftingSetConfig(size=6, seed=4), body)
    lengths = lambda j: (j[..., 1:, :] - j[..., :1, :]).norm(dim=-1)  # noqa: E731
    torch.testing.assert_close(lengths(views["joints_3d"][:, 0]), lengths(single["joints_3d"]),
                               atol=1e-3, rtol=0)


def test_multiview_set_refuses_zero_views(body):
    with pytest.raises(ValueError, match="views"):
        make_multiview_lifting_set(LiftingSetConfig(size=2), 0, body)
