"""The synthetic image set: seeded, keypoints on the rendered body, SPIN layout, caching."""

import numpy as np
import pytest
import torch
from PIL import Image

from condflow.body.camera import weak_perspective_to_translation
from condflow.body.model import BodyModel
from condflow.data.image_datasets import ImageDataset
from condflow.data.render import rasterize
from condflow.data.synthetic_images import (
    SyntheticImageConfig,
    crop_geometry,
    make_synthetic_image_set,
    synthetic_image_set,
)

SMALL = {"size": 12, "res": 32, "workers": 1}


@pytest.fixture(scope="module")
def solid_set(tmp_path_factory):
    cfg = SyntheticImageConfig(**SMALL, seed=5, backgrounds=("solid",), two_d_only=0.5)
    return make_synthetic_image_set(cfg, tmp_path_factory.mktemp("solid"))


def load(images_set) -> dict[str, np.ndarray]:
    with np.load(images_set.npz) as npz:
        return {k: npz[k] for k in npz.files}


def test_generation_is_deterministic(tmp_path):
    cfg = SyntheticImageConfig(**SMALL, seed=3)
    a = make_synthetic_image_set(cfg, tmp_path / "a")
    b = make_synthetic_image_set(cfg, tmp_path / "b")
    c = make_synthetic_image_set(SyntheticImageConfig(**SMALL, seed=4), tmp_path / "c")
    da, db, dc = load(a), load(b), load(c)
    for key in da:
        assert np.array_equal(da[key], db[key]), key
    assert not np.array_equal(da["pose"], dc["pose"])
    for name in da["imgname"][:3]:
        assert (a.img_dir / name).read_bytes() == (b.img_dir / name).read_bytes()


def test_keypoints_land_on_the_rendered_body(solid_set):
    data = load(solid_set)
    extra = np.load(solid_set.extra)
    body = BodyModel(dtype=torch.float64)
    res = solid_set.res
    side, center, scale = crop_geometry(res, 1.5)
    assert np.allclose(data["center"], center) and np.allclose(data["scale"], scale)
    focal = 5000.0 * res / 224
    pose = torch.as_tensor(data["pose"])
    out = body.forward_axis_angle(pose[:, :3], pose[:, 3:].reshape(-1, 23, 3),
                                  torch.as_tensor(data["shape"]))
    transl = weak_perspective_to_translation(torch.as_tensor(extra["cam"]), focal, res)
    for i in range(len(pose)):
        image = np.asarray(Image.open(solid_set.img_dir / data["imgname"][i])) / 255.0
        border = np.concatenate([image[0], image[-1], image[:, 0], image[:, -1]])
        foreground = (np.abs(image - np.median(border, 0)) > 0.12).any(-1)
        face_index, _, _ = rasterize(out.vertices[i] + transl[i], body.faces, focal, side)
        mask = face_index >= 0
        iou = (mask & foreground).sum() / (mask | foreground).sum()
        assert iou > 0.8, (i, iou)  # the stored pose and camera explain the image
        # Pelvis, hips and thorax keypoints project onto the body's silhouette.
        col, row = np.rint(data["part"][i, [14, 2, 3, 15], :2]).astype(int).T
        assert mask[row, col].all()


def test_confidences_and_two_d_only_examples(tmp_path):
    cfg = SyntheticImageConfig(size=40, res=32, workers=1, seed=1, two_d_only=0.5,
                               keypoint_dropout=0.05, fill=(0.9, 1.2))
    data = load(make_synthetic_image_set(cfg, tmp_path))
    part = data["part"]
    side, center, _ = crop_geometry(32, 1.5)
    inside = (np.abs(part[..., :2] - center) <= 16.0).all(-1)
    conf = part[..., 2]
    assert set(np.unique(conf)) == {0.0, 1.0}
    assert (conf[~inside] == 0).all() and (~inside).any()  # bodies larger than the crop
    assert 0.6 < conf.mean() < 0.97  # some hidden, dropped or out of the crop
    two_d = data["has_smpl"] == 0
    assert 8 < two_d.sum() < 32
    assert (data["S"][two_d, :, 3] == 0).all() and (data["S"][~two_d, :, 3] == 1).all()
    # Read back through the real loader: 2D-only items have no 3D and no SMPL supervision.
    ds = ImageDataset(tmp_path / "data.npz", tmp_path / "images", res=32)
    i, j = np.flatnonzero(two_d)[0], np.flatnonzero(~two_d)[0]
    assert ds[i]["has_smpl"] == 0 and ds[i]["has_3d"] == 0
    assert ds[j]["has_smpl"] == 1 and ds[j]["has_3d"] == 1
    kp = ds[j]["keypoints_2d"]
    expected = (part[j, :, :2] - center) / 16.0
    assert torch.allclose(kp[:, :2], torch.as_tensor(expected, dtype=torch.float32), atol=1e-5)
    assert ds[j]["img"].shape == (3, 32, 32)


def test_cached_set_is_reused_and_keyed_by_the_config():
    cfg = SyntheticImageConfig(size=4, res=16, workers=1, seed=11)
    first = synthetic_image_set(cfg)
    stamp = first.npz.stat().st_mtime_ns
    again = synthetic_image_set(SyntheticImageConfig(size=4, res=16, workers=2, seed=11))
    assert again.root == first.root and again.npz.stat().st_mtime_ns == stamp
    other = synthetic_image_set(SyntheticImageConfig(size=4, res=16, workers=1, seed=12))
    assert other.root != first.root
    assert len(list(first.img_dir.glob("*.png"))) == 4


def test_config_errors_name_the_field():
    with pytest.raises(ValueError, match="renderer"):
        SyntheticImageConfig(renderer="photoreal")
    with pytest.raises(ValueError, match="two_d_only"):
        SyntheticImageConfig(two_d_only=1.5)
    with pytest.raises(ValueError, match="backgrounds"):
        SyntheticImageConfig(backgrounds=("sky",))
