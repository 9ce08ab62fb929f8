"""The shared training loop: exact resume, crash safety, DDP equivalence, config errors."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from condflow.checkpoint import load_checkpoint
from condflow.cli import main as cli_main
from condflow.losses.lifting import LiftingObjective
from condflow.tasks import load_config
from condflow.train import train

TINY = {
    "task": "lifting",
    "data": {"train_size": 256, "test_size": 64},
    "model": {
        "lifter_hidden": 32,
        "lifter_blocks": 1,
        "flow_blocks": 2,
        "flow_hidden": 16,
        "flow_residual_blocks": 1,
    },
    "train": {
        "steps": 6,
        "batch_size": 32,
        "checkpoint_every": 3,
        "log_every": 1,
        "warmup_steps": 2,
        "threads": 1,
    },
    "eval": {"num_samples": [1, 5], "batch_size": 64, "picture_examples": 2},
}


def tiny(tmp_path: Path, name: str, **sections) -> dict:
    raw = {k: dict(v) if isinstance(v, dict) else v for k, v in TINY.items()}
    for key, value in sections.items():
        raw[key] = {**raw.get(key, {}), **value}
    raw["output_dir"] = str(tmp_path / name)
    return raw


def params(path: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(path)["model"]


def test_resume_after_crash_continues_exactly(tmp_path, monkeypatch):
    straight = train(load_config(tiny(tmp_path, "straight")), progress=False)

    calls = {"n": 0}
    original = LiftingObjective.forward

    def crash_on_fifth(self, batch):
        calls["n"] += 1
        if calls["n"] == 5:
            raise RuntimeError("simulated crash")
        return original(self, batch)

    cfg = load_config(tiny(tmp_path, "resumed"))
    monkeypatch.setattr(LiftingObjective, "forward", crash_on_fifth)
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(cfg, progress=False)
    monkeypatch.setattr(LiftingObjective, "forward", original)
    saved = load_checkpoint(tmp_path / "resumed" / "checkpoints" / "last.pt")
    assert saved["step"] == 3  # the crash lost nothing that had been saved
    resumed = train(cfg, resume=True, progress=False)
    assert load_checkpoint(resumed)["step"] == 6
    a, b = params(straight), params(resumed)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    log = (tmp_path / "resumed" / "log.csv").read_text().splitlines()
    assert [row.split(",")[0] for row in log[1:]] == ["1", "2", "3", "4", "5", "6"]


def test_loss_decreases_and_eval_writes_table_json_and_png(tmp_path, capsys):
    raw = tiny(tmp_path, "run", train={"steps": 40, "checkpoint_every": 40, "lr": 3e-3})
    cfg_path = tmp_path / "cfg.yaml"
    cfg_path.write_text(yaml.safe_dump(raw))
    assert cli_main(["train", str(cfg_path), "--no-progress"]) == 0
    rows = (tmp_path / "run" / "log.csv").read_text().splitlines()
    losses = [float(r.split(",")[-1]) for r in rows[1:]]
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5
    ckpt = tmp_path / "run" / "checkpoints" / "last.pt"
    assert cli_main(["eval", str(cfg_path), str(ckpt)]) == 0
    out = capsys.readouterr().out
    assert "| mode |" in out and "| min-of-5 |" in out
    assert (tmp_path / "run" / "eval.json").is_file() and (tmp_path / "run" / "eval.png").is_file()
    assert f"picture: {tmp_path / 'run' / 'eval.png'}" in out
    assert (tmp_path / "run" / "loss.png").is_file()  # the loss curves, written by train
    assert "Spearman" in out and "Coverage of per-joint q-regions" in out
    assert (tmp_path / "run" / "eval_calibration.png").stat().st_size > 1000


def test_config_errors_name_the_key(tmp_path):
    with pytest.raises(ValueError, match=r"train: unknown key\(s\) \['stpes'\]"):
        load_config({"task": "lifting", "train": {"stpes": 3}})
    with pytest.raises(ValueError, match=r"model\.flow_blocks: expected int"):
        load_config({"task": "lifting", "model": {"flow_blocks": "four"}})
    with pytest.raises(ValueError, match="task: 'nope' is not a configuration any more"):
        load_config({"task": "nope"})
    with pytest.raises(FileNotFoundError, match="config: no such file"):
        load_config(tmp_path / "absent.yaml")
    cfg = load_config({"task": "lifting"}, ["train.steps=7", "model.kind=regression"])
    assert cfg.train.steps == 7 and cfg.model.kind == "regression"


def test_non_finite_loss_stops_before_overwriting_checkpoint(tmp_path, monkeypatch):
    cfg = load_config(tiny(tmp_path, "nan"))
    original = LiftingObjective.forward

    calls = {"n": 0}

    def nan_after_three(self, batch):
        calls["n"] += 1
        out = original(self, batch)
        if calls["n"] > 3:
            out["loss"] = out["loss"] * float("nan")
        return out

    monkeypatch.setattr(LiftingObjective, "forward", nan_after_three)
    with pytest.raises(FloatingPointError, match="non-finite loss"):
        train(cfg, progress=False)
    ckpt = load_checkpoint(tmp_path / "nan" / "checkpoints" / "last.pt")
    assert ckpt["step"] == 3
    assert all(torch.isfinite(v).all() for v in ckpt["model"].values() if v.is_floating_point())


@pytest.mark.skipif(
    shutil.which("torchrun", path=os.path.dirname(sys.executable)) is None,
    reason="torchrun not installed",
)
def test_two_processes_train_like_one_with_the_same_global_batch(tmp_path):
    # Batch norm keeps per-process statistics under DDP (SyncBatchNorm needs a GPU), and
    # dropout draws per process, so this comparison uses a model without either.
    sections = {"model": {"batch_norm": False, "lifter_dropout": 0.0},
                "train": {"device": "cpu"}}  # gloo: also where a single GPU is visible
    paths = {}
    for name, nproc in (("one", 1), ("two", 2)):
        raw = tiny(tmp_path, name, **sections)
        cfg_path = tmp_path / f"{name}.yaml"
        cfg_path.write_text(yaml.safe_dump(raw))
        torchrun = os.path.join(os.path.dirname(sys.executable), "torchrun")
        subprocess.run(
            [
                torchrun,
                "--standalone",
                f"--nproc_per_node={nproc}",
                "-m",
                "condflow",
                "train",
                str(cfg_path),
                "--no-progress",
            ],
            check=True,
            capture_output=True,
            timeout=300,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
        )
        paths[name] = tmp_path / name / "checkpoints" / "last.pt"
    a, b = params(paths["one"]), params(paths["two"])
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-5, rtol=1e-4), k
