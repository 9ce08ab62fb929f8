"""Read official SMPL ``.pkl`` files without chumpy and rewrite them as plain numpy pickles.

Official SMPL files embed ``chumpy`` objects (``v_template``, ``shapedirs``, ``posedirs``) and
``scipy.sparse`` matrices, pickled under Python 2. :func:`load_smpl_dict` unpickles them with
stand-ins for chumpy's classes, keeps the array each chumpy object stores (its ``x``), and
allows only numpy, scipy.sparse and plain containers, so loading a model file cannot run
arbitrary code. :func:`convert_smpl_pkl` writes the result as a pickle of numpy arrays.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse

from condflow._io import atomic_write
from condflow._safe_pickle import load_pickle

__all__ = ["REQUIRED_KEYS", "convert_smpl_pkl", "load_smpl_dict"]

REQUIRED_KEYS = (
    "v_template",
    "f",
    "kintree_table",
    "weights",
    "shapedirs",
    "posedirs",
    "J_regressor",
)
"""Keys ``smplx.SMPL`` reads from a model file."""


class _ChumpyStandIn:
    """Captures the pickled state of a chumpy object (its array lives under ``x``)."""

    chumpy_class = "chumpy"

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def to_array(self, key: str) -> np.ndarray:
        state = self.state if isinstance(getattr(self, "state", None), dict) else self.__dict__
        if "x" not in state:
            raise ValueError(
                f"{key}: chumpy object of class {self.chumpy_class} holds no array 'x'; "
                "evaluate it with chumpy and save plain numpy arrays instead"
            )
        return np.asarray(_to_plain(state["x"], key))


def _smpl_classes(module: str, name: str) -> Any:
    """What a SMPL file may hold beyond numpy arrays and plain containers."""
    if module.split(".")[0] == "chumpy":
        return type(name, (_ChumpyStandIn,), {"chumpy_class": f"{module}.{name}"})
    if module.startswith("scipy.sparse") and name.endswith(("_matrix", "_array")):
        return getattr(scipy.sparse, name)
    return None


def _to_plain(value: Any, key: str) -> Any:
    """Replace chumpy stand-ins and sparse matrices by numpy arrays, recursively."""
    if isinstance(value, _ChumpyStandIn):
        return value.to_array(key)
    if scipy.sparse.issparse(value):
        return np.asarray(value.toarray())
    if isinstance(value, dict):
        return {k: _to_plain(v, f"{key}.{k}") for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_to_plain(v, key) for v in value)
    return value


def load_smpl_dict(path: str | Path) -> dict[str, Any]:
    """Load a SMPL-format ``.pkl`` (official chumpy file or plain numpy) as a dict of arrays.

    Sparse matrices (``J_regressor``) become dense arrays. Raises ``FileNotFoundError`` if
    the file is missing and ``ValueError`` if it is not a SMPL model.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"SMPL model file not found: {path}")
    with open(path, "rb") as f:
        data = load_pickle(f, path, extra=_smpl_classes, encoding="latin1")
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a pickled dict, got {type(data).__name__}")
    missing = [k for k in REQUIRED_KEYS if k not in data]
    if missing:
        raise ValueError(f"{path}: not a SMPL model file, missing keys {missing}")
    return {str(k): _to_plain(v, str(k)) for k, v in data.items()}


def convert_smpl_pkl(src: str | Path, dst: str | Path) -> Path:
    """Rewrite the SMPL model ``src`` (may contain chumpy objects) as a numpy-only pickle ``dst``.

    The result loads with ``smplx.SMPL(model_path=dst)`` and needs neither chumpy nor scipy.
    Returns ``dst``.
    """
    data = load_smpl_dict(src)
    return atomic_write(dst, lambda f: pickle.dump(data, f, protocol=4))
