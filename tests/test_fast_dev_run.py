"""``--fast-dev-run`` on every shipped configuration, and ``condflow eval CHECKPOINT`` from the
configuration stored in the checkpoint."""

import json
from pathlib import Path

import pytest
import yaml

from condflow.checkpoint import load_checkpoint
from condflow.cli import main
from condflow.config import merge_config
from condflow.tasks import load_config

FAST = ("--fast-dev-run", "--no-progress")
DEMO = Path(__file__).parent / "fixtures" / "prohmr" / "demo"


#: The four shipped configurations: every encoder x output space.
SHIPPED = ["lifting", "mesh_recovery", "keypoints_to_mesh", "image_to_skeleton"]


@pytest.mark.parametrize("name", SHIPPED)
def test_fast_dev_run_trains_evaluates_draws_and_exports(name, tmp_path, capsys):
    out = tmp_path / name
    assert main(["train", name, *FAST, "--set", f"output_dir={out}"]) == 0
    run = out / "fast_dev_run"
    ckpt = run / "checkpoints" / "last.pt"
    saved = load_checkpoint(ckpt)
    assert saved["step"] == 3
    assert saved["config"]["output_dir"] == str(run)
    assert not (out / "checkpoints").exists()  # a real run's folder is never written
    metrics = json.loads((run / "eval.json").read_text())
    assert metrics and (run / "eval.png").stat().st_size > 1000
    assert "| mode |" in capsys.readouterr().out
    # eval from the checkpoint alone: its own config, its own data settings
    assert main(["eval", str(ckpt), "--no-picture", "--out", str(tmp_path / "again.json")]) == 0
    text = capsys.readouterr().out
    assert "data settings as in training" in text
    assert json.loads((tmp_path / "again.json").read_text()) == metrics
    # export: the mode predictor, verified against the eager model by the command
    assert main(["export", str(ckpt), "--out", str(tmp_path / "model.pt2")]) == 0
    assert (tmp_path / "model.pt2").stat().st_size > 1000
    # predict on what the encoder reads: an image, or an OpenPose keypoint file
    reads = "person.png" if name in ("mesh_recovery", "image_to_skeleton") else \
        "person_keypoints.json"
    assert main(["predict", str(ckpt), str(DEMO / reads), "--out", str(tmp_path / "pred"),
                 "--samples", "2", "--no-progress"]) == 0
    (npz,) = (tmp_path / "pred").glob("*.npz")
    assert (tmp_path / "pred" / f"{npz.stem}.png").stat().st_size > 1000
    # fit the learned prior to the person's keypoints (the image: the input of image models)
    assert main(["fit", str(ckpt), str(DEMO / "person_keypoints.json"), "--image",
                 str(DEMO / "person.png"), "--out", str(tmp_path / "fit"), "--iters", "5",
                 "--no-progress"]) == 0
    fitted = json.loads((tmp_path / "fit" / "fit.json").read_text())
    assert fitted["configuration"] and (tmp_path / "fit" / "fit.png").stat().st_size > 1000


def test_eval_overrides_name_the_changed_data_settings(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "lifting", *FAST, "--set", f"output_dir={out}"]) == 0
    capsys.readouterr()
    ckpt = out / "fast_dev_run" / "checkpoints" / "last.pt"
    override = tmp_path / "override.yaml"
    override.write_text(yaml.safe_dump({"data": {"test_size": 16}}))
    args = ["--no-picture", "--out", str(tmp_path / "e.json")]
    assert main(["eval", str(ckpt), "--config", str(override), *args]) == 0
    assert "changed from training: data.test_size: 32 -> 16" in capsys.readouterr().out
    again = [*args, "--overwrite", "--set", "data.test_size=8"]
    assert main(["eval", str(override), str(ckpt), *again]) == 0
    assert "data.test_size: 32 -> 8" in capsys.readouterr().out  # the older CONFIG CHECKPOINT form


def test_merge_config_replaces_only_the_named_keys_and_copies():
    base = {"task": "lifting", "data": {"train_size": 10, "test_size": 5}, "seed": 1}
    merged = merge_config(base, {"data": {"test_size": 3}, "seed": 2})
    assert merged == {
        "task": "lifting",
        "data": {"train_size": 10, "test_size": 3},
        "seed": 2,
    }
    assert base["data"]["test_size"] == 5
    load_config(base, ["data.test_size=7"])
    assert base["data"]["test_size"] == 5  # overrides never write into the caller's dict
