"""Checkpoints and model files: damage, NaN weights, wrong sizes, wrong kind of file,
dtype, leftovers of crashes, and the synthetic-data cache key."""

from __future__ import annotations

import os
import pickle
import socket

import pytest
import torch

import condflow
from condflow.checkpoint import load_checkpoint, state_checksum
from condflow.saving import build_model, load_with_config


def _flip(path, offset):
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x10
    path.write_bytes(bytes(data))


def test_a_flipped_bit_in_a_weight_is_caught_by_the_checksum(model_file, tmp_path):
    path, _ = model_file
    copy = tmp_path / "m.pt"
    copy.write_bytes(path.read_bytes())
    state = torch.load(path, weights_only=True)["model"]
    weight = next(v for k, v in state.items() if v.numel() > 16 and v.is_floating_point())
    offset = copy.read_bytes().find(weight.reshape(-1).numpy().tobytes())
    assert offset > 0
    _flip(copy, offset + 5)
    with pytest.raises(ValueError, match=rf"model: {copy} is damaged: its checksum does not "
                                         "match"):
        condflow.load(copy)


@pytest.mark.parametrize("fraction", [0.01, 0.2, 0.4, 0.6, 0.8, 0.97])
def test_a_flipped_bit_anywhere_never_loads_a_different_model(model_file, tmp_path, fraction):
    path, _ = model_file
    copy = tmp_path / "m.pt"
    copy.write_bytes(path.read_bytes())
    _flip(copy, int(copy.stat().st_size * fraction))
    try:
        loaded = condflow.load(copy)
    except ValueError as err:
        assert str(copy) in str(err)
    else:  # the flip hit bytes that carry nothing (e.g. zip padding): the same model
        original = condflow.load(path)
        for (k, a), (_, b) in zip(original.state_dict().items(), loaded.state_dict().items(),
                                  strict=True):
            assert torch.equal(a, b), k


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_weights_are_refused_naming_the_parameter(model_file, tmp_path, value):
    path, _ = model_file
    payload = torch.load(path, weights_only=True)
    key = next(k for k, v in payload["model"].items() if v.is_floating_point() and v.numel() > 1)
    payload["model"][key].view(-1)[0] = value
    payload["checksum"] = state_checksum(payload["model"], payload["config"])  # a consistent file
    bad = tmp_path / "nan.pt"
    torch.save(payload, bad)
    with pytest.raises(ValueError, match=rf"model: {bad} holds NaN or Inf weights in "
                                         rf"\['{key}'\]"):
        condflow.load(bad)


@pytest.mark.parametrize("content, match", [
    (b"", "cannot read"),
    (b"garbage bytes", "cannot read"),
    (b"PK\x03\x04" + b"\x00" * 40, "cannot read"),
])
def test_non_torch_files_are_named(tmp_path, content, match):
    bad = tmp_path / "x.pt"
    bad.write_bytes(content)
    with pytest.raises(ValueError, match=rf"model: {bad}: {match}"):
        condflow.load(bad)
    with pytest.raises(ValueError, match=rf"checkpoint: {bad}: {match}"):
        load_checkpoint(bad)


@pytest.mark.parametrize("obj", [torch.zeros(3), {"model": 3, "config": {}}, {"weights": {}}])
def test_torch_files_that_are_not_condflow_models_are_named(tmp_path, obj):
    bad = tmp_path / "x.pt"
    torch.save(obj, bad)
    with pytest.raises(ValueError, match=rf"model: {bad} is not a condflow model file or "
                                         "checkpoint"):
        condflow.load(bad)


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_a_pickled_payload_as_checkpoint_runs_nothing(tmp_path):
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return os.system, (f"touch {marker}",)

    bad = tmp_path / "x.pt"
    with open(bad, "wb") as f:
        pickle.dump({"model": Payload(), "config": {}}, f)
    with pytest.raises(ValueError, match=rf"checkpoint: {bad}: cannot read \(damaged, or not a "
                                         "torch file"):
        load_checkpoint(bad)  # a plain pickle is not a torch file
    torch.save({"model": {"w": torch.zeros(1)}, "config": {}, "x": Payload()}, bad)
    with pytest.raises(ValueError, match=rf"model: {bad}: cannot read: it holds objects other "
                                         r"than tensors .*posix\.system"):
        condflow.load(bad)
    assert not marker.exists()


def test_float64_model_keeps_its_dtype(model_file, tmp_path):
    _, cfg = model_file
    model = build_model(cfg).double()
    path = condflow.save(model, tmp_path / "f64.pt", cfg)
    loaded = condflow.load(path)
    assert all(p.dtype == torch.float64 for p in loaded.parameters())
    for (k, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items(),
                              strict=True):
        assert a.dtype == b.dtype and torch.equal(a, b), k


def test_files_written_before_checksums_still_load(model_file, tmp_path):
    path, _ = model_file
    payload = torch.load(path, weights_only=True)
    del payload["checksum"]
    old = tmp_path / "old.pt"
    torch.save(payload, old)
    _, model = load_with_config(old)
    assert torch.equal(next(model.parameters()), next(condflow.load(path).parameters()))


def test_orphaned_temporary_files_are_removed_by_the_next_write(tmp_path):
    from condflow._io import _tmp_prefix, atomic_write

    target = tmp_path / "last.pt"
    dead = os.fork()
    if dead == 0:
        os._exit(0)
    os.waitpid(dead, 0)  # a pid that has certainly exited
    orphan = tmp_path / f"{_tmp_prefix(target, dead)}abc123.tmp"
    live = tmp_path / f"{_tmp_prefix(target, os.getpid())}def456.tmp"
    other_host = tmp_path / f".last.pt.not-{socket.gethostname()}-{dead}.xyz.tmp"
    for p in (orphan, live, other_host):
        p.write_bytes(b"partial")
    atomic_write(target, lambda f: f.write(b"ok"))
    assert not orphan.exists() and live.exists() and other_host.exists()
    assert target.read_bytes() == b"ok"


def test_torn_last_log_row_is_dropped_on_resume(tmp_path):
    from condflow.train import _CsvLog

    log = tmp_path / "log.csv"
    log.write_text("step,lr,loss\n1,0.1,3.0\n2,0.1,2.5\n3,0.1,2.")  # crash mid-row
    _CsvLog(log, keep_until=3).write(step=4, lr=0.1, loss=2.0)
    assert log.read_text() == "step,lr,loss\n1,0.1,3.0\n2,0.1,2.5\n4,0.1,2.0\n"


def test_garbled_log_rows_are_dropped_not_fatal(tmp_path):
    from condflow.train import _CsvLog

    log = tmp_path / "log.csv"
    log.write_text("step,lr,loss\n1,0.1,3.0\n\x00\x00\nxx,1,2\n2,0.1\n")
    _CsvLog(log, keep_until=5).write(step=3, lr=0.1, loss=1.0)
    assert log.read_text() == "step,lr,loss\n1,0.1,3.0\n3,0.1,1.0\n"


def test_synthetic_cache_is_keyed_by_file_contents(tmp_path, monkeypatch):
    from condflow.data.cache import cached_tensors

    monkeypatch.setenv("CONDFLOW_CACHE_DIR", str(tmp_path / "cache"))
    body = tmp_path / "body.pkl"
    body.write_bytes(b"model A")
    calls = []

    def make():
        calls.append(body.read_bytes())
        return {"x": torch.tensor([float(len(calls))])}

    first = cached_tensors("t", {"n": 1}, make, files=[body])
    assert cached_tensors("t", {"n": 1}, make, files=[body])["x"] == first["x"]
    body.write_bytes(b"model B")  # same path, new contents
    os.utime(body, ns=(1, 1))
    assert cached_tensors("t", {"n": 1}, make, files=[body])["x"] == 2.0
    moved = tmp_path / "moved.pkl"
    moved.write_bytes(b"model B")  # same contents, another path: a cache hit
    assert cached_tensors("t", {"n": 1}, make, files=[moved])["x"] == 2.0
    assert len(calls) == 2
