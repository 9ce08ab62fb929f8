"""Skeleton targets of SMPL ground truth: per item (after augmentation) and for whole tables."""

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from condflow.body.keypoints import KEYPOINT_PELVIS, KEYPOINT_SOURCES, BodyKeypoints
from condflow.body.model import BodyModel
from condflow.body.poses import PoseGenerator
from condflow.data.augment import rotation_matrix_2d
from condflow.data.augmentation_rounds import AugmentationRounds
from condflow.data.image_datasets import AugmentationConfig, ImageDataset
from condflow.data.smpl_targets import WithSMPLJoints, smpl_joints_table
from condflow.data.synthetic_images import SyntheticImageConfig, make_synthetic_image_set

#: SPIN keypoints that are Human3.6M evaluation joints: (keypoint index, H36M index).
H36M_KEYPOINTS = [(i, int(key)) for i, (kind, key) in enumerate(KEYPOINT_SOURCES)
                  if kind == "h36m"]
KP, H36M = (list(x) for x in zip(*H36M_KEYPOINTS, strict=True))
NO_AUG = {"scale_factor": 0.0, "color_factor": 0.0, "trans_factor": 0.0}


@pytest.fixture(scope="module")
def keypoints(body) -> BodyKeypoints:
    return BodyKeypoints(body)


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    cfg = SyntheticImageConfig(size=6, res=32, workers=1, seed=4, two_d_only=0.5)
    return make_synthetic_image_set(cfg, tmp_path_factory.mktemp("smpl-targets"))


def direct(body: BodyModel, global_orient, body_pose, betas) -> torch.Tensor:
    """Hip-relative Human3.6M joints (mm) of a full body model forward."""
    out = body.forward_axis_angle(global_orient, body_pose, betas, eval_joints=True)
    assert out.eval_joints is not None
    return 1000.0 * (out.eval_joints - out.eval_joints[:, :1])


def test_table_equals_a_direct_body_model_forward(body):
    poses = PoseGenerator(3, random_orient=True).sample(7)
    expected = direct(body, poses.global_orient, poses.body_pose, poses.betas)
    pose72 = torch.cat([poses.global_orient, poses.body_pose.reshape(7, 69)], 1)
    table = smpl_joints_table(pose72.numpy(), poses.betas.numpy(), body, chunk_size=3)
    assert table.shape == (7, 17, 3) and table.dtype == torch.float32
    torch.testing.assert_close(table, expected, atol=1e-2, rtol=0)  # mm
    pair = smpl_joints_table((poses.global_orient, poses.body_pose), poses.betas,
                             BodyKeypoints(body))
    torch.testing.assert_close(pair, table, atol=1e-4, rtol=0)
    assert smpl_joints_table(np.zeros((0, 72)), np.zeros((0, 10)), body).shape == (0, 17, 3)


def test_table_errors_name_the_argument(body):
    with pytest.raises(ValueError, match=r"pose: expected shape \[N, 72\]"):
        smpl_joints_table(np.zeros((2, 69)), np.zeros((2, 10)), body)
    with pytest.raises(ValueError, match=r"betas: expected shape \[2, 10\]"):
        smpl_joints_table(np.zeros((2, 72)), np.zeros((3, 10)), body)
    with pytest.raises(ValueError, match=r"body_pose"):
        smpl_joints_table((np.zeros((2, 3)), np.zeros((2, 24, 3))), np.zeros((2, 10)), body)
    with pytest.raises(ValueError, match="pose: contains NaN"):
        smpl_joints_table(np.full((1, 72), np.nan), np.zeros((1, 10)), body)
    with pytest.raises(ValueError, match="body: expected a BodyModel"):
        smpl_joints_table(np.zeros((1, 72)), np.zeros((1, 10)), "smpl.pkl")
    with pytest.raises(ValueError, match="chunk_size"):
        smpl_joints_table(np.zeros((1, 72)), np.zeros((1, 10)), body, chunk_size=0)


def test_items_gain_the_joints_of_their_smpl_ground_truth(body, images):
    plain = ImageDataset(images.npz, images.img_dir, res=32)
    wrapped = WithSMPLJoints(plain, body)
    assert len(wrapped) == len(plain)
    has = plain.has_smpl > 0
    assert has.any() and (~has).any()
    table = smpl_joints_table(plain.pose, plain.betas, body)
    for i in range(len(plain)):
        item = wrapped[i]
        assert item["joints_3d"].shape == (17, 3) and item["joints_3d"].dtype == torch.float32
        assert item["has_joints_3d"] == item["has_smpl"]
        assert torch.equal(item["img"], plain[i]["img"])  # the item is otherwise unchanged
        if has[i]:
            # float32 joints up to ~1 m: a few ulps (6e-5 mm each at 746 mm) of rounding.
            torch.testing.assert_close(item["joints_3d"], table[i], atol=1e-4, rtol=1e-6)
            # The same joints among the set's own 3D keypoints (stored with the images).
            kp3d = item["keypoints_3d"][:, :3]
            from_keypoints = 1000.0 * (kp3d[KP] - kp3d[KEYPOINT_PELVIS])
            torch.testing.assert_close(item["joints_3d"][H36M], from_keypoints, atol=1e-2,
                                       rtol=0)
        else:  # no SMPL: zeros, never NaN
            assert torch.equal(item["joints_3d"], torch.zeros(17, 3))


@pytest.mark.parametrize("flip", [False, True])
def test_joints_follow_the_augmented_pose(body, keypoints, images, flip):
    aug = AugmentationConfig(rot_factor=30.0, rot_prob=1.0, flip_prob=float(flip), **NO_AUG)
    plain = WithSMPLJoints(ImageDataset(images.npz, images.img_dir, res=32), keypoints)
    dataset = ImageDataset(images.npz, images.img_dir, res=32, train=True, augmentation=aug,
                           seed=1)
    augmented = WithSMPLJoints(dataset, keypoints)
    for i in np.flatnonzero(dataset.has_smpl > 0):
        item, before = augmented[i], plain[i]
        params = dataset.augmentation_params(int(i))
        assert params.rot != 0 and params.flip == flip
        pose = (item["global_orient"][None], item["body_pose"][None], item["betas"][None])
        torch.testing.assert_close(item["joints_3d"], direct(body, *pose)[0], atol=1e-2, rtol=0)
        kp3d = item["keypoints_3d"][:, :3]  # rotated (and mirrored) with the crop
        from_keypoints = 1000.0 * (kp3d[KP] - kp3d[KEYPOINT_PELVIS])
        # A mirrored pose is the mirrored body only as far as the body model is symmetric:
        # the synthetic one to 0.18 mm (largest joint difference over 500 generated bodies).
        tolerance = 0.5 if flip else 1e-2
        torch.testing.assert_close(item["joints_3d"][H36M], from_keypoints, atol=tolerance,
                                   rtol=0)
        if not flip:  # the crop's in-plane rotation turns the skeleton about the camera axis
            turn = torch.eye(3)
            turn[:2, :2] = torch.as_tensor(rotation_matrix_2d(params.rot), dtype=torch.float32)
            torch.testing.assert_close(item["joints_3d"], before["joints_3d"] @ turn.T,
                                       atol=1e-2, rtol=0)


def test_rounds_and_batches(keypoints, images):
    aug = AugmentationConfig(rot_prob=1.0, flip_prob=0.5, **NO_AUG)
    dataset = ImageDataset(images.npz, images.img_dir, res=32, train=True, augmentation=aug)
    rounds = WithSMPLJoints(AugmentationRounds(dataset, 2), keypoints)
    assert len(rounds) == 2 * len(dataset)
    batch = next(iter(DataLoader(rounds, batch_size=len(rounds))))
    assert batch["joints_3d"].shape == (len(rounds), 17, 3)
    assert torch.isfinite(batch["joints_3d"]).all()
    torch.testing.assert_close(batch["has_joints_3d"], batch["has_smpl"])
    n = len(dataset)
    smpl = batch["has_smpl"][:n] > 0
    assert not torch.allclose(batch["joints_3d"][:n][smpl], batch["joints_3d"][n:][smpl])


def test_items_without_smpl_keys_are_refused(keypoints):
    with pytest.raises(ValueError, match=r"item 0 lacks keys \['body_pose'"):
        WithSMPLJoints([{"global_orient": torch.zeros(3), "betas": torch.zeros(10),
                         "has_smpl": torch.tensor(1.0)}], keypoints)[0]
    with pytest.raises(ValueError, match="dataset: item 0 is a Tensor"):
        WithSMPLJoints([torch.zeros(3)], keypoints)[0]
    with pytest.raises(ValueError, match="dataset: expected a map-style dataset"):
        WithSMPLJoints(iter([]), keypoints)
