"""Mesh task: the objective trains, masks 2D-only examples, drops L_mode on request, keeps the
discriminator across checkpoints; evaluation, pictures and example configs."""

from pathlib import Path

import pytest
import torch
from torch.utils.data import default_collate

from condflow.checkpoint import load_checkpoint
from condflow.losses.mesh import MeshObjective
from condflow.tasks import SMPLTask, load_config
from condflow.tasks.evaluation import mesh_table as table
from condflow.train import evaluate, train

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "mesh_recovery"

TINY = {
    "task": "mesh",
    "data": {"res": 32, "train_size": 48, "test_size": 8, "synthetic": {"workers": 1},
             "augmentation_rounds": 2},
    "model": {"context_features": 32, "cnn_width": 8, "flow_blocks": 2, "flow_hidden": 32,
              "flow_residual_blocks": 1, "point_hidden": 32},
    "loss": {"mocap_size": 200},
    "train": {"steps": 4, "batch_size": 8, "checkpoint_every": 2, "log_every": 1,
              "warmup_steps": 1, "threads": 1},
    "eval": {"num_samples": [2, 4], "batch_size": 8, "picture_examples": 1,
             "picture_samples": 1},
}


def tiny(tmp_path: Path | None = None, name: str = "run", **sections) -> dict:
    raw = {k: dict(v) if isinstance(v, dict) else v for k, v in TINY.items()}
    for key, value in sections.items():
        raw[key] = {**raw.get(key, {}), **value}
    if tmp_path is not None:
        raw["output_dir"] = str(tmp_path / name)
    return raw


@pytest.fixture(scope="module")
def task() -> SMPLTask:
    return SMPLTask(load_config(tiny()))


def batch_of(task: SMPLTask, n: int = 16) -> dict:
    train_data, _ = task.datasets()
    return default_collate([train_data[i] for i in range(n)])


def test_a_few_steps_lower_the_loss(task):
    torch.manual_seed(0)
    model = task.build_model()
    objective = task.objective(model)
    batch = batch_of(task)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for step in range(25):
        loss = objective(batch)["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        objective.after_step(step)
        losses.append(loss.item())
    assert sum(losses[-3:]) / 3 < 0.7 * sum(losses[:3]) / 3, losses


def test_two_d_only_examples_lose_their_3d_and_smpl_terms(task):
    model = task.build_model().train()
    objective = task.objective(model)
    batch = batch_of(task, 8)
    batch["has_smpl"][:4] = 0.0
    batch["has_3d"][:4] = 0.0
    changed = {k: v.clone() for k, v in batch.items() if torch.is_tensor(v)}
    changed["global_orient"][:4] += 0.7
    changed["body_pose"][:4] *= -1.0
    changed["betas"][:4] += 2.0
    changed["keypoints_3d"][:4, :, :3] += 0.3
    torch.manual_seed(1)
    a = objective(batch)
    torch.manual_seed(1)
    b = objective(changed)
    for key in a:
        assert torch.equal(a[key], b[key]), key
    # With no 3D/SMPL ground truth at all those terms vanish; the 2D ones remain.
    none = {**batch, "has_smpl": torch.zeros(8), "has_3d": torch.zeros(8)}
    out = objective(none)
    for key in ("nll", "mode/keypoints_3d", "mode/rotmat", "mode/betas"):
        assert out[key] == 0, key
    assert out["mode/keypoints_2d"] > 0 and out["exp/keypoints_2d"] > 0


def test_use_mode_loss_false_drops_exactly_the_mode_terms(task):
    model = task.build_model().train()
    with_mode = task.objective(model)
    cfg = load_config(tiny(loss={"mocap_size": 200, "use_mode_loss": False}))
    without = MeshObjective(model, cfg.loss)
    assert all(v == 0 for v in vars(without.weights.mode).values())
    batch = batch_of(task, 8)
    torch.manual_seed(2)
    a = with_mode(batch)
    torch.manual_seed(2)
    b = without(batch)
    w = with_mode.weights.mode
    mode_part = sum(getattr(w, t) * a[f"mode/{t}"]
                    for t in ("keypoints_2d", "keypoints_3d", "rotmat", "betas"))
    assert a["mode/keypoints_2d"] > 0
    assert torch.allclose(a["loss"] - b["loss"], mode_part, atol=1e-5)


def test_discriminator_state_survives_resume(tmp_path, monkeypatch):
    straight = train(load_config(tiny(tmp_path, "straight")), progress=False)
    calls = {"n": 0}
    original = MeshObjective.forward

    def crash_on_fourth(self, batch):
        calls["n"] += 1
        if calls["n"] == 4:
            raise RuntimeError("simulated crash")
        return original(self, batch)

    cfg = load_config(tiny(tmp_path, "resumed"))
    monkeypatch.setattr(MeshObjective, "forward", crash_on_fourth)
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(cfg, progress=False)
    monkeypatch.setattr(MeshObjective, "forward", original)
    assert load_checkpoint(tmp_path / "resumed" / "checkpoints" / "last.pt")["step"] == 2
    resumed = train(cfg, resume=True, progress=False)
    a, b = load_checkpoint(straight), load_checkpoint(resumed)
    fresh = MeshObjective(SMPLTask(cfg).build_model(), cfg.loss).extra_state()
    disc_a, disc_b = a["extra"]["discriminator"], b["extra"]["discriminator"]
    assert any(not torch.equal(disc_a[k], fresh["discriminator"][k]) for k in disc_a)  # trained
    for k in disc_a:
        assert torch.equal(disc_a[k], disc_b[k]), k
    assert a["extra"]["optimizer"]["state"][0]["step"] == 4
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k


def test_evaluate_reports_mode_min_of_n_and_baseline(tmp_path):
    cfg = load_config(tiny(tmp_path, "eval", train={"steps": 2}))
    metrics = evaluate(cfg, train(cfg, progress=False))
    for key in ("mode/mpjpe", "mode/pa_mpjpe", "min_of_2/mpjpe", "min_of_4/pa_mpjpe",
                "mean_pose/mpjpe", "mean_pose/pa_mpjpe", "nll", "mode/keypoints_2d_px"):
        assert torch.isfinite(torch.tensor(metrics[key])), key
    assert metrics["min_of_4/mpjpe"] <= metrics["min_of_2/mpjpe"]
    assert metrics["mean_pose/pa_mpjpe"] <= metrics["mean_pose/mpjpe"]
    assert metrics["examples"] == 8
    text = table(metrics, [2, 4])
    assert "| mode |" in text and "min-of-4" in text and "mean-pose baseline" in text
    assert (tmp_path / "eval" / "eval.png").stat().st_size > 1000
    assert (tmp_path / "eval" / "eval_calibration.png").stat().st_size > 1000
    assert "spearman/neg_mode_log_prob_vs_error" not in metrics  # ProHMR's blocks
    assert len(metrics["calibration/coverage"]) == 9


def test_conditional_volume_and_regression_baseline_train_and_evaluate(tmp_path):
    cfg = load_config(tiny(tmp_path, "volume", train={"steps": 2},
                           model={"conditional_volume": True}))
    metrics = evaluate(cfg, train(cfg, progress=False), picture=False)
    assert -1 <= metrics["spearman/neg_mode_log_prob_vs_error"] <= 1
    assert metrics["mode_log_prob/std"] > 0
    cfg = load_config(tiny(tmp_path, "regression", train={"steps": 2},
                           model={"kind": "regression"}))
    metrics = evaluate(cfg, train(cfg, progress=False))
    for key in ("mode/mpjpe", "mode/pa_mpjpe", "mean_pose/mpjpe", "mode/keypoints_2d_px"):
        assert torch.isfinite(torch.tensor(metrics[key])), key
    assert "nll" not in metrics and "min_of_2/mpjpe" not in metrics
    with pytest.raises(ValueError, match="model.kind"):
        SMPLTask(load_config(tiny(model={"kind": "regresion"}))).build_model()


def test_regression_head_starts_at_the_mean_like_pose_and_refuses_to_sample(task):
    from condflow.heads import NotProbabilisticError, ProHMRRegressionHead

    model = SMPLTask(load_config(tiny(model={"kind": "regression"}))).build_model().eval()
    assert isinstance(model, ProHMRRegressionHead) and not model.probabilistic
    c = torch.randn(3, 32)
    pred = model.mode(c)
    expected = torch.eye(3).expand(3, 1, 24, 3, 3).clone()
    expected[:, :, 0] = torch.diag(torch.tensor([1.0, -1.0, -1.0]))
    assert (pred.rotmat - expected).abs().max() < 0.05
    assert pred.log_prob is None
    # A regression baseline has no density: sampling, log p and fitting are refused by type.
    for refused in (lambda: model.sample(4, c), lambda: model.log_prob(pred.rotmat[:, 0], c),
                    lambda: model.generate(torch.zeros(3, 1, 144), c), model.fitting_adapter):
        with pytest.raises(NotProbabilisticError, match="ProHMRRegressionHead is a deter"):
            refused()


@pytest.mark.parametrize("name", ["cpu.yaml", "paper.yaml"])
def test_example_configs_load(name):
    cfg = load_config(EXAMPLES / name)
    assert cfg.model.space.kind == "smpl_6d" and cfg.loss.use_mode_loss
    if name == "paper.yaml":
        assert cfg.model.encoder.kind == "resnet50" and cfg.model.flow_hidden == 1024
        assert cfg.data.res == 224 and cfg.train.batch_size == 64


def test_the_old_loss_kind_key_reads_as_keypoint_loss():
    with pytest.warns(DeprecationWarning, match="loss.kind is now loss.keypoint_loss"):
        cfg = load_config(tiny(loss={"kind": "l2"}))  # e.g. a checkpoint's config from before
    assert cfg.loss.keypoint_loss == "l2" and "kind" not in vars(cfg.loss)
    with pytest.raises(ValueError, match="loss.kind: renamed to loss.keypoint_loss"):
        load_config(tiny(loss={"kind": "l2", "keypoint_loss": "l1"}))
    with pytest.raises(ValueError, match="loss.keypoint_loss: expected one of"):
        load_config(tiny(loss={"keypoint_loss": "huber"}))
