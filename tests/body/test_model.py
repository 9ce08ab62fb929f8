import shutil

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from condflow.body.model import BodyModel, BodyOutput
from condflow.body.synthetic import (
    _h36m_targets,
    generate_synthetic_smpl,
    synthetic_joint_table,
)
from condflow.joints import H36M_JOINT_NAMES, SMPL_MODEL_FILENAME, SMPL_PARENTS


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("synthetic")
    generate_synthetic_smpl(out)
    return out


@pytest.fixture(scope="module")
def body(model_dir):
    return BodyModel(model_dir)


def _identity(batch, joints, dtype=torch.float32):
    return torch.eye(3, dtype=dtype).expand(batch, joints, 3, 3).clone()


def _random_rotations(batch, joints, seed, scale=0.5):
    rotvec = np.random.default_rng(seed).normal(0.0, scale, (batch, joints, 3))
    mats = Rotation.from_rotvec(rotvec.reshape(-1, 3)).as_matrix().reshape(batch, joints, 3, 3)
    return torch.as_tensor(rotvec, dtype=torch.float32), torch.as_tensor(mats, dtype=torch.float32)


def test_tpose_output_shapes_and_joint_locations(body):
    out = body(_identity(2, 1)[:, 0], _identity(2, 23), torch.zeros(2, 10))
    assert isinstance(out, BodyOutput)
    assert out.vertices.shape == (2, body.num_vertices, 3)
    assert out.joints.shape == (2, 24, 3)
    assert out.eval_joints.shape == (2, len(H36M_JOINT_NAMES), 3)
    table = torch.as_tensor(synthetic_joint_table(), dtype=torch.float32)
    assert torch.allclose(out.joints[1], table, atol=1e-5)
    h36m = torch.as_tensor(_h36m_targets(synthetic_joint_table()), dtype=torch.float32)
    assert torch.allclose(out.eval_joints[0], h36m, atol=1e-5)


def test_global_orient_accepts_both_layouts(body):
    _, rot = _random_rotations(3, 24, seed=0)
    a = body(rot[:, 0], rot[:, 1:], torch.zeros(3, 10))
    b = body(rot[:, :1], rot[:, 1:], torch.zeros(3, 10))
    assert torch.equal(a.vertices, b.vertices)


def test_axis_angle_matches_rotation_matrices(body):
    rotvec, rot = _random_rotations(4, 24, seed=1)
    betas = torch.randn(4, 10)
    a = body.forward_axis_angle(rotvec[:, 0], rotvec[:, 1:], betas)
    b = body(rot[:, 0], rot[:, 1:], betas)
    assert torch.allclose(a.vertices, b.vertices, atol=1e-5)
    assert torch.allclose(a.joints, b.joints, atol=1e-5)


def test_global_rotation_rotates_the_whole_body(body):
    rot = torch.as_tensor(Rotation.from_rotvec([0.0, np.pi / 2, 0.0]).as_matrix(),
                          dtype=torch.float32)[None]
    pose = _identity(1, 23)
    rest = body(_identity(1, 1)[:, 0], pose, torch.zeros(1, 10))
    turned = body(rot, pose, torch.zeros(1, 10))
    # SMPL rotates about the root joint
    root = rest.joints[:, :1]
    expected = (rest.vertices - root) @ rot[0].T + root
    assert torch.allclose(turned.vertices, expected, atol=1e-5)


def test_left_elbow_moves_left_forearm_only(body):
    rest_vertices = body(_identity(1, 1)[:, 0], _identity(1, 23), torch.zeros(1, 10)).vertices
    pose = _identity(1, 23)
    left_elbow = 18 - 1  # body_pose has no root
    pose[0, left_elbow] = torch.as_tensor(Rotation.from_rotvec([0, -1.5, 0]).as_matrix())
    out = body(_identity(1, 1)[:, 0], pose, torch.zeros(1, 10))
    moved = (out.vertices - rest_vertices).norm(dim=-1)[0]
    x, y = rest_vertices[0, :, 0], rest_vertices[0, :, 1]
    left_forearm = (x > 0.55) & (y > 0.1)
    right_leg = (x < 0) & (y < -0.4)
    assert moved[left_forearm].min() > 0.05
    assert moved[right_leg].max() == 0.0
    # flexion brings the left wrist forward (+z)
    assert out.joints[0, 20, 2] > 0.15


def test_transl_shifts_everything(body):
    t = torch.tensor([[0.5, -1.0, 2.0]])
    a = body(_identity(1, 1)[:, 0], _identity(1, 23), torch.zeros(1, 10))
    b = body(_identity(1, 1)[:, 0], _identity(1, 23), torch.zeros(1, 10), t)
    assert torch.allclose(b.vertices, a.vertices + t, atol=1e-6)
    assert torch.allclose(b.joints, a.joints + t, atol=1e-6)
    assert torch.allclose(b.eval_joints, a.eval_joints + t, atol=1e-6)


def test_eval_joints_follow_the_pose(body):
    rotvec, _ = _random_rotations(3, 24, seed=2, scale=0.3)
    out = body.forward_axis_angle(rotvec[:, 0], rotvec[:, 1:], torch.zeros(3, 10))
    # H36M's left wrist is regressed from the mesh; it stays near SMPL's left wrist joint
    assert (out.eval_joints[:, 13] - out.joints[:, 20]).norm(dim=-1).max() < 0.03
    assert torch.allclose(out.eval_joints, body.regress_eval_joints(out.vertices))


def test_batch_size_may_change_between_calls(body):
    for batch in (1, 5, 2):
        out = body(_identity(batch, 1)[:, 0], _identity(batch, 23), torch.zeros(batch, 10))
        assert out.vertices.shape[0] == batch


def test_float64_and_gradients(model_dir):
    body = BodyModel(model_dir, dtype=torch.float64)
    rotvec, _ = _random_rotations(2, 24, seed=3)
    rotvec = rotvec.double().requires_grad_()
    out = body.forward_axis_angle(rotvec[:, 0], rotvec[:, 1:], torch.zeros(2, 10,
                                                                          dtype=torch.float64))
    assert out.vertices.dtype == torch.float64 and out.eval_joints.dtype == torch.float64
    out.joints.sum().backward()
    assert torch.isfinite(rotvec.grad).all() and rotvec.grad.abs().sum() > 0
    single = BodyModel(model_dir)
    out32 = single.forward_axis_angle(rotvec[:, 0].float().detach(),
                                      rotvec[:, 1:].float().detach(), torch.zeros(2, 10))
    assert torch.allclose(out.vertices.float(), out32.vertices, atol=1e-5)
    assert single.double().dtype == torch.float64


def test_properties(body):
    assert body.faces.dtype == torch.long and body.faces.shape[1] == 3
    assert int(body.faces.min()) == 0 and int(body.faces.max()) < body.num_vertices == 6890
    assert body.parents.tolist() == list(SMPL_PARENTS)
    assert body.is_synthetic
    assert list(body.parameters()) == []  # nothing for an optimizer to pick up by accident
    assert body.state_dict() == {}  # model-file arrays never end up in checkpoints
    assert len(list(body.buffers())) > 5  # yet they are buffers that move with .to()


def test_input_validation(body):
    eye1, eye23, betas = _identity(2, 1)[:, 0], _identity(2, 23), torch.zeros(2, 10)
    with pytest.raises(ValueError, match="body_pose"):
        body(eye1, _identity(2, 22), betas)
    with pytest.raises(ValueError, match="global_orient"):
        body(_identity(3, 1)[:, 0], eye23, betas)
    with pytest.raises(ValueError, match="betas"):
        body(eye1, eye23, torch.zeros(2, 11))
    bad = eye23.clone()
    bad[0, 3, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="body_pose.*NaN"):
        body(eye1, bad, betas)
    with pytest.raises(ValueError, match="dtype"):
        body(eye1, eye23, betas.double())
    with pytest.raises(ValueError, match="transl"):
        body(eye1, eye23, betas, torch.zeros(2, 2))
    with pytest.raises(ValueError, match="body_pose"):
        body.forward_axis_angle(torch.zeros(2, 3), torch.zeros(2, 69), betas)


def test_missing_model_file_gives_clear_error(tmp_path, monkeypatch):
    missing = tmp_path / "nowhere" / "SMPL_NEUTRAL.pkl"
    with pytest.raises(FileNotFoundError, match="nowhere.*CONDFLOW_SMPL_PATH"):
        BodyModel(missing)
    with pytest.raises(FileNotFoundError, match="SMPL_MALE.pkl"):
        BodyModel(tmp_path, gender="male")
    monkeypatch.setenv("CONDFLOW_SMPL_PATH", str(missing))
    with pytest.raises(FileNotFoundError, match=r"\$CONDFLOW_SMPL_PATH"):
        BodyModel()
    with pytest.raises(ValueError, match="gender"):
        BodyModel(tmp_path, gender="other")


def test_environment_variable_and_synthetic_default(model_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("CONDFLOW_SMPL_PATH", str(model_dir / SMPL_MODEL_FILENAME))
    assert BodyModel().model_file == model_dir / SMPL_MODEL_FILENAME
    monkeypatch.delenv("CONDFLOW_SMPL_PATH")
    monkeypatch.setenv("CONDFLOW_CACHE_DIR", str(tmp_path))
    body = BodyModel()
    assert body.model_file == tmp_path / "body" / "synthetic-v2" / SMPL_MODEL_FILENAME
    with pytest.raises(ValueError, match="neutral only"):
        BodyModel(gender="female")


def test_model_without_eval_regressor(model_dir, tmp_path):
    shutil.copy(model_dir / SMPL_MODEL_FILENAME, tmp_path / SMPL_MODEL_FILENAME)
    body = BodyModel(tmp_path)
    out = body(_identity(1, 1)[:, 0], _identity(1, 23), torch.zeros(1, 10))
    assert out.eval_joints is None
    with pytest.raises(FileNotFoundError, match="J_regressor_h36m.npy"):
        body(_identity(1, 1)[:, 0], _identity(1, 23), torch.zeros(1, 10), eval_joints=True)
    bad = tmp_path / "bad.npy"
    np.save(bad, np.zeros((17, 5)))
    with pytest.raises(ValueError, match="eval_regressor_path"):
        BodyModel(tmp_path, eval_regressor_path=bad)
