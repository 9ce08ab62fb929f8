import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from condflow.data.augment import flip_keypoints_2d, flip_smpl_pose, untransform_keypoints
from condflow.data.image_datasets import (
    EXTRA_KEYPOINT_NAMES,
    IMAGENET_MEAN,
    IMAGENET_STD,
    OPENPOSE_FLIP_PERM,
    PROHMR_FLIP_PERM,
    PROHMR_KEYPOINT_NAMES,
    SPIN_FLIP_PERM,
    AugmentationConfig,
    ImageDataset,
    detect_layout,
    imagenet_normalize,
    keypoint_box,
    person_crop,
    write_prohmr_npz,
    write_spin_npz,
)
from condflow.joints import BODY25_NAMES, SPIN_KEYPOINT_NAMES

N, H, W = 3, 72, 90
ONLY_FLIP = AugmentationConfig(scale_factor=0.0, rot_factor=0.0, rot_prob=0.0, flip_prob=1.0,
                               color_factor=0.0)


def mirror_name(name):
    for a, b in (("Left", "Right"), ("Right", "Left"), ("left", "right")):
        if a in name:
            return name.replace(a, b)
    if len(name) > 1 and name[0] in "LR" and name[1].isupper():
        return {"L": "R", "R": "L"}[name[0]] + name[1:]
    return name


@pytest.mark.parametrize("names, perm", [(SPIN_KEYPOINT_NAMES, SPIN_FLIP_PERM),
                                         (BODY25_NAMES, OPENPOSE_FLIP_PERM),
                                         (PROHMR_KEYPOINT_NAMES, PROHMR_FLIP_PERM)])
def test_flip_permutations_swap_left_and_right_names(names, perm):
    assert len(perm) == len(names) and sorted(perm) == list(range(len(names)))
    offset = 25 if names is PROHMR_KEYPOINT_NAMES else 0
    for i, j in enumerate(perm):
        assert mirror_name(names[i]) == names[j], (names[i], names[j])
        assert (i < offset) == (j < offset)  # BODY_25 and extra sets stay apart
    assert len(EXTRA_KEYPOINT_NAMES) == 19 and EXTRA_KEYPOINT_NAMES[-1] == "Head (H36M)"


@pytest.fixture
def scene(tmp_path):
    rng = np.random.default_rng(0)
    (tmp_path / "imgs" / "sub").mkdir(parents=True)
    names = [f"sub/im{i}.png" for i in range(N)]
    for name in names:
        Image.fromarray(rng.integers(0, 256, (H, W, 3), dtype=np.uint8)).save(
            tmp_path / "imgs" / name)
    center = np.array([[45.0, 36.0], [40.0, 30.0], [50.5, 40.2]])
    scale = np.array([0.36, 0.3, 0.25])
    return {
        "dir": tmp_path, "img_dir": tmp_path / "imgs", "names": names, "center": center,
        "scale": scale, "rng": rng,
    }


def random_keypoints(rng, n, k, center, width):
    xy = center[:, None, :] + rng.uniform(-width, width, (n, k, 2))
    conf = (rng.random((n, k, 1)) > 0.2).astype(float)
    return np.concatenate([xy, conf], axis=-1)


def spin_file(scene, with_smpl=True, with_s=True):
    rng = scene["rng"]
    part = random_keypoints(rng, N, 24, scene["center"], 20)
    kw = {}
    if with_s:
        kw["S"] = np.concatenate([rng.normal(size=(N, 24, 3)), np.ones((N, 24, 1))], -1)
    if with_smpl:
        kw.update(pose=rng.normal(scale=0.3, size=(N, 72)), shape=rng.normal(size=(N, 10)),
                  has_smpl=np.array([1.0, 0.0, 1.0]))
    path = scene["dir"] / "spin.npz"
    write_spin_npz(path, scene["names"], scene["center"], scene["scale"], part, **kw)
    return path, part, kw


def prohmr_file(scene):
    rng = scene["rng"]
    kw = {
        "body_pose": rng.normal(scale=0.3, size=(N, 72)),
        "betas": rng.normal(size=(N, 10)),
        "has_betas": np.array([1.0, 1.0, 0.0]),
        "body_keypoints_2d": random_keypoints(rng, N, 25, scene["center"], 20),
        "extra_keypoints_2d": random_keypoints(rng, N, 19, scene["center"], 20),
        "extra_keypoints_3d": np.concatenate([rng.normal(size=(N, 19, 3)), np.ones((N, 19, 1))],
                                             -1),
    }
    path = scene["dir"] / "prohmr.npz"
    write_prohmr_npz(path, scene["names"], scene["center"], scene["scale"], **kw)
    return path, kw


def test_spin_layout_items(scene):
    path, part, kw = spin_file(scene)
    ds = ImageDataset(path, scene["img_dir"], res=32)
    assert ds.layout == "spin" and len(ds) == N
    item = ds[1]
    assert item["img"].shape == (3, 32, 32) and item["img"].dtype == torch.float32
    assert item["keypoints_2d"].shape == (24, 3) and item["keypoints_3d"].shape == (24, 4)
    assert item["global_orient"].shape == (3,) and item["body_pose"].shape == (23, 3)
    assert item["betas"].shape == (10,)
    assert item["has_smpl"].item() == 0.0 and ds[0]["has_smpl"].item() == 1.0
    assert item["has_3d"].item() == 1.0 and item["imgname"] == scene["names"][1]
    np.testing.assert_allclose(item["body_pose"].numpy().ravel(), kw["pose"][1, 3:], rtol=1e-6)
    np.testing.assert_allclose(item["keypoints_3d"].numpy(), kw["S"][1], rtol=1e-6)
    for i in range(N):  # eval-mode keypoints map back to the original pixels
        it = ds[i]
        back = untransform_keypoints(it["keypoints_2d"].numpy(), it["center"].numpy(),
                                     it["scale"].item())
        np.testing.assert_allclose(back, part[i], atol=1e-4)


def test_spin_without_smpl_or_3d_has_zero_flags(scene):
    path, _, _ = spin_file(scene, with_smpl=False, with_s=False)
    item = ImageDataset(path, scene["img_dir"], res=16)[0]
    assert item["has_smpl"].item() == 0 and item["has_3d"].item() == 0
    assert (item["keypoints_3d"] == 0).all() and (item["body_pose"] == 0).all()


def test_prohmr_layout_items(scene):
    path, kw = prohmr_file(scene)
    raw = np.load(path)
    np.testing.assert_allclose(raw["scale"], scene["scale"] * 200)  # ProHMR stores pixels
    assert "body_keypoints_3d" not in raw.files
    ds = ImageDataset(path, scene["img_dir"], res=24)
    assert ds.layout == "prohmr"
    np.testing.assert_allclose(ds.scale, scene["scale"], rtol=1e-6)
    item = ds[2]
    assert item["keypoints_2d"].shape == (44, 3) and item["keypoints_3d"].shape == (44, 4)
    assert item["has_smpl"].item() == 1 and item["has_betas"].item() == 0
    assert item["has_3d"].item() == 1
    assert (item["keypoints_3d"][:25] == 0).all()  # absent BODY_25 3D keypoints are zeros
    np.testing.assert_allclose(item["global_orient"].numpy(), kw["body_pose"][2, :3], rtol=1e-6)
    kp = np.concatenate([kw["body_keypoints_2d"][2], kw["extra_keypoints_2d"][2]])
    back = untransform_keypoints(item["keypoints_2d"].numpy(), scene["center"][2],
                                 scene["scale"][2])
    np.testing.assert_allclose(back, kp, atol=1e-4)


def test_eval_crop_of_the_whole_image_is_the_normalized_image(tmp_path):
    rng = np.random.default_rng(5)
    img = rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)
    Image.fromarray(img).save(tmp_path / "a.png")
    path = tmp_path / "one.npz"
    write_spin_npz(path, ["a.png"], [[19.5, 19.5]], [0.2], np.zeros((1, 24, 3)))
    item = ImageDataset(path, tmp_path, res=40)[0]
    expected = (img / 255.0 - IMAGENET_MEAN) / IMAGENET_STD
    np.testing.assert_allclose(item["img"].permute(1, 2, 0).numpy(), expected, atol=1e-4)


def test_person_crop_is_the_datasets_evaluation_crop(tmp_path):
    """``condflow predict``/``fit``/``fuse`` feed the network what evaluation fed it."""
    rng = np.random.default_rng(6)
    img = rng.integers(0, 256, (50, 64, 3), dtype=np.uint8)
    Image.fromarray(img).save(tmp_path / "a.png")
    path = tmp_path / "one.npz"
    center, scale = np.array([30.0, 22.5]), 0.171875  # exact in the float32 npz
    write_spin_npz(path, ["a.png"], [center], [scale], np.zeros((1, 24, 3)))
    item = ImageDataset(path, tmp_path, res=24)[0]
    crop = person_crop(img, center, scale, 24)
    assert crop.shape == (24, 24, 3) and crop.dtype == np.float32
    assert np.array_equal(item["img"].permute(1, 2, 0).numpy(), crop)


def test_keypoint_box_encloses_the_seen_keypoints_only():
    kp = np.array([[10.0, 20.0, 0.9], [50.0, 30.0, 0.5], [30.0, 80.0, 1.0], [900.0, 900.0, 0.0]])
    center, scale = keypoint_box(kp)  # the hidden keypoint at (900, 900) is left out
    np.testing.assert_allclose(center, [30.0, 50.0])
    assert scale == pytest.approx(1.2 * 60.0 / 200.0)  # the longer side (y: 20..80), x 1.2
    assert keypoint_box(kp[[0, 3]]) is None  # one seen keypoint
    assert keypoint_box(np.array([[5.0, 5.0, 1.0], [5.0, 5.0, 1.0]])) is None  # zero size


def test_imagenet_normalize_maps_the_mean_colour_to_zero():
    mean_rgb = (IMAGENET_MEAN * 255.0)[None, None]
    assert np.abs(imagenet_normalize(mean_rgb)).max() < 1e-6
    white = imagenet_normalize(np.full((1, 1, 3), 255.0, np.float32))
    np.testing.assert_allclose(white[0, 0], (1 - IMAGENET_MEAN) / IMAGENET_STD, rtol=1e-6)


@pytest.mark.parametrize("layout", ["spin", "prohmr"])
def test_flipped_item_swaps_left_and_right(scene, layout):
    path = spin_file(scene)[0] if layout == "spin" else prohmr_file(scene)[0]
    perm = SPIN_FLIP_PERM if layout == "spin" else PROHMR_FLIP_PERM
    plain = ImageDataset(path, scene["img_dir"], res=32)[0]
    flipped = ImageDataset(path, scene["img_dir"], train=True, res=32, augmentation=ONLY_FLIP)[0]
    np.testing.assert_allclose(flipped["keypoints_2d"].numpy(),
                               flip_keypoints_2d(plain["keypoints_2d"].numpy(), perm), atol=1e-6)
    left, right = (3, 2) if layout == "spin" else (12, 9)  # LHip, RHip
    np.testing.assert_allclose(flipped["keypoints_2d"][left, 0], -plain["keypoints_2d"][right, 0])
    pose = torch.cat([plain["global_orient"], plain["body_pose"].ravel()]).numpy()
    pose_f = torch.cat([flipped["global_orient"], flipped["body_pose"].ravel()]).numpy()
    np.testing.assert_allclose(pose_f, flip_smpl_pose(pose), atol=1e-6)
    k3, k3f = plain["keypoints_3d"].numpy(), flipped["keypoints_3d"].numpy()
    np.testing.assert_allclose(k3f[:, 0], -k3[list(perm), 0], atol=1e-6)
    torch.testing.assert_close(flipped["img"], plain["img"].flip(-1))


def test_augmentation_is_seeded_per_item_and_epoch(scene):
    path, _, _ = spin_file(scene)
    cfg = AugmentationConfig(rot_prob=1.0)
    a = ImageDataset(path, scene["img_dir"], train=True, res=16, augmentation=cfg, seed=3)
    b = ImageDataset(path, scene["img_dir"], train=True, res=16, augmentation=cfg, seed=3)
    torch.testing.assert_close(a[1]["img"], b[1]["img"])
    torch.testing.assert_close(a[1]["keypoints_2d"], b[1]["keypoints_2d"])
    b.set_epoch(1)
    assert not torch.allclose(a[1]["keypoints_2d"], b[1]["keypoints_2d"])
    batch = next(iter(DataLoader(a, batch_size=2)))
    assert batch["img"].shape == (2, 3, 16, 16) and batch["imgname"] == scene["names"][:2]


def test_missing_keys_and_files_raise_naming_them(scene):
    d = scene["dir"]
    np.savez(d / "nokp.npz", imgname=np.array(scene["names"]), center=scene["center"],
             scale=scene["scale"])
    with pytest.raises(ValueError, match="part"):
        ImageDataset(d / "nokp.npz", scene["img_dir"], layout="spin")
    with pytest.raises(ValueError, match="neither SPIN"):
        ImageDataset(d / "nokp.npz", scene["img_dir"])
    np.savez(d / "nocenter.npz", imgname=np.array(scene["names"]), scale=scene["scale"],
             part=np.zeros((N, 24, 3)))
    with pytest.raises(ValueError, match="center"):
        ImageDataset(d / "nocenter.npz", scene["img_dir"])
    np.savez(d / "badshape.npz", imgname=np.array(scene["names"]), center=scene["center"],
             scale=scene["scale"], part=np.zeros((N, 17, 3)))
    with pytest.raises(ValueError, match=r"part: expected shape \[3, 24, 3\]"):
        ImageDataset(d / "badshape.npz", scene["img_dir"])
    with pytest.raises(ValueError, match="layout"):
        ImageDataset(d / "badshape.npz", scene["img_dir"], layout="coco")
    path, _, _ = spin_file(scene)
    (scene["img_dir"] / scene["names"][2]).unlink()
    ds = ImageDataset(path, scene["img_dir"])
    with pytest.raises(FileNotFoundError, match="im2.png"):
        ds[2]
    with pytest.raises(FileNotFoundError, match="npz_path"):
        ImageDataset(d / "absent.npz", scene["img_dir"])
    with pytest.raises(ValueError, match="pose, shape"):
        write_spin_npz(d / "x.npz", ["a"], [[0, 0]], [1.0], np.zeros((1, 24, 3)),
                       pose=np.zeros((1, 72)))


def test_detect_layout():
    assert detect_layout(["imgname", "center", "scale", "part"]) == "spin"
    assert detect_layout(["imgname", "center", "scale", "part", "extra_keypoints_2d"]) == "prohmr"
