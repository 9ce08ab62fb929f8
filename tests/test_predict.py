"""``condflow predict``: keypoint files and images in, mode + samples out; bad files reported."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import condflow
from condflow.cli import main
from condflow.data.augment import crop_image
from condflow.data.image_datasets import IMAGENET_MEAN, IMAGENET_STD
from condflow.data.keypoint_files import KeypointFile
from condflow.data.screen import lifting_inputs
from condflow.saving import build_model
from condflow.tasks import load_config

TINY = {"lifter_hidden": 32, "lifter_blocks": 1, "flow_hidden": 16, "flow_blocks": 2}


def perturbed(cfg):
    model = build_model(cfg)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=gen))
    return model.eval()


@pytest.fixture(scope="module")
def lifting_model(tmp_path_factory):
    cfg = load_config({"task": "lifting", "model": TINY})
    model = perturbed(cfg)
    return condflow.save(model, tmp_path_factory.mktemp("m") / "lifting.pt", cfg), model


def openpose(people):
    return {"version": 1.3, "people": [{"pose_keypoints_2d": p.ravel().tolist()} for p in people]}


def test_lifting_inputs_normalize_like_videopose3d_and_hide_low_confidence():
    kp = np.zeros((1, 16, 3))
    kp[0, :, 0], kp[0, :, 1], kp[0, :, 2] = 500 + np.arange(16), 300.0, 0.9
    kp[0, 5, 2] = 0.05
    x = lifting_inputs(KeypointFile(kp, "h36m16", Path("kp.npy")), (1000, 800), False, False,
                       0.1)
    assert x[0, 3, 0].item() == pytest.approx(503 / 1000 * 2 - 1)
    assert x[0, 3, 1].item() == pytest.approx(300 / 1000 * 2 - 0.8)
    assert x[0, 5].tolist() == [0, 0, 0] and x[0, 3, 2] == 1
    centred = lifting_inputs(KeypointFile(kp, "h36m16", Path("kp.npy")), (1000, 800), False,
                             True, 0.1)
    assert centred[0, 0, :2].tolist() == [0, 0]
    assert centred[0, 3, 0].item() == pytest.approx(3 / 1000 * 2)
    kp[0, 0, 2] = 0.0  # hidden hip: the mean of the 14 seen joints goes to the centre
    centred = lifting_inputs(KeypointFile(kp, "h36m16", Path("kp.npy")), (1000, 800), False,
                             True, 0.1)
    seen = centred[0, :, 2] > 0
    assert seen.sum() == 14 and centred[0, seen, :2].mean(0).abs().max() < 1e-6


def test_predict_directory_reports_corrupt_and_missing_files_and_finishes_the_rest(
    tmp_path, lifting_model, capsys
):
    path, model = lifting_model
    rng = np.random.default_rng(0)
    data = tmp_path / "inputs"
    data.mkdir()
    body = np.concatenate([rng.uniform(300, 700, (2, 25, 2)), np.ones((2, 25, 1))], -1)
    body[1, 4, 2] = 0.0  # a hidden right wrist
    (data / "frame_keypoints.json").write_text(json.dumps(openpose(body)))
    coco = np.concatenate([rng.uniform(300, 700, (1, 17, 2)), np.ones((1, 17, 1))], -1)
    (data / "coco.json").write_text(json.dumps([{"image_id": 1, "keypoints": coco.ravel()
                                                 .tolist(), "score": 0.9}]))
    h36m = np.concatenate([rng.uniform(300, 700, (3, 16, 2)), np.ones((3, 16, 1))], -1)
    np.save(data / "clip.npy", h36m)
    np.savetxt(data / "table.csv", h36m[0], delimiter=",")  # one person, a row per joint
    (data / "broken.json").write_text("{ not json")
    (data / "notes.txt").write_text("ignored: not a keypoint file")
    out = tmp_path / "out"
    code = main(["predict", str(path), str(data), str(tmp_path / "absent.json"), "--out",
                 str(out), "--samples", "4", "--picture-rows", "1", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 1
    assert "broken.json: not valid JSON" in err
    assert "not found: " + str(tmp_path / "absent.json") in err
    errors = "\n".join(ln for ln in err.splitlines() if ": warning: " not in ln)
    assert "clip.npy" not in errors and "coco.json" not in errors
    # No image next to the files and no --image-size: a warning names the size used.
    assert f"warning: {data / 'clip.npy'}: no --image-size" in err and "1000x1000 px" in err
    for stem, people in (("frame_keypoints", 2), ("coco", 1), ("clip", 3), ("table", 1)):
        arrays = np.load(out / f"{stem}.npz")
        assert arrays["mode"].shape == (people, 17, 3)
        assert arrays["samples"].shape == (people, 4, 17, 3)
        assert arrays["log_prob"].shape == (people, 4)
        assert (arrays["mode_log_prob"][:, None] >= arrays["log_prob"] - 1e-3).all()
        spread = np.linalg.norm(arrays["samples"] - arrays["mode"][:, None], axis=-1)
        assert np.allclose(arrays["spread_mm"], spread.mean((1, 2)), rtol=1e-4)
        listed = json.loads((out / f"{stem}.json").read_text())
        assert listed["volume_depends_on_context"] is False
        assert np.allclose(listed["mode"], arrays["mode"], atol=1e-5)
        assert listed["joint_names"][10] == "Head" and (out / f"{stem}.png").is_file()
        assert listed["image_size"] == [1000, 1000]
        assert listed["image_size_from"] == "training images (no image given)"
    assert not (out / "broken.npz").exists()
    # The .npy pixels → training image size 1000, hip at the centre (synthetic training data).
    xy = h36m[..., :2] / 1000 * 2 - 1
    x = torch.tensor(np.concatenate([xy - xy[:, :1], h36m[..., 2:]], -1), dtype=torch.float32)
    with torch.no_grad():
        expected = model.mode(model.context(x)).joints[:, 0]
    assert np.allclose(np.load(out / "clip.npz")["mode"], expected.numpy(), atol=1e-3)
    assert np.allclose(np.load(out / "table.npz")["mode"], expected[:1].numpy(), atol=1e-3)
    assert np.load(out / "frame_keypoints.npz")["keypoints_2d"][1, 15].tolist() == [0, 0, 0]


def test_predict_with_a_regression_model_writes_its_prediction(tmp_path):
    cfg = load_config({"task": "lifting", "model": {**TINY, "kind": "regression"}})
    model = perturbed(cfg)
    path = condflow.save(model, tmp_path / "reg.pt", cfg)
    kp = np.concatenate([np.random.default_rng(1).uniform(-0.5, 0.5, (2, 16, 2)),
                         np.ones((2, 16, 1))], -1)
    np.save(tmp_path / "kp.npy", kp)
    assert main(["predict", str(path), str(tmp_path / "kp.npy"), "--out", str(tmp_path / "o"),
                 "--normalized", "--no-center", "--no-picture", "--no-progress"]) == 0
    arrays = np.load(tmp_path / "o" / "kp.npz")
    assert "samples" not in arrays
    with torch.no_grad():
        expected = model(torch.tensor(kp, dtype=torch.float32)).joints[:, 0]
    assert np.allclose(arrays["mode"], expected.numpy(), atol=1e-4)


def test_predict_reads_the_image_size_from_the_image_and_records_it(tmp_path, lifting_model,
                                                                     capsys):
    path, model = lifting_model
    body = np.concatenate([np.random.default_rng(2).uniform(100, 400, (1, 25, 2)),
                           np.ones((1, 25, 1))], -1)
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "frame_keypoints.json").write_text(json.dumps(openpose(body)))
    Image.fromarray(np.zeros((480, 640, 3), np.uint8)).save(tmp_path / "a" / "frame.png")
    (tmp_path / "b" / "elsewhere").mkdir(parents=True)
    (tmp_path / "b" / "shot.json").write_text(json.dumps(openpose(body)))
    Image.fromarray(np.zeros((300, 200, 3), np.uint8)).save(tmp_path / "b" / "elsewhere" /
                                                          "shot.jpg")
    out = tmp_path / "out"
    assert main(["predict", str(path), str(tmp_path / "a" / "frame_keypoints.json"),
                 str(tmp_path / "b" / "shot.json"), str(tmp_path / "b" / "elsewhere" / "shot.jpg"),
                 "--out", str(out), "--samples", "0", "--no-picture", "--no-progress"]) == 0
    assert "warning" not in capsys.readouterr().err
    for stem, size, image in (("frame_keypoints", (640, 480), tmp_path / "a" / "frame.png"),
                              ("shot", (200, 300), tmp_path / "b" / "elsewhere" / "shot.jpg")):
        listed = json.loads((out / f"{stem}.json").read_text())
        assert listed["image_size"] == list(size) and listed["image_size_from"] == str(image)
        expected = lifting_inputs(KeypointFile(body, "body25", Path("x.json")), size, False,
                                  True, 0.1)
        assert np.allclose(np.load(out / f"{stem}.npz")["keypoints_2d"], expected.numpy(),
                           atol=1e-6)


def test_predict_mesh_crops_people_from_openpose_boxes(tmp_path):
    cfg = load_config({
        "task": "mesh",
        "data": {"res": 32},
        "model": {"context_features": 32, "cnn_width": 8, "flow_blocks": 2, "flow_hidden": 16,
                  "point_hidden": 16},
    })
    model = perturbed(cfg)
    path = condflow.save(model, tmp_path / "mesh.pt", cfg)
    rng = np.random.default_rng(2)
    images = tmp_path / "images"
    images.mkdir()
    pixels = rng.integers(0, 256, (60, 80, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(images / "person.png")
    Image.fromarray(pixels[:40]).save(images / "whole.png")
    (images / "broken.jpg").write_bytes(b"not an image")
    kp = np.zeros((1, 25, 3))
    kp[0, :2] = [[20, 10, 0.9], [40, 50, 0.8]]  # box 20..40 x 10..50: side 40, centre (30, 30)
    (images / "person_keypoints.json").write_text(json.dumps(openpose(kp)))
    out = tmp_path / "out"
    code = main(["predict", str(path), str(images), "--out", str(out), "--samples", "2",
                 "--no-progress"])
    assert code == 1
    arrays = np.load(out / "person.npz")
    assert arrays["box_center"].tolist() == [[30, 30]]
    assert arrays["box_scale"] == pytest.approx([1.2 * 40 / 200])
    crop = (crop_image(pixels, (30, 30), 1.2 * 40 / 200, 32) / 255.0 - IMAGENET_MEAN) / IMAGENET_STD
    x = torch.tensor(crop.transpose(2, 0, 1)[None], dtype=torch.float32)
    with torch.no_grad():
        mode = model.mode(model.context(x), vertices=True)
    assert np.allclose(arrays["vertices"], mode.vertices[:, 0].numpy(), atol=1e-5)
    assert arrays["sample_vertices"].shape == (1, 2, model.body.num_vertices, 3)
    assert arrays["log_prob"].shape == (1,) and arrays["sample_log_prob"].shape == (1, 2)
    whole = np.load(out / "whole.npz")
    assert whole["box_center"].tolist() == [[40, 20]] and whole["box_scale"] == [0.4]
    listed = json.loads((out / "person.json").read_text())
    assert "vertices" not in listed and len(listed["betas"][0]) == 10
    assert (out / "person.png").is_file() and not (out / "broken.npz").exists()
