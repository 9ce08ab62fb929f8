"""ProHMR's checkpoints through ``condflow import-prohmr``, against outputs of ProHMR's code.

The fixture (tests/fixtures/prohmr, see its README) is a reduced ProHMR (ResNet-18, 2 flow
layers of width 32) with random weights in ProHMR's Lightning ``state_dict`` layout, inputs,
and what ProHMR's own code (nkolot/ProHMR with its nflows fork) computed from them.
Differences are ``max |condflow - ProHMR| / max |ProHMR|`` per quantity.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from condflow.body.camera import project_to_crop, weak_perspective_to_translation
from condflow.body.keypoints import BodyKeypoints
from condflow.body.model import BodyModel
from condflow.cli import main
from condflow.data.prohmr_crop import prohmr_box, prohmr_crop
from condflow.heads.prohmr import prohmr_6d_order
from condflow.interop.prohmr import import_prohmr, read_prohmr_checkpoint
from condflow.saving import load

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "prohmr"
CKPT = FIXTURES / "prohmr_small.ckpt"
MODEL_CFG = FIXTURES / "model_config.yaml"
TOLERANCE = {torch.float32: 1e-5, torch.float64: 1e-10}


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = torch.as_tensor(a).double(), torch.as_tensor(b).double()
    assert a.shape == b.shape, (a.shape, b.shape)
    return float((a - b).abs().max() / b.abs().max())


@pytest.fixture(scope="module")
def reference() -> dict[str, torch.Tensor]:
    return torch.load(FIXTURES / "reference.pt", weights_only=True)


@pytest.fixture(scope="module")
def cli_model(tmp_path_factory) -> torch.nn.Module:
    out = tmp_path_factory.mktemp("prohmr") / "prohmr_small.pt"
    assert main(["import-prohmr", str(CKPT), str(out), "--model-cfg", str(MODEL_CFG)]) == 0
    return load(out)


def _differences(model, reference, dtype) -> dict[str, float]:
    """Every compared quantity: condflow's output vs ProHMR's, in ``dtype``."""
    tag = "f32" if dtype == torch.float32 else "f64"
    ref = {k[4:]: v for k, v in reference.items() if k.startswith(tag + "/")}
    order = prohmr_6d_order()
    openpose = reference["smpl_to_openpose"]
    slots = [i for i, j in enumerate(openpose.tolist()) if j < 24]  # SMPL joints among them
    smpl_ids = openpose[slots]
    out = {}
    with torch.no_grad():
        c = model.context(reference["images"].to(dtype))
        poses = torch.cat([model.space.from_rotmat(reference["rotmat"].to(dtype)),
                           reference["raw_6d"].to(dtype)[..., order]], 1)
        out["features"] = rel(c, ref["features"])
        out["log_prob"] = rel(model.log_prob(poses, c), ref["log_prob"])
        out["z"] = rel(model.flow.transform_to_noise(poses, c), ref["z"])
        with_vertices = "mode_vertices" in ref
        for key, pred in (("sample", model.generate(reference["noise"].to(dtype), c)),
                          ("mode", model.mode(c, vertices=with_vertices))):
            out[f"{key}_pose_6d"] = rel(pred.pose_6d, ref[f"{key}_pose_6d"][..., order])
            out[f"{key}_rotmat"] = rel(pred.rotmat, ref[f"{key}_rotmat"])
            out[f"{key}_log_prob"] = rel(pred.log_prob, ref[f"{key}_log_prob"])
            out[f"{key}_betas"] = rel(pred.betas, ref[f"{key}_betas"])
            out[f"{key}_cam"] = rel(pred.cam, ref[f"{key}_cam"])
            cam_t = weak_perspective_to_translation(pred.cam, model.focal_length, model.img_res)
            out[f"{key}_cam_t"] = rel(cam_t, ref[f"{key}_cam_t"])
            joints = pred.joints[:, :, smpl_ids]
            out[f"{key}_joints"] = rel(joints, ref[f"{key}_keypoints_3d"][:, :, slots])
            # condflow's normalized crop coordinates are twice ProHMR's ([-1, 1] vs ±0.5).
            kp2d = project_to_crop(joints, pred.cam, model.focal_length, model.img_res) / 2
            out[f"{key}_joints_2d"] = rel(kp2d, ref[f"{key}_keypoints_2d"][:, :, slots])
            if pred.vertices is not None:
                out[f"{key}_vertices"] = rel(pred.vertices, ref[f"{key}_vertices"])
    return out


def test_cli_import_matches_prohmr_in_float32(cli_model, reference):
    diffs = _differences(cli_model, reference, torch.float32)
    assert len(diffs) == 3 + 2 * 8 + 1
    assert max(diffs.values()) <= TOLERANCE[torch.float32], diffs


def test_python_import_matches_prohmr_in_float64(reference):
    result = import_prohmr(CKPT, MODEL_CFG)
    model = result.model.double()
    model.body = BodyModel(dtype=torch.float64)  # the body's arrays read in float64, as smplx's
    model.keypoints = BodyKeypoints(model.body)
    diffs = _differences(model, reference, torch.float64)
    assert max(diffs.values()) <= TOLERANCE[torch.float64], diffs
    assert any("discriminator" in n for n in result.notes)
    assert any("smpl" in n for n in result.notes)


def test_import_reads_the_settings_off_the_checkpoint():
    s = import_prohmr(CKPT).settings  # no model config: ProHMR's defaults for the rest
    flow = (s.flow_blocks, s.flow_hidden, s.flow_residual_blocks)
    assert (s.backbone_depth, *flow) == (18, 2, 32, 1)
    assert (s.context_features, s.fc_hidden, s.image_size, s.focal_length) == (512, 32, 224, 5000)


def test_predict_on_image_and_openpose_reproduces_prohmr_demo(cli_model, tmp_path):
    demo = np.load(FIXTURES / "demo" / "reference.npz", allow_pickle=False)
    model = tmp_path / "m.pt"
    assert main(["import-prohmr", str(CKPT), str(model)]) == 0
    out = tmp_path / "pred"
    assert main(["predict", str(model), str(FIXTURES / "demo" / "person.png"), "--out", str(out),
                 "--samples", "0", "--no-picture", "--no-progress"]) == 0
    pred = np.load(out / "person.npz", allow_pickle=False)
    np.testing.assert_array_equal(pred["box_center"][0], demo["box_center"])
    assert pred["box_scale"][0] * 200 == pytest.approx(float(demo["box_size"]), rel=1e-7)
    for name in ("rotmat", "betas", "cam", "log_prob"):
        assert rel(torch.from_numpy(pred[name]), torch.from_numpy(demo[f"mode_{name}"][:, 0])) \
            <= TOLERANCE[torch.float32], name


def test_prohmr_crop_is_prohmr_demo_crop_exactly():
    demo = np.load(FIXTURES / "demo" / "reference.npz", allow_pickle=False)
    img = np.asarray(Image.open(FIXTURES / "demo" / "person.png").convert("RGB"))
    people = json.loads((FIXTURES / "demo" / "person_keypoints.json").read_text())["people"]
    center, side = prohmr_box(np.reshape(people[0]["pose_keypoints_2d"], (-1, 3)))
    np.testing.assert_array_equal(center, demo["box_center"])
    assert side == demo["box_size"]
    crop = prohmr_crop(img, center, side)
    assert crop.dtype == np.float32 and crop.shape == (3, 224, 224)
    np.testing.assert_array_equal(crop, demo["crop"])  # cv2's fixed-point warp, bit for bit


def _state() -> dict[str, torch.Tensor]:
    return read_prohmr_checkpoint(CKPT)


def test_missing_keys_are_an_error_listing_them():
    state = _state()
    del state["flow.flow._transform._transforms.4.bias"]
    del state["flow.fc_head.init_cam"]
    with pytest.raises(ValueError, match="missing keys") as err:
        import_prohmr(state)
    assert "flow.flow._transform._transforms.4.bias" in str(err.value)
    assert "flow.fc_head.init_cam" in str(err.value)


def test_unexpected_keys_are_an_error_listing_them():
    state = _state()
    state["flow.extra_head.weight"] = torch.zeros(3)
    state["backbone.fc.weight"] = torch.zeros(1000, 512)
    with pytest.raises(ValueError, match="unexpected keys") as err:
        import_prohmr(state)
    assert "flow.extra_head.weight" in str(err.value) and "backbone.fc.weight" in str(err.value)


def test_wrong_shape_names_the_key():
    state = _state()
    state["flow.fc_head.layers.2.bias"] = torch.zeros(12)
    with pytest.raises(ValueError, match=r"flow\.fc_head\.layers\.2\.bias"):
        import_prohmr(state)


def test_config_that_disagrees_with_the_checkpoint_names_the_key(tmp_path):
    cfg = tmp_path / "prohmr.yaml"
    cfg.write_text("MODEL:\n  FLOW:\n    NUM_LAYERS: 4\n")
    with pytest.raises(ValueError, match=r"MODEL\.FLOW\.NUM_LAYERS"):
        import_prohmr(CKPT, cfg)
    cfg.write_text("MODEL:\n  IMAGE_MEAN: [0.5, 0.5, 0.5]\n")
    with pytest.raises(ValueError, match=r"MODEL\.IMAGE_MEAN"):
        import_prohmr(CKPT, cfg)


def test_checkpoint_with_python_objects_is_refused_without_unpickling(tmp_path):
    path = tmp_path / "objects.ckpt"
    torch.save({"state_dict": _state(), "hyper_parameters": argparse.Namespace(a=1)}, path)
    with pytest.raises(ValueError, match="weights_only=True"):
        import_prohmr(path)


def test_import_refuses_to_overwrite_unless_asked(tmp_path, capsys):
    out = tmp_path / "m.pt"
    out.write_bytes(b"not mine")
    assert main(["import-prohmr", str(CKPT), str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert out.read_bytes() == b"not mine"
    assert main(["import-prohmr", str(CKPT), str(out), "--overwrite"]) == 0
    assert load(out).flow.features == 144


def test_fit_on_an_imported_model_starts_from_prohmr_demo_crop_and_mode(tmp_path):
    demo = np.load(FIXTURES / "demo" / "reference.npz", allow_pickle=False)
    model = tmp_path / "m.pt"
    assert main(["import-prohmr", str(CKPT), str(model)]) == 0
    out = tmp_path / "fit"
    assert main(["fit", str(model), str(FIXTURES / "demo" / "person_keypoints.json"),
                 "--image", str(FIXTURES / "demo" / "person.png"), "--out", str(out),
                 "--iters", "2", "--no-picture"]) == 0
    fit = np.load(out / "fit.npz", allow_pickle=False)
    np.testing.assert_array_equal(fit["box"][0, :2], demo["box_center"])
    assert fit["box"][0, 2] * 200 == pytest.approx(float(demo["box_size"]), rel=1e-7)
    for name in ("rotmat", "betas", "cam"):
        assert rel(torch.from_numpy(fit[f"mode_{name}"]),
                   torch.from_numpy(demo[f"mode_{name}"][:, 0])) <= TOLERANCE[torch.float32]
    info = json.loads((out / "fit.json").read_text())
    assert info["diagnostics"]["iterations"][0] <= 2
