"""examples/custom_space: a user's output space and data source, registered from a module
outside the package, train, evaluate and export through the command line."""

import json
from pathlib import Path

import pytest
import torch

from condflow.cli import main
from condflow.spaces.base import OutputSpace
from condflow.spaces.registry import SPACES

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "custom_space"
PLUGIN = ["--plugin", str(EXAMPLE / "hand.py")]


@pytest.fixture(scope="module")
def hand():
    from condflow._registry import load_plugins

    load_plugins([str(EXAMPLE / "hand.py")], entry_points=False)
    import sys

    return sys.modules["condflow_plugin_hand"]


def test_the_bone_space_is_an_output_space_with_unit_jacobian(hand):
    space = hand.HandBoneSpace()
    assert isinstance(space, OutputSpace) and space.dim == 60
    x = torch.randn(4, 60, dtype=torch.float64)
    joints = space.to_native(x)
    assert joints.shape == (4, 21, 3) and (joints[:, 0] == 0).all()
    torch.testing.assert_close(space.from_native(joints), x, rtol=0, atol=1e-12)
    # bone vectors → non-root joints is linear with determinant 1: densities carry over
    jac = torch.autograd.functional.jacobian(lambda v: space.to_native(v)[1:].flatten(), x[0])
    sign, logdet = torch.linalg.slogdet(jac)
    assert sign == 1 and abs(logdet) < 1e-12
    with pytest.raises(ValueError, match=r"native: expected \[\.\.\., 21, 3\]"):
        space.from_native(torch.zeros(2, 17, 3))


def test_the_synthetic_hands_are_consistent(hand):
    data = hand.make_hands(64, seed=0, noise_px=0.0, dropout=0.0)
    joints, kp = data["joints_3d"].double(), data["keypoints_2d"].double()
    bones = joints[:, 1:] - joints[:, list(hand.PARENTS[1:])]
    lengths = bones.norm(dim=-1).reshape(64, 5, 4)
    torch.testing.assert_close(lengths, torch.as_tensor(hand.BONES_MM).expand(64, 5, 4),
                               rtol=1e-5, atol=1e-3)  # rigid fingers: only angles vary
    assert (kp[..., 2] == 1).all() and kp.isfinite().all()
    assert (kp[..., :2].abs() < 1).double().mean() > 0.95  # in the image


def test_train_eval_export_through_the_cli(tmp_path, capsys, monkeypatch):
    out = tmp_path / "hands"
    config = str(EXAMPLE / "config.yaml")
    assert main([*PLUGIN, "train", config, "--fast-dev-run", "--no-progress",
                 "--set", f"output_dir={out}"]) == 0
    ckpt = out / "fast_dev_run" / "checkpoints" / "last.pt"
    metrics = json.loads((out / "fast_dev_run" / "eval.json").read_text())
    assert metrics["examples"] == 32 and metrics["mode/mpjpe"] > 0
    assert main([*PLUGIN, "eval", str(ckpt), "--no-picture", "--no-progress",
                 "--out", str(tmp_path / "again.json")]) == 0
    assert json.loads((tmp_path / "again.json").read_text()) == metrics
    assert main([*PLUGIN, "export", str(ckpt), "--out", str(tmp_path / "hands.pt2")]) == 0
    program = torch.export.load(str(tmp_path / "hands.pt2")).module()
    joints = program(torch.zeros(3, 21, 3))
    joints = joints[0] if isinstance(joints, tuple | list) else joints
    assert joints.shape[-2:] == (21, 3)
    capsys.readouterr()
    # without the plugin, the checkpoint's space is unknown, and the error says what to do
    monkeypatch.setattr(SPACES, "_entries", dict(SPACES._entries))
    SPACES.unregister("hand_bones")
    assert main(["eval", str(ckpt), "--no-picture", "--out", str(tmp_path / "x.json")]) == 2
    assert "--plugin" in capsys.readouterr().err
