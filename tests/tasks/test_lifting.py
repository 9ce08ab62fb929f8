"""Lifting task pieces: synthetic set, skeleton head, regression head, H36M source."""

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from condflow.bijectors import CouplingNet
from condflow.data.h36m import write_h36m_cameras, write_h36m_lifting_npz
from condflow.data.synthetic_lifting import LiftingSetConfig, make_lifting_set
from condflow.encoders.mlp_lifter import MLPLifter
from condflow.heads.skeleton import SkeletonHead, SkeletonRegressionHead
from condflow.spaces.skeleton import H36M_17, SkeletonSpace
from condflow.tasks import JointsTask, load_config

SPACE = SkeletonSpace(H36M_17, drop_root=True)


def test_synthetic_set_is_seeded_occluded_and_root_relative():
    cfg = LiftingSetConfig(size=300, seed=3, joint_dropout=0.2, limb_dropout=0.1)
    a, b = make_lifting_set(cfg), make_lifting_set(cfg)
    assert torch.equal(a["keypoints_2d"], b["keypoints_2d"])
    c = make_lifting_set(LiftingSetConfig(size=300, seed=4))
    assert not torch.equal(a["joints_3d"], c["joints_3d"])
    kp, joints = a["keypoints_2d"], a["joints_3d"]
    assert kp.shape == (300, 16, 3) and joints.shape == (300, 17, 3)
    hidden = kp[..., 2] == 0
    assert 0.15 < hidden.float().mean() < 0.45
    assert (kp[hidden][:, :2] == 0).all()
    assert (joints[:, 0] == 0).all()
    # Bodies are ~1.7 m tall and seen from every side: depth of the head relative to the hip
    # takes both signs (front/back views).
    height = (joints[:, 10] - joints[:, 3]).norm(dim=-1)
    assert 1100 < height.median() < 1900
    assert (joints[:, 14, 2] - joints[:, 11, 2]).sign().unique().numel() == 2


def tiny_head(**kw) -> SkeletonHead:
    mean, std = torch.randn(SPACE.dim) * 50, torch.rand(SPACE.dim) * 100 + 50
    enc = MLPLifter(16, 3, hidden=32, num_residual_blocks=1, dropout=0.0)
    return SkeletonHead(enc, SPACE, mean=mean, std=std, num_blocks=2,
                        coupling_net=CouplingNet(hidden_features=16), **kw)


def test_skeleton_head_density_is_in_millimetres_and_mode_is_most_likely():
    head = tiny_head().eval()
    kp = torch.randn(4, 16, 3)
    c = head.context(kp)
    joints = torch.randn(4, 17, 3) * 100
    joints[:, 0] = 0
    x = SPACE.from_joints(joints)
    # log p_mm(x) = log p_std((x - mean) / std) - Σ log std
    std_lp = head.flow.log_prob(x, c)
    z = (x - head.standardization.shift) / head.standardization.scale
    glow = head.flow.bijector.bijectors[0]
    z_glow, logdet = glow.inverse(z, c)
    expected = (
        -0.5 * z_glow.pow(2).sum(-1)
        - 0.5 * SPACE.dim * np.log(2 * np.pi)
        + logdet
        - head.standardization.scale.log().sum()
    )
    assert torch.allclose(std_lp, expected, atol=1e-4)
    assert torch.allclose(head.log_prob(joints, c), std_lp)
    mode = head.mode(c).joints[:, 0]
    samples, lp = head.sample_and_log_prob(50, c)
    assert mode.shape == (4, 17, 3) and samples.shape == (4, 50, 17, 3)
    assert (mode[:, 0] == 0).all() and (samples[:, :, 0] == 0).all()
    assert (head.log_prob(mode, c)[:, None] >= lp - 1e-4).all()
    assert torch.allclose(head(kp).joints[:, 0], mode)


def test_regression_head_outputs_millimetres():
    enc = MLPLifter(16, 3, hidden=32, num_residual_blocks=1, dropout=0.0, out_features=SPACE.dim)
    mean, std = torch.full((SPACE.dim,), 10.0), torch.full((SPACE.dim,), 200.0)
    head = SkeletonRegressionHead(enc, SPACE, mean, std).eval()
    kp = torch.randn(3, 16, 3)
    expected = SPACE.to_joints(enc(kp) * 200 + 10)
    assert torch.allclose(head(kp).joints[:, 0], expected)
    with pytest.raises(ValueError, match="out_features == 48"):
        SkeletonRegressionHead(MLPLifter(16, 3, hidden=8, out_features=5), SPACE)


def test_h36m_source_loads_standard_files_with_subject_split(tmp_path):
    rng = np.random.default_rng(0)
    cams, pos3, pos2 = {}, {}, {}
    for s in ("S1", "S5", "S9"):
        cams[s] = []
        for _ in range(4):
            rot = Rotation.random(random_state=int(rng.integers(1 << 30)))
            x, y, z, w = rot.as_quat()
            cams[s].append(
                {
                    "orientation": [w, x, y, z],
                    "translation": (-rot.apply([0, 0, 4500.0])).tolist(),
                    "center": [500.0, 500.0],
                    "focal_length": [1145.0, 1145.0],
                    "res_w": 1000,
                    "res_h": 1000,
                }
            )
        pos3[s] = {"Walking": rng.normal(scale=0.4, size=(6, 32, 3))}
        pos2[s] = {"Walking": [rng.uniform(0, 1000, size=(6, 17, 2)) for _ in range(4)]}
    write_h36m_lifting_npz(tmp_path / "d3.npz", tmp_path / "d2.npz", pos3, pos2)
    write_h36m_cameras(tmp_path / "cams.json", cams)
    cfg = load_config(
        {
            "task": "lifting",
            "data": {
                "source": "h36m",
                "h36m_3d": str(tmp_path / "d3.npz"),
                "h36m_2d": str(tmp_path / "d2.npz"),
                "h36m_cameras": str(tmp_path / "cams.json"),
                "h36m_train_subjects": ["S1", "S5"],
                "h36m_test_subjects": ["S9"],
            },
        }
    )
    train, test = JointsTask(cfg).datasets()
    assert len(train) == 2 * 4 * 6 and len(test) == 4 * 6  # S1, S5 train; S9 test
    item = train[0]
    assert item["keypoints_2d"].shape == (16, 3) and item["joints_3d"].shape == (17, 3)
    assert (item["keypoints_2d"][:, 2] == 1).all() and (item["joints_3d"][0] == 0).all()
    with pytest.raises(ValueError, match=r"needs \['h36m_cameras'\]"):
        JointsTask(
            load_config(
                {"task": "lifting", "data": {"source": "h36m", "h36m_3d": "a", "h36m_2d": "b"}}
            )
        ).datasets()


def test_evaluation_reports_uncertainty_with_and_without_conditional_volume(tmp_path):
    from condflow.train import evaluate, train

    base = {"task": "lifting", "data": {"train_size": 256, "test_size": 64},
            "model": {"lifter_hidden": 32, "lifter_blocks": 1, "flow_blocks": 2,
                      "flow_hidden": 16, "flow_residual_blocks": 1},
            "train": {"steps": 30, "batch_size": 32, "lr": 3e-3, "threads": 1},
            "eval": {"num_samples": [1, 5, 300], "batch_size": 32, "sample_chunk": 128,
                     "uncertainty_samples": 50}}
    results = {}
    for volume in (False, True):
        cfg = load_config({**base, "output_dir": str(tmp_path / str(volume)),
                           "model": {**base["model"], "conditional_volume": volume}})
        results[volume] = evaluate(cfg, train(cfg, progress=False), picture=False)
    for m in results.values():
        assert m["min_of_300/mpjpe"] <= m["min_of_5/mpjpe"] <= m["min_of_1/mpjpe"]
        assert -1 <= m["spearman/spread_vs_error"] <= 1
        assert len(m["calibration/coverage"]) == 9
        assert m["calibration/coverage"] == sorted(m["calibration/coverage"])
    # ProHMR's blocks: one volume for every input; the conditional volume: one per input.
    assert results[False]["mode_log_prob/std"] < 1e-3
    assert "spearman/neg_mode_log_prob_vs_error" not in results[False]
    assert results[True]["mode_log_prob/std"] > 1e-2
    assert -1 <= results[True]["spearman/neg_mode_log_prob_vs_error"] <= 1


def test_a_task_without_a_table_of_its_own_prints_json():
    import json

    from condflow.tasks import Task

    metrics = {"mode/mpjpe": 12.5, "examples": 3}
    assert Task.table(metrics, [1, 5]) == json.dumps(metrics, indent=2)
    assert "| mode | 12.5 |" in JointsTask.table({**metrics, "mode/pa_mpjpe": 9.0}, [1])
