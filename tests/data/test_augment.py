import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from condflow.data.augment import (
    SMPL_JOINT_FLIP_PERM,
    AugmentationParams,
    color_augment,
    crop_image,
    crop_pixels_to_normalized,
    flip_keypoints_2d,
    flip_keypoints_3d,
    flip_smpl_pose,
    normalized_to_crop_pixels,
    rotate_global_orient,
    sample_augmentation,
    transform_keypoints,
    transform_keypoints_3d,
    transform_smpl_pose,
    untransform_keypoints,
)

PERM5 = [0, 2, 1, 4, 3]  # toy left/right swap for 5 keypoints


def blob_image(h, w, x, y, sigma=1.5):
    jj, ii = np.meshgrid(np.arange(w), np.arange(h))
    img = 255.0 * np.exp(-((jj - x) ** 2 + (ii - y) ** 2) / (2 * sigma**2))
    return np.repeat(img[:, :, None], 3, axis=2).astype(np.uint8)


def peak(crop):
    g = crop[:, :, 0].astype(float)
    g = np.where(g > 0.3 * g.max(), g, 0.0)
    ii, jj = np.indices(g.shape)
    return np.array([(g * jj).sum(), (g * ii).sum()]) / g.sum()


@pytest.mark.parametrize("rot, flip", [(0.0, False), (0.0, True), (35.0, False), (-70.0, True),
                                       (180.0, True)])
def test_crop_and_keypoint_transform_agree(rot, flip):
    kp = np.array([[93.3, 61.7, 1.0]])
    img = blob_image(150, 180, kp[0, 0], kp[0, 1])
    center, scale, res = np.array([81.0, 70.0]), 0.6, 96
    crop = crop_image(img, center, scale, res, rot=rot, flip=flip)
    assert crop.shape == (res, res, 3) and crop.dtype == np.float32
    n = transform_keypoints(kp, center, scale, rot=rot, flip=flip, flip_perm=[0])
    expected = normalized_to_crop_pixels(n[0, :2], res)
    assert np.linalg.norm(peak(crop) - expected) < 1.0
    assert n[0, 2] == 1.0


def test_positive_rotation_turns_content_counter_clockwise():
    center = np.array([50.0, 50.0])
    right_of_centre = np.array([[70.0, 50.0]])
    n = transform_keypoints(right_of_centre, center, 0.4, rot=90.0)
    np.testing.assert_allclose(n, [[0.0, -0.5]], atol=1e-12)  # now above the centre


def test_identity_transform_and_box_corners():
    center, scale = np.array([40.0, 30.0]), 0.5
    corners = center + 100 * scale * np.array([[-1, -1], [1, 1], [1, -1]])
    n = transform_keypoints(np.vstack([center, corners]), center, scale)
    np.testing.assert_allclose(n, [[0, 0], [-1, -1], [1, 1], [1, -1]], atol=1e-12)
    rng = np.random.default_rng(0)
    pts = rng.uniform(-1, 1, (7, 2))
    back = transform_keypoints(untransform_keypoints(pts, center, scale), center, scale)
    np.testing.assert_allclose(back, pts, atol=1e-12)
    # with rotation too
    rot_back = transform_keypoints(untransform_keypoints(pts, center, scale, rot=23.0), center,
                                   scale, rot=23.0)
    np.testing.assert_allclose(rot_back, pts, atol=1e-12)


def test_crop_pixel_convention():
    assert normalized_to_crop_pixels(np.array(0.0), 64) == pytest.approx(31.5)
    np.testing.assert_allclose(crop_pixels_to_normalized(np.array([-0.5, 63.5]), 64), [-1, 1])
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (64, 64, 3)).astype(np.uint8)
    same = crop_image(img, (31.5, 31.5), 64 / 200, 64)
    np.testing.assert_allclose(same, img, atol=1e-3)
    mirrored = crop_image(img, (31.5, 31.5), 64 / 200, 64, flip=True)
    np.testing.assert_allclose(mirrored, img[:, ::-1], atol=1e-3)
    turned = crop_image(img, (31.5, 31.5), 64 / 200, 64, rot=90.0)
    np.testing.assert_allclose(turned, np.rot90(img), atol=1e-3)  # counter-clockwise


def test_flipping_twice_is_identity():
    rng = np.random.default_rng(1)
    kp = rng.normal(size=(5, 3))
    np.testing.assert_array_equal(flip_keypoints_2d(flip_keypoints_2d(kp, PERM5), PERM5), kp)
    kp3 = rng.normal(size=(5, 4))
    np.testing.assert_array_equal(flip_keypoints_3d(flip_keypoints_3d(kp3, PERM5), PERM5), kp3)
    pose = rng.normal(size=72)
    np.testing.assert_array_equal(flip_smpl_pose(flip_smpl_pose(pose)), pose)
    img_kp = rng.uniform(0, 100, (5, 3))
    flipped = transform_keypoints(img_kp, (50, 40), 0.4, rot=10, flip=True, flip_perm=PERM5)
    plain = transform_keypoints(img_kp, (50, 40), 0.4, rot=10)
    np.testing.assert_allclose(flip_keypoints_2d(flipped, PERM5), plain, atol=1e-12)
    np.testing.assert_allclose(flipped[1], [-plain[2, 0], plain[2, 1], plain[2, 2]])


def test_smpl_pose_flip_is_a_mirror():
    rng = np.random.default_rng(2)
    pose = rng.normal(scale=0.5, size=72)
    flipped = flip_smpl_pose(pose).reshape(24, 3)
    mirror = np.diag([-1.0, 1.0, 1.0])
    for j in range(24):
        src = pose.reshape(24, 3)[SMPL_JOINT_FLIP_PERM[j]]
        expected = mirror @ Rotation.from_rotvec(src).as_matrix() @ mirror
        np.testing.assert_allclose(Rotation.from_rotvec(flipped[j]).as_matrix(), expected,
                                   atol=1e-12)
    assert SMPL_JOINT_FLIP_PERM[1] == 2 and SMPL_JOINT_FLIP_PERM[16] == 17


def test_root_rotation_matches_3d_points_and_2d_projection():
    rng = np.random.default_rng(3)
    root = rng.normal(scale=0.7, size=3)
    rot = 37.0
    pts = rng.normal(scale=0.3, size=(5, 3))
    # rotating the root orientation turns the body's points like the 3D keypoints
    turned = Rotation.from_rotvec(rotate_global_orient(root, rot)).apply(pts)
    expected = transform_keypoints_3d(Rotation.from_rotvec(root).apply(pts), rot)
    np.testing.assert_allclose(turned, expected, atol=1e-12)
    # the pose transform only touches the root before flipping
    pose = np.concatenate([root, rng.normal(size=69)])
    out = transform_smpl_pose(pose, rot)
    np.testing.assert_allclose(out[3:], pose[3:])
    np.testing.assert_allclose(transform_smpl_pose(pose, rot, flip=True), flip_smpl_pose(out))
    # 3D transform then projection == projection then 2D transform (box centred on the axis)
    cam_pts = pts + [0.1, -0.2, 4.0]
    f, c, scale = 500.0, np.array([100.0, 120.0]), 1.0
    proj = f * cam_pts[:, :2] / cam_pts[:, 2:] + c
    moved = transform_keypoints_3d(cam_pts, rot, flip=True, flip_perm=PERM5)
    proj_moved = f * moved[:, :2] / moved[:, 2:] / (100 * scale)
    n = transform_keypoints(proj, c, scale, rot=rot, flip=True, flip_perm=PERM5)
    np.testing.assert_allclose(proj_moved, n, atol=1e-12)


def test_color_augment_scales_channels_and_clips():
    img = np.full((2, 2, 3), 200, dtype=np.uint8)
    out = color_augment(img, np.array([0.5, 1.0, 1.4]))
    np.testing.assert_allclose(out[0, 0], [100, 200, 255])
    with pytest.raises(ValueError, match="color"):
        color_augment(img, np.ones(2))


def test_sample_augmentation_ranges_and_reproducibility():
    draws = [sample_augmentation(np.random.default_rng(s), 0.3, 20.0, 0.5, 0.5, 0.2, 0.05)
             for s in range(300)]
    scales = np.array([d.scale for d in draws])
    rots = np.array([d.rot for d in draws])
    colors = np.stack([d.color for d in draws])
    trans = np.stack([d.translation for d in draws])
    assert scales.min() >= 0.7 and scales.max() <= 1.3 and scales.std() > 0.1
    assert np.abs(rots).max() <= 40.0 and 0.3 < (rots == 0).mean() < 0.7
    assert colors.min() >= 0.8 and colors.max() <= 1.2
    assert np.abs(trans).max() <= 0.05
    assert 0.35 < np.mean([d.flip for d in draws]) < 0.65
    a = sample_augmentation(np.random.default_rng(7))
    b = sample_augmentation(np.random.default_rng(7))
    assert (a.scale, a.rot, a.flip) == (b.scale, b.rot, b.flip)
    np.testing.assert_array_equal(a.color, b.color)
    never = sample_augmentation(np.random.default_rng(0), rot_prob=0.0, flip_prob=0.0)
    assert never.rot == 0.0 and not never.flip
    identity = AugmentationParams()
    assert identity.scale == 1.0 and identity.rot == 0.0 and not identity.flip


def test_bad_arguments_raise():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="flip_prob"):
        sample_augmentation(rng, flip_prob=1.5)
    with pytest.raises(ValueError, match="scale_factor"):
        sample_augmentation(rng, scale_factor=-0.1)
    with pytest.raises(ValueError, match="flip_perm"):
        transform_keypoints(np.zeros((5, 2)), (0, 0), 1.0, flip=True)
    with pytest.raises(ValueError, match="flip_perm"):
        flip_keypoints_2d(np.zeros((5, 2)), [0, 1, 1, 2, 3])
    with pytest.raises(ValueError, match="scale"):
        transform_keypoints(np.zeros((5, 2)), (0, 0), 0.0)
    with pytest.raises(ValueError, match="kp"):
        transform_keypoints(np.zeros((5, 4)), (0, 0), 1.0)
    with pytest.raises(ValueError, match="pose"):
        flip_smpl_pose(np.zeros(69))
    with pytest.raises(ValueError, match="img"):
        crop_image(np.zeros((4, 4)), (2, 2), 1.0, 8)
