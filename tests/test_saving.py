"""One-file models: save → load rebuilds the exact model; incompatible files fail clearly."""

import pytest
import torch

import condflow
from condflow.checkpoint import atomic_save, state_checksum
from condflow.config import config_to_dict
from condflow.heads.skeleton import SkeletonHead, SkeletonRegressionHead
from condflow.saving import FORMAT_VERSION, build_model, load_with_config
from condflow.tasks import load_config

TINY = {"lifter_hidden": 32, "lifter_blocks": 1, "flow_hidden": 16, "flow_blocks": 2}


def tiny_cfg(kind: str = "flow", **model):
    return load_config({"task": "lifting", "model": {**TINY, "kind": kind, **model}})


def trained_like(cfg) -> torch.nn.Module:
    """A model whose weights and buffers (normalization, batch-norm statistics) all differ
    from a freshly built one, as after training."""
    model = build_model(cfg)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.2 * torch.randn(p.shape, generator=gen))
        for name, b in model.named_buffers():
            if name.endswith(("running_mean", "shift")):
                b.copy_(torch.randn(b.shape, generator=gen) * (50 if "shift" in name else 1))
            elif name.endswith(("running_var", "scale")):
                b.copy_(torch.rand(b.shape, generator=gen) * (100 if "scale" in name else 1) + 0.5)
    return model.eval()


def inputs(batch: int = 5) -> torch.Tensor:
    kp = torch.rand(batch, 16, 3, generator=torch.Generator().manual_seed(2)) * 2 - 1
    kp[..., 2] = 1.0
    return kp


@pytest.mark.parametrize("kind", ["flow", "regression"])
def test_round_trip_rebuilds_the_exact_model(tmp_path, kind):
    cfg = tiny_cfg(kind)
    model = trained_like(cfg)
    path = condflow.save(model, tmp_path / "model.pt", cfg)
    loaded = condflow.load(path)
    assert type(loaded) is type(model) and not loaded.training
    fresh = build_model(cfg)
    x = inputs()
    assert torch.equal(loaded(x).joints, model(x).joints)
    # The weights, not the config, made it equal.
    assert not torch.allclose(fresh(x).joints, model(x).joints)
    expected = model.state_dict()
    assert list(loaded.state_dict()) == list(expected)
    for k, v in loaded.state_dict().items():
        assert torch.equal(v, expected[k]), k
    if kind == "flow":
        c = model.context(x)
        gen_a, gen_b = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
        a, lp_a = loaded.sample_and_log_prob(4, loaded.context(x), gen_a)
        b, lp_b = model.sample_and_log_prob(4, c, gen_b)
        assert torch.equal(a, b) and torch.equal(lp_a, lp_b)
        assert isinstance(loaded, SkeletonHead)
    else:
        assert isinstance(loaded, SkeletonRegressionHead)


def test_file_is_weights_only_and_carries_config_and_versions(tmp_path):
    cfg = tiny_cfg()
    path = condflow.save(trained_like(cfg), tmp_path / "m.pt", cfg)
    payload = torch.load(path, weights_only=True)
    assert payload["format"] == "condflow-model"
    assert payload["format_version"] == FORMAT_VERSION
    assert payload["condflow_version"] == condflow.__version__
    assert payload["config"]["model"]["encoder"] == {
        "kind": "mlp_lifter", "hidden": 32, "blocks": 1, "dropout": 0.0, "use_confidence": True}
    assert all(v.device.type == "cpu" for v in payload["model"].values())
    cfg2, _ = load_with_config(path)
    assert config_to_dict(cfg2) == config_to_dict(cfg)


def test_training_checkpoint_loads(tmp_path):
    cfg = tiny_cfg()
    model = trained_like(cfg)
    ckpt = {
        "step": 10,
        "model": model.state_dict(),
        "optimizer": {"state": {}, "param_groups": [{"lr": 1e-3, "params": [0, 1]}]},
        "scheduler": {},
        "rng": {"torch": torch.get_rng_state()},
        "config": config_to_dict(cfg),
    }
    path = atomic_save(ckpt, tmp_path / "checkpoints" / "last.pt")
    x = inputs()
    assert torch.equal(condflow.load(path)(x).joints, model(x).joints)


def test_save_refuses_a_config_that_does_not_build_the_model(tmp_path):
    model = trained_like(tiny_cfg())
    with pytest.raises(ValueError, match=r"encoder\.input_layer\.0\.weight: expected shape "
                       r"\[64, 48\] \(built from the config\), got \[32, 48\]"):
        condflow.save(model, tmp_path / "m.pt", tiny_cfg(lifter_hidden=64))
    with pytest.raises(ValueError, match="model: expected a torch.nn.Module"):
        condflow.save("model", tmp_path / "m.pt", tiny_cfg())
    assert not (tmp_path / "m.pt").exists()


def _tamper(tmp_path, change, raw=None) -> str:
    cfg = tiny_cfg() if raw is None else load_config(raw)
    path = condflow.save(trained_like(cfg), tmp_path / "m.pt", cfg)
    payload = torch.load(path, weights_only=True)
    change(payload)
    # A consistent file with other contents (as another version or config would write it);
    # a damaged one is refused by its checksum (tests/adversarial/test_checkpoints.py).
    payload["checksum"] = state_checksum(payload["model"], payload["config"])
    torch.save(payload, path)
    return str(path)


@pytest.mark.parametrize(
    ("version", "message"),
    [
        (FORMAT_VERSION + 1, r"format version 2 \(written by condflow 9\.9\).*reads format "
         r"version 1; upgrade condflow"),
        (0, r"format version 0 \(written by condflow 9\.9\).*load it with condflow 9\.9"),
    ],
)
def test_other_format_versions_fail_naming_both_versions(tmp_path, version, message):
    def change(p):
        p["format_version"], p["condflow_version"] = version, "9.9"

    with pytest.raises(ValueError, match=message):
        condflow.load(_tamper(tmp_path, change))


def test_tampered_config_fails_naming_the_key(tmp_path):
    def unknown_key(p):
        p["config"]["model"]["lifter_width"] = 64

    with pytest.raises(ValueError, match=r"m\.pt: config: model: unknown key\(s\) "
                       r"\['lifter_width'\]"):
        condflow.load(_tamper(tmp_path, unknown_key))

    def unknown_task(p):
        p["config"]["task"] = "segmentation"

    with pytest.raises(ValueError, match="config: task: 'segmentation' is not a configuration"):
        condflow.load(_tamper(tmp_path, unknown_task))

    def other_task(p):
        p["config"]["model"]["space"] = {"kind": "smpl_6d"}  # no SMPL in the lifting set

    with pytest.raises(ValueError, match=r"config: data.source: 'synthetic_lifting' does not "
                                         r"give \[.*'betas'"):
        condflow.load(_tamper(tmp_path, other_task))

    def other_model(p):
        p["config"]["model"]["kind"] = "regression"

    with pytest.raises(ValueError, match=r"missing keys \['encoder\.output_layer\.weight'"):
        condflow.load(_tamper(tmp_path, other_model))


def test_wrong_shapes_and_missing_weights_fail_naming_key_and_shapes(tmp_path):
    key = "flow.bijector.bijectors.1.shift"

    def wrong_shape(p):
        p["model"][key] = torch.zeros(47)

    with pytest.raises(ValueError, match=rf"{key}: expected shape \[48\] \(built from the "
                       r"config\), got \[47\]"):
        condflow.load(_tamper(tmp_path, wrong_shape))

    def missing(p):
        del p["model"][key]

    with pytest.raises(ValueError, match=rf"missing keys \['{key}'\]"):
        condflow.load(_tamper(tmp_path, missing))


def test_unreadable_and_missing_files(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a torch file")
    with pytest.raises(ValueError, match="bad.pt: cannot read"):
        condflow.load(bad)
    with pytest.raises(FileNotFoundError, match="no such file"):
        condflow.load(tmp_path / "absent.pt")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a condflow model file"):
        condflow.load(tmp_path / "other.pt")


MESH = {
    "task": "mesh",
    "data": {"res": 32},
    "model": {"context_features": 32, "cnn_width": 8, "flow_blocks": 2, "flow_hidden": 16,
              "point_hidden": 16},
}


def test_mesh_round_trip_and_body_model_check(tmp_path):
    cfg = load_config(MESH)
    model = trained_like(cfg)
    path = condflow.save(model, tmp_path / "mesh.pt", cfg)
    payload = torch.load(path, weights_only=True)
    assert payload["body_model"]["num_vertices"] == model.body.num_vertices
    assert not any(k.startswith("body.") for k in payload["model"])  # no body-model arrays
    loaded = condflow.load(path)
    images = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        a, b = loaded(images), model(images)
        assert torch.equal(a.rotmat, b.rotmat) and torch.equal(a.betas, b.betas)
        assert torch.equal(a.cam, b.cam) and torch.equal(a.eval_joints, b.eval_joints)
        gen_a, gen_b = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
        sa = loaded.sample(3, loaded.context(images), gen_a, vertices=True)
        sb = model.sample(3, model.context(images), gen_b, vertices=True)
        assert torch.equal(sa.vertices, sb.vertices) and torch.equal(sa.log_prob, sb.log_prob)

    def other_body(p):
        p["body_model"]["sha256"] = "0" * 64

    with pytest.raises(ValueError, match=r"saved with the body model synthetic .*sha256 "
                       r"000000000000\), but its config resolves here to synthetic"):
        condflow.load(_tamper(tmp_path, other_body, MESH))


def test_pretrained_initialization_file_is_not_needed_to_load(tmp_path):
    raw = {**MESH, "model": {"encoder": "resnet18", "flow_blocks": 1, "flow_hidden": 8,
                             "point_hidden": 8}}
    model = trained_like(load_config(raw))
    raw["model"]["pretrained"] = str(tmp_path / "resnet18-imagenet.pth")  # gone by now
    path = condflow.save(model, tmp_path / "mesh.pt", load_config(raw))
    cfg, loaded = load_with_config(path)
    assert cfg.model.encoder.pretrained == raw["model"]["pretrained"]
    images = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(loaded(images).rotmat, model(images).rotmat)
