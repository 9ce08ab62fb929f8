"""Shared pieces of the adversarial suite: tiny H36M files, a tiny model, a CLI runner."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest

from condflow.cli import main

SUBJECTS = ("S1", "S9")
ACTIONS = ("Walking", "Eating")
FRAMES = 6

TINY_MODEL = {"lifter_hidden": 16, "lifter_blocks": 1, "flow_hidden": 8, "flow_blocks": 2,
              "flow_residual_blocks": 1}
TINY = {
    "task": "lifting",
    "data": {"train_size": 64, "test_size": 32},
    "model": TINY_MODEL,
    "train": {"steps": 2, "batch_size": 32, "checkpoint_every": 1, "log_every": 1,
              "warmup_steps": 1, "threads": 1, "device": "cpu"},
    "eval": {"num_samples": [1, 2], "batch_size": 32, "picture_examples": 1},
}


def tiny_config(output_dir: Path | str, **model) -> dict:
    raw = copy.deepcopy(TINY)
    raw["output_dir"] = str(output_dir)
    raw["model"].update(model)
    return raw


def camera() -> dict:
    return {"orientation": [1.0, 0.0, 0.0, 0.0], "translation": [0.0, 0.0, -4500.0],
            "center": [500.0, 500.0], "focal_length": [1145.0, 1145.0],
            "res_w": 1000, "res_h": 1000}


def h36m_arrays(rng: np.random.Generator | None = None) -> tuple[dict, dict]:
    rng = rng or np.random.default_rng(0)
    p3 = {s: {a: rng.normal(0, 0.3, (FRAMES, 32, 3)).astype(np.float32) for a in ACTIONS}
          for s in SUBJECTS}
    p2 = {s: {a: [rng.uniform(0, 1000, (FRAMES, 17, 2)).astype(np.float32) for _ in range(4)]
              for a in ACTIONS} for s in SUBJECTS}
    return p3, p2


@pytest.fixture
def h36m_files(tmp_path):
    """``(path_3d, path_2d, cameras)`` of a valid tiny VideoPose3D-format set."""
    from condflow.data.h36m import write_h36m_cameras, write_h36m_lifting_npz

    p3, p2 = h36m_arrays()
    path_3d, path_2d = tmp_path / "data_3d_h36m.npz", tmp_path / "data_2d_h36m_gt.npz"
    write_h36m_lifting_npz(path_3d, path_2d, p3, p2)
    cams = tmp_path / "cameras.json"
    write_h36m_cameras(cams, {s: [camera()] * 4 for s in SUBJECTS})
    return path_3d, path_2d, cams


@pytest.fixture(scope="session")
def model_file(tmp_path_factory):
    """A one-file tiny lifting model (untrained weights) and its config."""
    import condflow
    from condflow.saving import build_model
    from condflow.tasks import load_config

    cfg = load_config(tiny_config(tmp_path_factory.mktemp("run") / "run"))
    path = tmp_path_factory.mktemp("model") / "lifting.pt"
    return condflow.save(build_model(cfg), path, cfg), cfg


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory):
    """``(config yaml, output_dir)`` of a finished 2-step training run."""
    import yaml

    root = tmp_path_factory.mktemp("trained")
    cfg_path = root / "tiny.yaml"
    cfg_path.write_text(yaml.safe_dump(tiny_config(root / "run")))
    assert main(["train", str(cfg_path), "--no-progress", "--set", "train.lr=2e-3"]) == 0
    return cfg_path, root / "run"


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    """Run ``condflow argv`` in-process; returns (status, stdout, stderr) and checks that
    no traceback reached the user."""
    status = main([str(a) for a in argv])
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err and "Traceback" not in captured.out
    return status, captured.out, captured.err


def one_line_error(status: int, err: str, command: str) -> str:
    """The single error line of a refused command (exit status 2)."""
    assert status == 2, err
    lines = [ln for ln in err.strip().splitlines() if ln.startswith(f"condflow {command}: error:")]
    assert len(lines) == 1, err
    return lines[0]
