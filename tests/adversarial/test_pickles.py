"""No data file can run code: pickled payloads in every file condflow unpickles are refused,
naming the file, and the file the payload would create is never created.

Each payload is first shown to work (a plain ``pickle.loads`` creates the marker file), so
a refusal is a refusal of a real attack, not of a broken pickle.
"""

from __future__ import annotations

import builtins
import os
import pickle
import shutil
import subprocess

import numpy as np
import pytest

from condflow._safe_pickle import load_npz
from condflow.body.convert import load_smpl_dict
from condflow.data.h36m import load_h36m_cameras, load_h36m_lifting
from condflow.data.image_datasets import ImageDataset

from .conftest import camera, h36m_arrays, one_line_error, run_cli, tiny_config


class Payload:
    """Unpickles as ``fn(*args)``."""

    def __init__(self, fn, *args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return self.fn, self.args


def _payloads(marker):
    src = marker.with_name("source.txt")
    src.write_text("x")
    m = str(marker)
    return {
        "os.system": Payload(os.system, f"touch {m}"),
        "exec": Payload(builtins.exec, f"open({m!r}, 'w').close()"),
        "eval": Payload(builtins.eval, f"open({m!r}, 'w')"),
        "open": Payload(builtins.open, m, "w"),
        "subprocess": Payload(subprocess.check_call, ["touch", m]),
        "shutil.copy": Payload(shutil.copy, str(src), m),
        "numpy.save": Payload(np.save, m, np.zeros(1)),
        "numpy.savetxt": Payload(np.savetxt, m, np.zeros(1)),
        "__import__": Payload(builtins.exec, f"__import__('pathlib').Path({m!r}).touch()"),
        "nested": {"deep": [1, (2, Payload(os.system, f"touch {m}"))]},
    }


PAYLOADS = ("os.system", "exec", "eval", "open", "subprocess", "shutil.copy", "numpy.save",
            "numpy.savetxt", "__import__", "nested")


@pytest.fixture(params=PAYLOADS)
def payload(request, tmp_path):
    marker = tmp_path / "pwned"
    obj = _payloads(marker)[request.param]
    return obj, marker


def _object(value):
    arr = np.empty((), dtype=object)
    arr[()] = value
    return arr


def test_payloads_are_real(payload):
    obj, marker = payload
    pickle.loads(pickle.dumps(obj))
    if not marker.exists():  # numpy.save appends .npy
        assert marker.with_name(marker.name + ".npy").exists()
    else:
        assert marker.exists()


def _absent(marker):
    return not marker.exists() and not marker.with_name(marker.name + ".npy").exists()


def test_h36m_3d_file(payload, h36m_files):
    obj, marker = payload
    path_3d, path_2d, cams = h36m_files
    p3, _ = h36m_arrays()
    p3["S1"]["Walking"] = obj
    np.savez(path_3d, positions_3d=_object(p3))
    with pytest.raises(ValueError, match=rf"path_3d: {path_3d}.*refusing to load"):
        load_h36m_lifting(path_3d, path_2d, cams)
    assert _absent(marker)


def test_h36m_2d_metadata(payload, h36m_files):
    obj, marker = payload
    path_3d, path_2d, cams = h36m_files
    _, p2 = h36m_arrays()
    np.savez(path_2d, positions_2d=_object(p2), metadata=_object({"layout_name": obj}))
    with pytest.raises(ValueError, match=rf"path_2d: {path_2d}.*metadata.*refusing to load"):
        load_h36m_lifting(path_3d, path_2d, cams)
    assert _absent(marker)


def test_camera_npz(payload, tmp_path):
    obj, marker = payload
    path = tmp_path / "cameras.npz"
    entries = {f"S1/{i}/{k}": np.asarray(v) for i in range(4) for k, v in camera().items()}
    entries["S1/0/orientation"] = _object(obj)
    np.savez(path, **entries)
    with pytest.raises(ValueError, match=rf"cameras: {path}.*refusing to load"):
        load_h36m_cameras(path)
    assert _absent(marker)


def test_smpl_pickle(payload, tmp_path):
    obj, marker = payload
    path = tmp_path / "SMPL_NEUTRAL.pkl"
    with open(path, "wb") as f:
        pickle.dump({"v_template": obj, "f": np.zeros((1, 3))}, f, protocol=2)
    with pytest.raises(ValueError, match=rf"{path}.*refusing to load"):
        load_smpl_dict(path)
    assert _absent(marker)


def test_image_npz(payload, tmp_path):
    obj, marker = payload
    path = tmp_path / "train.npz"
    names = np.empty(2, dtype=object)
    names[0], names[1] = "a.jpg", obj
    np.savez(path, imgname=names, center=np.zeros((2, 2)), scale=np.ones(2),
             part=np.zeros((2, 24, 3)))
    with pytest.raises(ValueError, match=rf"npz_path: {path}.*refusing to load"):
        ImageDataset(path, tmp_path)
    assert _absent(marker)


def test_condflow_train_on_a_crafted_h36m_file(payload, h36m_files, tmp_path, capsys):
    import yaml

    obj, marker = payload
    path_3d, path_2d, cams = h36m_files
    p3, _ = h36m_arrays()
    p3["S1"]["Eating"] = obj
    np.savez(path_3d, positions_3d=_object(p3))
    raw = tiny_config(tmp_path / "run")
    raw["data"] = {"source": "h36m", "h36m_3d": str(path_3d), "h36m_2d": str(path_2d),
                   "h36m_cameras": str(cams), "h36m_train_subjects": ["S1"],
                   "h36m_test_subjects": ["S9"]}
    config = tmp_path / "h36m.yaml"
    config.write_text(yaml.safe_dump(raw))
    status, _, err = run_cli(capsys, "train", config, "--no-progress")
    line = one_line_error(status, err, "train")
    assert str(path_3d) in line and "refusing to load" in line
    assert _absent(marker)


def test_load_npz_reads_plain_and_object_arrays_exactly(tmp_path):
    """The restricted reader returns what numpy's unrestricted one does for benign files."""
    path = tmp_path / "ok.npz"
    nested = {"a": [np.arange(3.0), {"b": np.ones((2, 2), np.float32)}], "c": "text"}
    fortran = np.asfortranarray(np.arange(6.0).reshape(2, 3))
    np.savez_compressed(path, obj=_object(nested), plain=np.arange(5), f=fortran)
    got = load_npz(path, "path")
    with np.load(path, allow_pickle=True) as ref:
        assert np.array_equal(got["plain"], ref["plain"]) and got["plain"].dtype == np.int64
        assert np.array_equal(got["f"], ref["f"])
        item = got["obj"].item()
        assert np.array_equal(item["a"][1]["b"], ref["obj"].item()["a"][1]["b"])
        assert item["c"] == "text"
