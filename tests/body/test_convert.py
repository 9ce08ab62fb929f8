import contextlib
import io
import pickle
import sys
import types

import numpy as np
import pytest
import scipy.sparse
import smplx
import torch

from condflow.body.convert import convert_smpl_pkl, load_smpl_dict
from condflow.body.model import BodyModel
from condflow.body.synthetic import build_synthetic_smpl
from condflow.cli import main


@contextlib.contextmanager
def _fake_chumpy():
    """Register a throwaway ``chumpy`` package whose classes pickle like chumpy's."""
    ch = types.ModuleType("chumpy.ch")
    reordering = types.ModuleType("chumpy.reordering")

    class Ch:
        def __init__(self, x):
            self.x = x
            self._dirty_vars = {"x"}
            self._cache = {"r": None}

        def __getstate__(self):  # like chumpy: the cache is not pickled
            state = dict(self.__dict__)
            del state["_cache"]
            return state

    class Select:  # a chumpy operation that holds no array of its own
        def __init__(self, a):
            self.a = a

    for cls, mod in ((Ch, ch), (Select, reordering)):
        cls.__module__ = mod.__name__
        cls.__qualname__ = cls.__name__
        setattr(mod, cls.__name__, cls)
    package = types.ModuleType("chumpy")
    package.ch, package.reordering = ch, reordering
    saved = {k: sys.modules.get(k) for k in ("chumpy", "chumpy.ch", "chumpy.reordering")}
    sys.modules.update({"chumpy": package, "chumpy.ch": ch, "chumpy.reordering": reordering})
    try:
        yield ch.Ch, reordering.Select
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v


@pytest.fixture(scope="module")
def synthetic():
    model, _ = build_synthetic_smpl(seed=0)
    return model


def _official_like(model, path, extra=None):
    """Write ``model`` the way official SMPL files are: chumpy arrays, sparse regressor."""
    with _fake_chumpy() as (Ch, Select):
        data = dict(model)
        for key in ("v_template", "shapedirs", "posedirs", "J"):
            data[key] = Ch(np.asarray(model[key]))
        data["J_regressor"] = scipy.sparse.csc_matrix(model["J_regressor"])
        for key, make in (extra or {}).items():
            data[key] = make(Ch, Select)
        with open(path, "wb") as f:
            pickle.dump(data, f, protocol=2)
    assert "chumpy" not in sys.modules


def _smpl_vertices(path, vertex_ids, pose_seed=0):
    with contextlib.redirect_stdout(io.StringIO()):
        smpl = smplx.SMPL(model_path=str(path), vertex_ids=vertex_ids)
    rng = np.random.default_rng(pose_seed)
    pose = torch.as_tensor(rng.normal(0, 0.3, (1, 69)), dtype=torch.float32)
    betas = torch.as_tensor(rng.normal(0, 1, (1, 10)), dtype=torch.float32)
    return smpl(body_pose=pose, betas=betas).vertices.detach()


def test_chumpy_pickle_needs_chumpy(synthetic, tmp_path):
    src = tmp_path / "official.pkl"
    _official_like(synthetic, src)
    with pytest.raises(ModuleNotFoundError, match="chumpy"), open(src, "rb") as f:
        pickle.load(f, encoding="latin1")


def test_converted_file_loads_in_smplx(synthetic, tmp_path):
    src, dst, ref = tmp_path / "official.pkl", tmp_path / "converted.pkl", tmp_path / "ref.pkl"
    _official_like(synthetic, src)
    with open(ref, "wb") as f:
        pickle.dump(synthetic, f)
    assert convert_smpl_pkl(src, dst) == dst
    assert "chumpy" not in sys.modules
    with open(dst, "rb") as f:  # a plain pickle of numpy arrays
        data = pickle.load(f)
    for key in ("v_template", "shapedirs", "posedirs", "J", "J_regressor", "weights"):
        assert type(data[key]) is np.ndarray, key
    assert np.array_equal(data["v_template"], synthetic["v_template"])
    assert np.array_equal(data["J_regressor"], synthetic["J_regressor"].toarray())
    ids = synthetic["vertex_ids"]
    assert torch.equal(_smpl_vertices(dst, ids), _smpl_vertices(ref, ids))


def test_body_model_reads_chumpy_files_directly(synthetic, tmp_path):
    src = tmp_path / "SMPL_NEUTRAL.pkl"
    _official_like(synthetic, src)
    body = BodyModel(tmp_path)
    out = body.forward_axis_angle(torch.zeros(1, 3), torch.zeros(1, 23, 3), torch.zeros(1, 10))
    expected = synthetic["J_regressor"] @ synthetic["v_template"]
    assert np.allclose(out.joints[0].numpy(), expected, atol=1e-5)


def test_chumpy_object_without_array_is_named(synthetic, tmp_path):
    src = tmp_path / "official.pkl"
    _official_like(synthetic, src, {"weights_prior": lambda Ch, Select: Select(Ch(np.ones(3)))})
    with pytest.raises(ValueError, match="weights_prior.*chumpy.reordering.Select"):
        load_smpl_dict(src)


def test_refuses_code_and_non_models(tmp_path):
    evil = tmp_path / "evil.pkl"

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    with open(evil, "wb") as f:
        pickle.dump({"v_template": Evil()}, f)
    with pytest.raises(ValueError, match="refusing to load builtins.print"):
        load_smpl_dict(evil)
    partial = tmp_path / "partial.pkl"
    with open(partial, "wb") as f:
        pickle.dump({"v_template": np.zeros((3, 3))}, f)
    with pytest.raises(ValueError, match="missing keys.*shapedirs"):
        load_smpl_dict(partial)
    with pytest.raises(FileNotFoundError, match="absent.pkl"):
        load_smpl_dict(tmp_path / "absent.pkl")


def test_command_line(synthetic, tmp_path, capsys):
    src, dst = tmp_path / "official.pkl", tmp_path / "out" / "SMPL_NEUTRAL.pkl"
    _official_like(synthetic, src)
    assert main(["convert-smpl", str(src), str(dst)]) == 0
    assert dst.is_file() and "wrote" in capsys.readouterr().out
    assert main(["convert-smpl", str(tmp_path / "absent.pkl"), str(dst)]) == 2
    assert "absent.pkl" in capsys.readouterr().err
