"""The command line: no input or foreign file is ever overwritten, bad arguments end in one
line naming them, and no traceback reaches the user."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import yaml

from condflow.checkpoint import state_checksum

from .conftest import one_line_error, run_cli, tiny_config


def keypoints(path, people=1):
    rng = np.random.default_rng(0)
    kp = np.concatenate([rng.uniform(300, 700, (people, 25, 2)), np.ones((people, 25, 1))], -1)
    path.write_text(json.dumps({"people": [{"pose_keypoints_2d": p.ravel().tolist()}
                                           for p in kp]}))
    return path


def predict(capsys, model, *args):
    return run_cli(capsys, "predict", model, *args, "--samples", "2", "--no-progress",
                   "--no-picture")


def test_predict_into_the_input_folder_never_replaces_the_input(model_file, tmp_path, capsys):
    model, _ = model_file
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    kp = keypoints(inputs / "x.json")
    before = kp.read_bytes()
    for extra in ((), ("--overwrite",)):
        status, _, err = predict(capsys, model, kp, "--out", inputs, *extra)
        assert status == 1 and f"--out: {inputs / 'x.json'} is an input of this command" in err
        assert kp.read_bytes() == before
        assert not (inputs / "x.npz").exists()  # refused before anything was written


def test_predict_refuses_existing_outputs_without_overwrite(model_file, tmp_path, capsys):
    model, _ = model_file
    kp = keypoints(tmp_path / "x.json")
    out = tmp_path / "out"
    out.mkdir()
    (out / "x.npz").write_bytes(b"precious")
    status, _, err = predict(capsys, model, kp, "--out", out)
    assert status == 1 and f"{out / 'x.npz'} already exists and was not written by this run" in err
    assert (out / "x.npz").read_bytes() == b"precious"
    status, _, _ = predict(capsys, model, kp, "--out", out, "--overwrite")
    assert status == 0 and np.load(out / "x.npz")["mode"].shape == (1, 17, 3)


def test_predict_two_inputs_with_one_stem_get_distinct_outputs(model_file, tmp_path, capsys):
    model, _ = model_file
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    one, two = keypoints(tmp_path / "a" / "x.json", 1), keypoints(tmp_path / "b" / "x.json", 2)
    out = tmp_path / "out"
    status, _, _ = predict(capsys, model, one, two, "--out", out)
    assert status == 0
    assert np.load(out / "x.npz")["mode"].shape[0] == 1
    assert np.load(out / "x_2.npz")["mode"].shape[0] == 2


@pytest.mark.parametrize("where", ["file", "nested"])
def test_unwritable_out_is_named(model_file, tmp_path, capsys, where):
    model, _ = model_file
    kp = keypoints(tmp_path / "x.json")
    blocker = tmp_path / "plain.txt"
    blocker.write_text("a file, not a folder")
    out = blocker if where == "file" else blocker / "sub" / "dir"
    status, _, err = predict(capsys, model, kp, "--out", out)
    line = one_line_error(status, err, "predict")
    assert f"--out: {blocker} is a file" in line


def test_export_never_writes_over_its_model_or_a_foreign_file(model_file, tmp_path, capsys):
    model, _ = model_file
    before = model.read_bytes()
    for extra in ((), ("--overwrite",)):
        status, _, err = run_cli(capsys, "export", model, "--format", "torchscript",
                                 "--out", model, *extra)
        assert f"--out: {model} is an input of this command" in one_line_error(status, err,
                                                                               "export")
    assert model.read_bytes() == before
    foreign = tmp_path / "other.pt"
    foreign.write_bytes(b"keep me")
    status, _, err = run_cli(capsys, "export", model, "--format", "torchscript", "--out", foreign)
    assert "already exists and was not written by this run; pass --overwrite" in \
        one_line_error(status, err, "export")
    assert foreign.read_bytes() == b"keep me"


def test_convert_smpl_refuses_to_replace_its_source(tmp_path, capsys):
    src = tmp_path / "SMPL.pkl"
    src.write_bytes(b"official file")
    status, _, err = run_cli(capsys, "convert-smpl", src, src, "--overwrite")
    assert f"DST: {src} is an input of this command" in one_line_error(status, err,
                                                                       "convert-smpl")
    assert src.read_bytes() == b"official file"


def test_convert_smpl_of_a_pickled_payload_runs_nothing(tmp_path, capsys):
    import os
    import pickle

    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return os.system, (f"touch {marker}",)

    src = tmp_path / "SMPL.pkl"
    src.write_bytes(pickle.dumps({"v_template": Payload()}))
    status, _, err = run_cli(capsys, "convert-smpl", src, tmp_path / "out.pkl")
    assert "refusing to load posix.system" in one_line_error(status, err, "convert-smpl")
    assert not marker.exists() and not (tmp_path / "out.pkl").exists()


def _yaml(tmp_path, raw, name="c.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(raw))
    return path


def test_train_refuses_to_start_over_an_existing_run(trained_run, capsys):
    config, run = trained_run
    last = run / "checkpoints" / "last.pt"
    before = last.read_bytes()
    status, _, err = run_cli(capsys, "train", config, "--no-progress")
    line = one_line_error(status, err, "train")
    assert f"output_dir: {last} already exists" in line and "--resume" in line
    assert last.read_bytes() == before


def test_eval_json_never_replaces_the_config(trained_run, capsys):
    config, run = trained_run
    before = config.read_bytes()
    status, _, err = run_cli(capsys, "eval", config, run / "checkpoints" / "last.pt",
                             "--out", config, "--overwrite", "--no-picture")
    assert f"--out: {config} is an input of this command" in one_line_error(status, err, "eval")
    assert config.read_bytes() == before


@pytest.mark.parametrize("override, key", [
    ("model.flow_hidden=12", "model.flow_hidden=8 (here 12)"),
    ("model.lifter_hidden=24", "model.lifter_hidden: now model.encoder.hidden, which is also "
                               "given, as 16 (here 24); give only one"),
    ("model.flow_blocks=3", "model.flow_blocks=2 (here 3)"),
])
def test_eval_with_other_model_sizes_names_the_keys(trained_run, capsys, override, key):
    config, run = trained_run
    status, _, err = run_cli(capsys, "eval", config, run / "checkpoints" / "last.pt",
                             "--set", override, "--no-picture", "--out", run / "x.json")
    line = one_line_error(status, err, "eval")
    assert key in line and len(line) < 400


def test_resume_with_other_model_sizes_names_the_keys(trained_run, tmp_path, capsys):
    config, run = trained_run
    raw = yaml.safe_load(config.read_text())
    raw["model"]["flow_hidden"] = 12
    other = _yaml(tmp_path, raw)
    status, _, err = run_cli(capsys, "train", other, "--resume", "--no-progress",
                             "--set", "train.steps=3")
    line = one_line_error(status, err, "train")
    assert "--resume" in line and "model.flow_hidden=8 (here 12)" in line and len(line) < 400


def test_resume_from_a_model_file_is_explained(trained_run, model_file, tmp_path, capsys):
    model, _ = model_file
    config = _yaml(tmp_path, tiny_config(tmp_path / "fresh"))
    status, _, err = run_cli(capsys, "train", config, "--resume", model, "--no-progress")
    line = one_line_error(status, err, "train")
    assert f"--resume: {model} is a model file (condflow.save)" in line


def test_checkpoint_with_nan_weights_is_refused_by_eval(trained_run, tmp_path, capsys):
    config, run = trained_run
    ckpt = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    key = next(k for k, v in ckpt["model"].items() if v.is_floating_point())
    ckpt["model"][key].view(-1)[0] = float("nan")
    ckpt["checksum"] = state_checksum(ckpt["model"], ckpt["config"])
    bad = tmp_path / "nan.pt"
    torch.save(ckpt, bad)
    status, _, err = run_cli(capsys, "eval", config, bad, "--no-picture",
                             "--out", tmp_path / "e.json")
    assert f"holds NaN or Inf weights in ['{key}']" in one_line_error(status, err, "eval")


@pytest.mark.parametrize("override, key", [
    ("train.batch_size=-8", "train.batch_size"),
    ("train.batch_size=0", "train.batch_size"),
    ("train.steps=0", "train.steps"),
    ("data.train_size=0", "data.train_size"),
    ("model.flow_hidden=0", "model.flow_hidden"),
    ("train.lr=abc", "train.lr"),
    ("train.device=tpu", "train.device"),
])
def test_bad_config_values_end_in_one_line(tmp_path, capsys, override, key):
    config = _yaml(tmp_path, tiny_config(tmp_path / "run"))
    status, _, err = run_cli(capsys, "train", config, "--set", override, "--no-progress")
    assert one_line_error(status, err, "train").startswith(f"condflow train: error: {key}:")
    assert not (tmp_path / "run").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_on_a_cpu_machine_is_named(tmp_path, capsys):
    config = _yaml(tmp_path, tiny_config(tmp_path / "run"))
    status, _, err = run_cli(capsys, "train", config, "--set", "train.device=cuda",
                             "--no-progress")
    assert "train.device: 'cuda' requested, but CUDA is not available" in \
        one_line_error(status, err, "train")


@pytest.mark.parametrize("text", ["task: lifting\ntrain: [1,\n", "hello\n", "- 1\n- 2\n"])
def test_invalid_yaml_ends_in_one_line(tmp_path, capsys, text):
    config = tmp_path / "c.yaml"
    config.write_text(text)
    status, _, err = run_cli(capsys, "train", config, "--no-progress")
    assert str(config) in one_line_error(status, err, "train")


def test_predict_device_that_does_not_exist_is_named(model_file, tmp_path, capsys):
    model, _ = model_file
    status, _, err = predict(capsys, model, keypoints(tmp_path / "x.json"), "--device", "tpu",
                             "--out", tmp_path / "o")
    assert "--device: unknown device 'tpu'" in one_line_error(status, err, "predict")
