"""ExportedProgram (.pt2), ONNX and TorchScript exports of the predictor and the sampler
match the eager model."""

import pytest
import torch

import condflow
from condflow.cli import main
from condflow.export import (
    INSTALL_ONNX,
    MESH_FIELDS,
    example_inputs,
    export,
    export_onnx,
    format_for_path,
    read_metadata,
)
from condflow.saving import build_model
from condflow.tasks import load_config

TINY = {"lifter_hidden": 32, "lifter_blocks": 1, "flow_hidden": 16, "flow_blocks": 2}
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated")
RTOL = 1e-4  # max|exported - eager| <= RTOL * max(1, max|eager|), per output


def trained_like(kind: str):
    cfg = load_config({"task": "lifting", "model": {**TINY, "kind": kind}})
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
    return cfg, model.eval()


def assert_matches(got, expected):
    got = torch.as_tensor(got)
    assert got.shape == expected.shape
    bound = RTOL * max(1.0, expected.abs().max().item())
    assert (got - expected).abs().max().item() <= bound


def eager(model, x, noise=None):
    with torch.no_grad():
        if noise is None:
            return (model(x).joints[:, 0],)
        c = model.context(x)
        samples = model.generate(noise, c)
        return model.mode(c).joints[:, 0], samples.joints, samples.log_prob


@pytest.mark.parametrize("kind", ["flow", "regression"])
def test_torchscript_predictor_matches_eager_for_any_batch(tmp_path, kind):
    cfg, model = trained_like(kind)
    path = export(model, tmp_path / "p.pt", "torchscript", example_inputs(model, 2))
    traced = torch.jit.load(str(path))
    for batch in (1, 6):
        x = example_inputs(model, batch, seed=5)
        (expected,) = eager(model, x)
        assert expected.abs().max() > 10  # a non-trivial prediction, in mm
        (got,) = traced(x)
        assert_matches(got, expected)
    meta = read_metadata(path)
    assert meta["graph"] == "predictor" and meta["outputs"] == {"joints": ["batch", 17, 3]}


def test_torchscript_sampler_matches_eager_and_zero_noise_is_the_mode(tmp_path):
    cfg, model = trained_like("flow")
    path = export(model, tmp_path / "s.pt", "torchscript", example_inputs(model, 2), num_samples=5)
    traced = torch.jit.load(str(path))
    x = example_inputs(model, 3, seed=5)
    noise = torch.randn(3, 5, 48)
    for g, e in zip(traced(x, noise), eager(model, x, noise), strict=True):
        assert_matches(g, e)
    mode, samples, _ = traced(x, torch.zeros(3, 5, 48))
    assert_matches(samples[:, 2], mode)
    assert read_metadata(path)["inputs"]["noise"] == ["batch", 5, 48]


def test_model_is_left_untouched_and_regression_has_no_sampler(tmp_path):
    cfg, model = trained_like("regression")
    with pytest.raises(ValueError, match="regression model is deterministic"):
        export(model, tmp_path / "s.pt", "torchscript", example_inputs(model), num_samples=3)
    with pytest.raises(ValueError, match="format: expected one of"):
        export(model, tmp_path / "s.x", "tflite", example_inputs(model))
    model.train()
    export(model, tmp_path / "p.pt", "torchscript", example_inputs(model))
    assert model.training  # the export worked on a copy


@pytest.mark.parametrize("kind", ["flow", "regression"])
def test_exported_program_matches_eager_for_any_batch(tmp_path, kind):
    cfg, model = trained_like(kind)
    path = export(model, tmp_path / "p.pt2", None, example_inputs(model, 2))
    program = torch.export.load(path).module()
    for batch in (1, 6):
        x = example_inputs(model, batch, seed=5)
        (expected,) = eager(model, x)
        assert expected.abs().max() > 10
        (got,) = program(x)
        assert_matches(got, expected)
    meta = read_metadata(path)
    assert meta["graph"] == "predictor" and meta["outputs"] == {"joints": ["batch", 17, 3]}
    assert set(meta["units"]) == {"joints"} and "millimetres" in meta["units"]["joints"]
    assert "2 x / W - 1" in meta["input_normalization"]["xy"]
    if kind == "regression":
        return
    path = export(model, tmp_path / "s.pt2", "pt2", example_inputs(model, 2), num_samples=5)
    program = torch.export.load(path).module()
    x, noise = example_inputs(model, 3, seed=6), torch.randn(3, 5, 48)
    for g, e in zip(program(x, noise), eager(model, x, noise), strict=True):
        assert_matches(g, e)
    meta = read_metadata(path)
    assert list(meta["units"]) == ["joints", "sample_joints", "log_prob"]
    assert "nats" in meta["units"]["log_prob"]


def test_format_follows_the_file_name_and_onnx_hint_says_what_to_install(tmp_path,
                                                                          monkeypatch):
    assert [format_for_path(f"m{s}") for s in (".pt2", ".onnx", ".pt")] == [
        "pt2", "onnx", "torchscript"]
    cfg, model = trained_like("regression")
    with pytest.raises(ValueError, match=r"format: cannot tell the format .*\.pt2"):
        export(model, tmp_path / "m.bin")
    monkeypatch.setitem(__import__("sys").modules, "onnxscript", None)  # not installed
    with pytest.raises(ValueError, match="needs the onnxscript package: pip install onnx "
                                         "onnxscript"):
        export(model, tmp_path / "m.onnx")
    assert "condflow[export]" not in INSTALL_ONNX


@pytest.mark.parametrize("kind, dynamo", [("flow", True), ("regression", True), ("flow", False)])
def test_onnx_predictor_and_sampler_match_eager_in_onnxruntime(tmp_path, kind, dynamo):
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    if dynamo:
        pytest.importorskip("onnxscript")
    cfg, model = trained_like(kind)
    x = example_inputs(model, 4, seed=7)
    path = export_onnx(model, tmp_path / "p.onnx", example_inputs(model, 2), dynamo=dynamo)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {"inputs": x.numpy()})
    assert_matches(got, eager(model, x)[0])
    meta = read_metadata(path)
    assert meta["opset"] >= 17 and meta["graph"] == "predictor"
    assert meta["onnx_exporter"] == ("dynamo" if dynamo else "torchscript")
    if kind == "regression":
        return
    path = export_onnx(model, tmp_path / "s.onnx", example_inputs(model, 2), num_samples=6,
                       dynamo=dynamo)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["inputs", "noise"]
    assert [o.name for o in session.get_outputs()] == ["joints", "sample_joints", "log_prob"]
    noise = torch.randn(4, 6, 48)
    got = session.run(None, {"inputs": x.numpy(), "noise": noise.numpy()})
    for g, e in zip(got, eager(model, x, noise), strict=True):
        assert_matches(g, e)


def test_export_command_writes_a_file_from_a_saved_model(tmp_path, capsys):
    cfg, model = trained_like("flow")
    saved = condflow.save(model, tmp_path / "model.pt", cfg)
    out = tmp_path / "model.ts"
    assert main(["export", str(saved), "--format", "torchscript", "--out", str(out),
                 "--samples", "3"]) == 0
    assert "sampler" in capsys.readouterr().out
    meta = read_metadata(out)
    assert meta["model"] == "mlp_lifter → skeleton (flow) on synthetic_lifting"
    assert meta["num_samples"] == 3
    x = example_inputs(model, 2, seed=9)
    noise = torch.randn(2, 3, 48)
    for g, e in zip(torch.jit.load(str(out))(x, noise), eager(model, x, noise), strict=True):
        assert_matches(g, e)
    assert main(["export", str(saved), "--out", str(tmp_path / "m.pt2")]) == 0  # from suffix
    assert "pt2 predictor" in capsys.readouterr().out
    meta = read_metadata(tmp_path / "m.pt2")
    assert meta["root_centred_inputs"] is True  # the synthetic lifting set's cameras
    assert main(["export", str(tmp_path / "absent.pt"), "--format", "onnx",
                 "--out", str(tmp_path / "x.onnx")]) == 2
    assert "no such file" in capsys.readouterr().err


MESH = {
    "task": "mesh",
    "data": {"res": 32},
    "model": {"context_features": 32, "cnn_width": 8, "flow_blocks": 2, "flow_hidden": 16,
              "point_hidden": 16},
}


@pytest.fixture(scope="module")
def mesh_model():
    model = build_model(load_config(MESH))
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=gen))
    return model.eval()


def mesh_eager(model, images, noise=None):
    """The mesh fields of the mode (and of the samples for ``noise``), as the export names."""
    with torch.no_grad():
        c = model.context(images)
        mode = model.mode(c, vertices=True)
        out = [getattr(mode, f)[:, 0] for f in MESH_FIELDS]
        if noise is not None:
            s = model.generate(noise, c, vertices=True)
            out += [s.vertices, s.eval_joints, s.keypoints_2d, s.rotmat, s.log_prob]
    return out


@pytest.mark.parametrize("fmt", ["pt2", "torchscript", "onnx"])
def test_mesh_predictor_and_sampler_match_eager(tmp_path, mesh_model, fmt):
    if fmt == "onnx":
        pytest.importorskip("onnx")
        pytest.importorskip("onnxscript")
        ort = pytest.importorskip("onnxruntime")
    model = mesh_model
    images = example_inputs(model, 3, seed=11)
    noise = torch.randn(3, 4, 144)
    ext = {"pt2": "pt2", "onnx": "onnx", "torchscript": "pt"}[fmt]
    # The sampler's graph holds the predictor's (its first outputs are the mode); the slower
    # torch.export-based formats export only the sampler.
    cases = [(4, (images, noise))]
    if fmt == "torchscript":
        cases.insert(0, (None, (images,)))
    for n, args in cases:
        path = export(model, tmp_path / f"mesh_{n}.{ext}", fmt, example_inputs(model, 2), n)
        if fmt == "onnx":
            session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
            feed = {name: a.numpy() for name, a in zip(("inputs", "noise"), args, strict=False)}
            got = session.run(None, feed)
        elif fmt == "pt2":
            got = torch.export.load(path).module()(*args)
        else:
            got = torch.jit.load(str(path))(*args)
        expected = mesh_eager(model, images, None if n is None else noise)
        assert len(got) == len(expected)
        for g, e in zip(got, expected, strict=True):
            assert_matches(g, e)
        meta = read_metadata(path)
        assert meta["outputs"]["vertices"] == ["batch", model.body.num_vertices, 3]
    assert meta["outputs"]["sample_vertices"] == ["batch", 4, model.body.num_vertices, 3]
    assert meta["body_model"]["synthetic"] and meta["units"]["vertices"].startswith("metres")
    assert meta["input_normalization"]["mean"] == pytest.approx([0.485, 0.456, 0.406])
