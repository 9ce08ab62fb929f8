"""``condflow fit`` and ``condflow fuse``: keypoint files / views in, fitted parameters (+ PNG)
out; clear errors."""

import json

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.spatial.transform import Rotation

import condflow
from condflow.cli import main
from condflow.commands import fuse as fuse_command
from condflow.data.keypoint_files import load_keypoints
from condflow.data.screen import lifting_inputs
from condflow.fitting import fuse_calibrated_views
from condflow.saving import build_model
from condflow.tasks import load_config

TINY = {"lifter_hidden": 32, "lifter_blocks": 1, "flow_hidden": 16, "flow_blocks": 2}


def saved(tmp_path, cfg_dict, name):
    cfg = load_config(cfg_dict)
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    return condflow.save(model, tmp_path / name, cfg)


def standing_body25() -> np.ndarray:
    """A person seen from the front in a 1000 px image, BODY_25 layout (pixels, confidence)."""
    xy = {0: (500, 300), 1: (500, 350), 2: (450, 350), 3: (430, 420), 4: (420, 480),
          5: (550, 350), 6: (570, 420), 7: (580, 480), 8: (500, 500), 9: (470, 500),
          10: (470, 600), 11: (470, 700), 12: (530, 500), 13: (530, 600), 14: (530, 700),
          15: (490, 290), 16: (510, 290), 17: (480, 295), 18: (520, 295)}
    kp = np.zeros((25, 3))
    for j, p in xy.items():
        kp[j] = (*p, 0.9)
    return kp


def write_openpose(path, people):
    path.write_text(json.dumps({"people": [{"pose_keypoints_2d": p.ravel().tolist()}
                                           for p in people]}))


def test_fit_lifting_writes_parameters_and_picture(tmp_path, capsys):
    model = saved(tmp_path, {"task": "lifting", "model": TINY}, "lifting.pt")
    people = [standing_body25(), standing_body25() + np.array([30.0, 10.0, 0.0])]
    write_openpose(tmp_path / "frame.json", people)
    out = tmp_path / "out"
    assert main(["fit", str(model), str(tmp_path / "frame.json"), "--out", str(out),
                 "--iters", "30"]) == 0
    assert "person 1: E_J" in capsys.readouterr().out
    arrays = np.load(out / "fit.npz")
    assert arrays["fit"].shape == (2, 17, 3) and arrays["mode"].shape == (2, 17, 3)
    assert arrays["keypoints_2d"].shape == (2, 16, 3) and arrays["transl"].shape == (2, 3)
    seen = arrays["keypoints_2d"][..., 2] > 0
    err = {k: (np.linalg.norm(arrays[k] - arrays["keypoints_2d"][..., :2], axis=-1) * seen).sum()
           for k in ("mode_reprojection", "fit_reprojection")}
    assert err["fit_reprojection"] < err["mode_reprojection"]
    info = json.loads((out / "fit.json").read_text())
    assert info["configuration"] == "mlp_lifter → skeleton (flow) on synthetic_lifting"
    assert len(info["diagnostics"]["iterations"]) == 2
    assert len(info["joint_names"]) == 17 and (out / "fit.png").stat().st_size > 0


@pytest.mark.parametrize("persons", [2, 16])
def test_fit_fast_uses_the_measured_fast_settings(tmp_path, capsys, monkeypatch, persons):
    from condflow.commands import fit as fit_command

    model = saved(tmp_path, {"task": "lifting", "model": TINY}, "lifting.pt")
    people = [standing_body25() + np.array([5.0 * i, 0.0, 0.0]) for i in range(persons)]
    write_openpose(tmp_path / "frame.json", people)
    seen = {}
    real = fit_command.fit_keypoints

    def spy(head, context, keypoints, config, callback=None):
        seen["config"] = config
        return real(head, context, keypoints, config, callback=callback)

    monkeypatch.setattr(fit_command, "fit_keypoints", spy)
    for fast in (False, True):
        out = tmp_path / f"out{fast}"
        assert main(["fit", str(model), str(tmp_path / "frame.json"), "--out", str(out),
                     "--iters", "60", "--no-picture"] + (["--fast"] if fast else [])) == 0
        seen[fast] = json.loads((out / "fit.json").read_text())["diagnostics"]
    cfg = seen["config"]
    assert cfg.frozen_flow and cfg.jacobian_dtype == "bfloat16"
    assert cfg.optimizer.method == "lm+lbfgs" and cfg.optimizer.lm_iters == 2
    assert cfg.optimizer.precondition == (persons >= fit_command.FAST_PRECONDITION_PERSONS)
    # It fits as well: the keypoint error ends within 1 % of the default fit's (4e-5 apart
    # when measured).
    fast, plain = (np.array(seen[k]["keypoint_energy"]) for k in (True, False))
    assert (fast <= 1.01 * plain).all(), (fast, plain)
    assert main(["fit", str(model), str(tmp_path / "frame.json"), "--out", str(tmp_path / "x"),
                 "--fast", "--method", "adam"]) == 2
    assert "--fast: chooses the optimizer itself" in capsys.readouterr().err


@pytest.mark.parametrize("fast", [[], ["--fast"]])
def test_fit_mesh_needs_an_image_and_fits_spin_keypoints(tmp_path, fast):
    tiny = {"context_features": 16, "cnn_width": 4, "flow_blocks": 2, "flow_hidden": 16,
            "point_hidden": 16}
    model = saved(tmp_path, {"task": "mesh", "data": {"res": 32}, "model": tiny}, "mesh.pt")
    write_openpose(tmp_path / "kp.json", [standing_body25()])
    assert main(["fit", str(model), str(tmp_path / "kp.json"), "--out", str(tmp_path / "o")]
                ) == 2
    Image.fromarray(np.full((1000, 1000, 3), 128, np.uint8)).save(tmp_path / "img.png")
    assert main(["fit", str(model), str(tmp_path / "kp.json"), "--image",
                 str(tmp_path / "img.png"), "--out", str(tmp_path / "o"), "--iters", "5",
                 *fast]) == 0
    arrays = np.load(tmp_path / "o" / "fit.npz")
    assert arrays["pose"].shape == (1, 72) and arrays["betas"].shape == (1, 10)
    assert arrays["keypoints_2d"].shape == (1, 24, 3)
    # Keypoints without a SPIN counterpart (e.g. the top of the head) are unseen.
    assert arrays["keypoints_2d"][0, 13, 2] == 0 and arrays["keypoints_2d"][0, 19, 2] > 0


def test_fit_errors_name_the_problem(tmp_path, capsys):
    model = saved(tmp_path, {"task": "lifting", "model": TINY}, "lifting.pt")
    assert main(["fit", str(model), str(tmp_path / "missing.json")]) == 2
    assert "keypoints file not found" in capsys.readouterr().err
    (tmp_path / "bad.json").write_text("{")
    assert main(["fit", str(model), str(tmp_path / "bad.json")]) == 2
    assert "bad.json: not valid JSON" in capsys.readouterr().err
    regression = saved(tmp_path, {"task": "lifting", "model": {**TINY, "kind": "regression"}},
                       "regression.pt")
    write_openpose(tmp_path / "kp.json", [standing_body25()])
    assert main(["fit", str(regression), str(tmp_path / "kp.json")]) == 2
    assert "regression baseline" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["fit", str(model)])


def test_fit_says_when_a_person_did_not_converge_and_records_the_image_size(tmp_path, capsys):
    model = saved(tmp_path, {"task": "lifting", "model": TINY}, "lifting.pt")
    write_openpose(tmp_path / "frame.json", [standing_body25()] * 2)
    Image.fromarray(np.zeros((600, 800, 3), np.uint8)).save(tmp_path / "frame.png")
    out = tmp_path / "out"
    assert main(["fit", str(model), str(tmp_path / "frame.json"), "--image",
                 str(tmp_path / "frame.png"), "--out", str(out), "--iters", "1",
                 "--no-picture", "--no-progress"]) == 0
    captured = capsys.readouterr()
    info = json.loads((out / "fit.json").read_text())
    assert info["diagnostics"]["converged"] == [False, False]
    assert ("not converged: persons 0, 1 stopped at the iteration limit (--iters 1)"
            in captured.out) and "fit.json records converged: false" in captured.out
    assert info["image_size"] == [800, 600] and info["image_size_from"] == str(
        tmp_path / "frame.png")
    assert "warning" not in captured.err
    # Without an image or --image-size, the training size is used, with a warning.
    assert main(["fit", str(model), str(tmp_path / "frame.json"), "--out", str(tmp_path / "o2"),
                 "--iters", "1", "--no-picture", "--no-progress"]) == 0
    assert "no --image-size or --image; normalizing by the training images' size 1000x1000" \
        in capsys.readouterr().err
    assert json.loads((tmp_path / "o2" / "fit.json").read_text())["image_size"] == [1000, 1000]
# -- condflow fuse ---------------------------------------------------------------------------

FUSE_TINY = {"context_features": 16, "cnn_width": 4, "flow_blocks": 2, "flow_hidden": 16,
        "point_hidden": 16, "conditional_volume": True, "volume_hidden": 8}


def test_fuse_views_with_keypoints_writes_consensus_pose(tmp_path, capsys):
    model = saved(tmp_path, {"task": "mesh", "data": {"res": 32}, "model": FUSE_TINY}, "mesh.pt")
    rng = np.random.default_rng(0)
    images = []
    for i in range(3):
        path = tmp_path / f"view{i}.png"
        Image.fromarray(rng.integers(0, 255, (200, 240, 3), dtype=np.uint8)).save(path)
        kp = standing_body25()
        kp[:, :2] = kp[:, :2] * 0.2 + 10 * i
        write_openpose(tmp_path / f"view{i}_keypoints.json", [kp])
        images.append(str(path))
    out = tmp_path / "out"
    assert main(["fuse", str(model), *images, "--keypoints", "--iters", "5", "--out",
                 str(out)]) == 0
    assert "view 2 (view2.png)" in capsys.readouterr().out
    arrays = np.load(out / "fuse.npz")
    assert arrays["body_pose_rotmat"].shape == (23, 3, 3) and arrays["body_pose"].shape == (69,)
    assert arrays["view_rotmat"].shape == (3, 24, 3, 3) and arrays["cam"].shape == (3, 3)
    assert arrays["neg_log_prob"].shape == (3,) and arrays["mode_log_prob"].shape == (3,)
    det = np.linalg.det(arrays["body_pose_rotmat"])
    assert np.allclose(det, 1.0, atol=1e-4)
    info = json.loads((out / "fuse.json").read_text())
    assert info["volume_depends_on_context"] is True and info["keypoints"] is True
    assert info["boxes_from"][1].endswith("view1_keypoints.json")


def test_fuse_errors_name_the_problem(tmp_path, capsys):
    model = saved(tmp_path, {"task": "mesh", "data": {"res": 32}, "model": FUSE_TINY}, "mesh.pt")
    Image.fromarray(np.zeros((50, 50, 3), np.uint8)).save(tmp_path / "a.png")
    assert main(["fuse", str(model), str(tmp_path / "a.png")]) == 2
    assert "VIEWS: fusion needs at least 2 views" in capsys.readouterr().err
    assert main(["fuse", str(model), str(tmp_path / "a.png"), str(tmp_path / "b.png")]) == 2
    err = capsys.readouterr().err
    assert "VIEWS: no such file" in err and "b.png" in err
    assert main(["fuse", str(model), str(tmp_path / "a.png"), str(tmp_path / "a.png"),
                 "--keypoints"]) == 2
    assert "--keypoints: no OpenPose JSON next to" in capsys.readouterr().err
    lifting = saved(tmp_path, {"task": "lifting", "model": {"lifter_hidden": 8,
                                                           "flow_hidden": 8}}, "lift.pt")
    assert main(["fuse", str(lifting), str(tmp_path / "a.png"), str(tmp_path / "a.png")]) == 2
    assert "--rotations: a skeleton model fuses calibrated views" in capsys.readouterr().err
    np.save(tmp_path / "r.npy", np.stack([np.eye(3)] * 2))
    assert main(["fuse", str(model), str(tmp_path / "a.png"), str(tmp_path / "a.png"),
                 "--rotations", str(tmp_path / "r.npy")]) == 2
    assert "--rotations: mesh fusion is uncalibrated" in capsys.readouterr().err
    regression = saved(tmp_path, {"task": "lifting", "model": {
        "kind": "regression", "lifter_hidden": 8}}, "reg.pt")
    assert main(["fuse", str(regression), str(tmp_path / "a.png"), str(tmp_path / "a.png")]
                ) == 2
    assert "MODEL: fusion needs a probabilistic model" in capsys.readouterr().err


def _skeleton_views(tmp_path, n=3):
    views = []
    for i in range(n):
        kp = standing_body25() + np.array([15.0 * i, -5.0 * i, 0.0])
        write_openpose(tmp_path / f"v{i}.json", [kp])
        views.append(str(tmp_path / f"v{i}.json"))
    np.save(tmp_path / "rot.npy", Rotation.random(n, random_state=0).as_matrix())
    return views, str(tmp_path / "rot.npy")


def test_fuse_skeleton_views_with_rotations(tmp_path, capsys):
    model = saved(tmp_path, {"task": "lifting", "model": {**TINY, "conditional_volume": True,
                                                         "volume_hidden": 8}}, "lift.pt")
    views, rot = _skeleton_views(tmp_path)
    out = tmp_path / "out"
    assert main(["fuse", str(model), *views, "--rotations", rot, "--image-size", "1000",
                 "--out", str(out)]) == 0
    assert "view 2 (v2.json)" in capsys.readouterr().out
    a = np.load(out / "fuse.npz")
    assert a["joints_world"].shape == (17, 3) and a["view_joints"].shape == (3, 17, 3)
    assert a["mode_joints"].shape == (3, 17, 3) and a["neg_log_prob"].shape == (3,)
    np.testing.assert_allclose(a["view_joints"],
                               np.einsum("nij,kj->nki", np.load(rot), a["joints_world"]),
                               atol=1e-3)
    info = json.loads((out / "fuse.json").read_text())
    assert info["volume_depends_on_context"] is True and len(info["joint_names"]) == 17
    # The fused skeleton is at least as probable, summed over the views, as the baseline.
    head = condflow.load(model).eval()
    r = torch.from_numpy(np.load(rot)).float()
    with torch.no_grad():
        x = torch.cat([lifting_inputs(load_keypoints(v), (1000.0, 1000.0), False, True, 0.1)
                       for v in views])
        c = head.context(x)

        def total(world):
            joints = torch.einsum("nij,kj->nki", r, torch.as_tensor(world).float())
            return -head.log_prob(joints, c).sum()

        assert total(a["joints_world"]) <= total(a["average_joints_world"]) + 1e-3
        torch.testing.assert_close(total(a["joints_world"]),
                                   torch.as_tensor(a["neg_log_prob"]).sum(), rtol=1e-4,
                                   atol=1e-3)


def test_fuse_skeleton_says_when_the_fit_did_not_converge(tmp_path, capsys, monkeypatch):
    def unconverged(*args, **kwargs):
        result = fuse_calibrated_views(*args, **kwargs)
        result.converged = torch.zeros_like(result.converged)
        return result

    monkeypatch.setattr(fuse_command, "fuse_calibrated_views", unconverged)
    model = saved(tmp_path, {"task": "lifting", "model": TINY}, "lift.pt")
    views, rot = _skeleton_views(tmp_path)
    assert main(["fuse", str(model), *views, "--rotations", rot, "--image-size", "1000",
                 "--out", str(tmp_path / "o"), "--iters", "7"]) == 0
    assert "(not converged; raise --iters from 7)" in capsys.readouterr().out
    assert json.loads((tmp_path / "o" / "fuse.json").read_text())["converged"] is False


def test_fuse_skeleton_errors_name_the_problem(tmp_path, capsys):
    model = saved(tmp_path, {"task": "lifting", "model": TINY}, "lift.pt")
    views, rot = _skeleton_views(tmp_path)
    args = ["fuse", str(model), *views, "--out", str(tmp_path / "o")]
    assert main([*args, "--rotations", rot]) == 2
    assert "--image-size: keypoint views need the image size" in capsys.readouterr().err
    np.save(tmp_path / "two.npy", np.stack([np.eye(3)] * 2))
    assert main([*args, "--image-size", "1000", "--rotations", str(tmp_path / "two.npy")]) == 2
    assert "--rotations: expected a float array of shape [3, 3, 3]" in capsys.readouterr().err
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    assert main([*args, "--image-size", "1000", "--rotations", str(tmp_path / "obj.npy")]) == 2
    assert "is not a numeric .npy array" in capsys.readouterr().err
    np.save(tmp_path / "bad.npy", 2 * np.stack([np.eye(3)] * 3))
    assert main([*args, "--image-size", "1000", "--rotations", str(tmp_path / "bad.npy")]) == 2
    assert "rotations: expected rotation matrices" in capsys.readouterr().err
    assert main([*args, "--image-size", "1000", "--rotations", rot, "--keypoints"]) == 2
    assert "--keypoints: only for mesh models" in capsys.readouterr().err
