"""Installed configurations: named on the command line, the same bytes as examples/, and
present after a non-editable install."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from condflow.cli import main
from condflow.configs import config_names, resolve_config
from condflow.tasks import load_config

ROOT = Path(__file__).parents[1]
EXAMPLES = {
    "lifting": "examples/lifting/config.yaml",
    "lifting_h36m": "examples/lifting/h36m.yaml",
    "lifting_paper": "examples/lifting/paper.yaml",
    "mesh_recovery": "examples/mesh_recovery/cpu.yaml",
    "mesh_recovery_paper": "examples/mesh_recovery/paper.yaml",
    "keypoints_to_mesh": "examples/keypoints_to_mesh/config.yaml",
    "image_to_skeleton": "examples/image_to_skeleton/config.yaml",
}


def test_every_example_config_is_installed_under_its_name():
    assert config_names() == sorted(EXAMPLES)
    for name, rel in EXAMPLES.items():
        assert resolve_config(name).read_bytes() == (ROOT / rel).read_bytes(), name


@pytest.mark.parametrize("name", ["lifting", "lifting_paper", "mesh_recovery"])
def test_a_name_loads_like_its_file(name):
    assert load_config(name) == load_config(ROOT / EXAMPLES[name])


def test_an_existing_path_wins_over_a_name(tmp_path, monkeypatch):
    (tmp_path / "lifting").write_text("task: lifting\noutput_dir: mine\n")
    monkeypatch.chdir(tmp_path)
    assert load_config("lifting").output_dir == "mine"


def test_unknown_name_lists_the_installed_ones(capsys):
    installed = r"installed: image_to_skeleton, keypoints_to_mesh, lifting, lifting_h36m"
    with pytest.raises(FileNotFoundError, match=r"'nosuch'.*" + installed):
        resolve_config("nosuch")
    assert main(["train", "nosuch"]) == 2
    assert "no installed configuration named 'nosuch'" in capsys.readouterr().err


def test_configs_command_lists_and_prints(capsys):
    assert main(["configs"]) == 0
    out = capsys.readouterr().out
    for name in EXAMPLES:
        assert name in out
    assert "MLP lifter" in out  # the summary line
    assert main(["configs", "mesh_recovery"]) == 0
    assert capsys.readouterr().out == (ROOT / EXAMPLES["mesh_recovery"]).read_text()


def test_configs_work_after_a_non_editable_install(tmp_path):
    """Build a wheel from a copy of the checkout, install it into a folder, and load a
    configuration by name from a directory outside the checkout."""
    src = tmp_path / "src"
    for rel in ("condflow", "examples"):
        skip = shutil.ignore_patterns("__pycache__")
        shutil.copytree(ROOT / rel, src / rel, symlinks=True, ignore=skip)
    for rel in ("setup.cfg", "pyproject.toml", "README.md"):
        shutil.copy2(ROOT / rel, src / rel)
    wheels, site = tmp_path / "wheels", tmp_path / "site"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", wheels, src],
        check=True,
        cwd=tmp_path,
    )
    (wheel,) = wheels.glob("condflow-*.whl")
    subprocess.run([*pip, "install", "--no-deps", "--target", site, wheel], check=True)
    assert not (site / "condflow" / "configs" / "lifting.yaml").is_symlink()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    code = (
        "import condflow, condflow.tasks as c; "
        "print(condflow.__file__); print(c.load_config('mesh_recovery').model.space.kind)"
    )
    env = {**os.environ, "PYTHONPATH": str(site)}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=elsewhere, env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    where, task = out.stdout.split()
    assert Path(where).is_relative_to(site)
    assert task == "smpl_6d"
    # the smoke test a new user runs first, by name, outside the checkout
    run = subprocess.run(
        [sys.executable, "-m", "condflow", "train", "lifting", "--fast-dev-run", "--no-progress",
         "--set", "output_dir=out"], cwd=elsewhere, env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert (elsewhere / "out" / "fast_dev_run" / "checkpoints" / "last.pt").is_file()
    assert (elsewhere / "out" / "fast_dev_run" / "eval.png").is_file()
