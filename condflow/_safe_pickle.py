"""The one place condflow reads pickles: a restricted unpickler and an ``.npz`` reader on it.

A pickle can name any importable callable, so ``pickle.load`` / ``np.load(allow_pickle=True)``
on a crafted file runs its code. :class:`RestrictedUnpickler` resolves only numpy's array and
dtype reconstructors and plain containers (dict, list, tuple, set, ...); any other global is
refused *before* it is called, with an error naming the file. Loaders that need a few more
classes (the SMPL reader's scipy.sparse matrices and chumpy stand-ins) pass ``extra``.

:func:`load_npz` reads ``.npz`` files with it: plain arrays as ``np.load(allow_pickle=False)``
does, object arrays (VideoPose3D's nested dicts) through the restricted unpickler. A
truncated or non-zip file, a missing entry or a refused global raise ``ValueError`` naming
the argument and the file.
"""

from __future__ import annotations

import copyreg
import pickle
import zipfile
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np

__all__ = ["RestrictedUnpickler", "load_npz", "load_pickle"]

_NUMPY_MODULES = (
    "numpy",
    "numpy.core.multiarray",
    "numpy._core.multiarray",
    "numpy.core.numeric",
    "numpy._core.numeric",
)
_NUMPY_NAMES = ("_reconstruct", "scalar", "dtype", "ndarray", "_frombuffer")
_BUILTINS = ("object", "set", "frozenset", "slice", "complex", "bytearray", "list", "dict", "tuple")

#: ``extra(module, name)`` returns the object a loader admits beyond the defaults, or None.
Extra = Callable[[str, str], Any]


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that resolves numpy arrays/dtypes and plain containers only (plus ``extra``)."""

    def __init__(self, file: IO[bytes], *, extra: Extra | None = None, **kwargs: Any) -> None:
        super().__init__(file, **kwargs)
        self._extra = extra

    def find_class(self, module: str, name: str) -> Any:
        if self._extra is not None:
            found = self._extra(module, name)
            if found is not None:
                return found
        if module in _NUMPY_MODULES and name in _NUMPY_NAMES:
            # numpy 1 pickles say numpy.core, numpy 2 says numpy._core; both are read.
            if module.startswith("numpy.core") and not hasattr(np, "_core"):
                return super().find_class(module, name)
            return super().find_class(module.replace("numpy.core", "numpy._core"), name)
        if module in ("copy_reg", "copyreg") and name == "_reconstructor":
            return copyreg._reconstructor  # type: ignore[attr-defined]  # private, no stub
        if module in ("__builtin__", "builtins") and name in _BUILTINS:
            return super().find_class("builtins", name)
        if (module, name) == ("_codecs", "encode"):  # bytes in protocol-2 pickles
            return super().find_class(module, name)
        if module == "collections" and name == "OrderedDict":
            return super().find_class(module, name)
        raise pickle.UnpicklingError(
            f"refusing to load {module}.{name} (only numpy arrays, dtypes and plain "
            "containers may be unpickled; this file may carry code)"
        )


def load_pickle(
    file: IO[bytes], source: str | Path, *, extra: Extra | None = None, encoding: str = "ASCII"
) -> Any:
    """Unpickle ``file`` with :class:`RestrictedUnpickler`; ``ValueError`` naming ``source``
    for a refused global or a damaged pickle."""
    try:
        return RestrictedUnpickler(file, extra=extra, encoding=encoding).load()
    except (pickle.UnpicklingError, EOFError, AttributeError, ImportError, TypeError) as err:
        raise ValueError(f"{source}: cannot unpickle safely: {err}") from None


def _read_entry(f: IO[bytes], source: str) -> np.ndarray:
    version = np.lib.format.read_magic(f)
    if version == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
    elif version == (2, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
    else:  # (3, 0): utf-8 field names; read by numpy's own header parser
        shape, fortran, dtype = np.lib.format._read_array_header(  # type: ignore[attr-defined]
            f, version
        )
    if dtype.hasobject:
        # latin1 reads Python 2 pickles of numpy arrays (numpy's advice); Python 3 ignores it.
        return np.asarray(load_pickle(f, source, encoding="latin1"))
    count = int(np.prod(shape, dtype=np.int64))
    data = f.read(count * dtype.itemsize)
    if len(data) != count * dtype.itemsize:
        raise EOFError(f"expected {count * dtype.itemsize} bytes, got {len(data)}")
    array = np.frombuffer(data, dtype=dtype, count=count)
    if fortran:
        return array.reshape(shape[::-1]).transpose().copy(order="F")
    return array.reshape(shape).copy()


def load_npz(path: str | Path, arg: str, keys: Sequence[str] | None = None) -> dict[str, Any]:
    """Entries ``keys`` (default all) of the ``.npz`` file ``path`` as arrays; object arrays
    are read with :class:`RestrictedUnpickler`, so no entry can run code.

    ``arg`` is the name the caller knows the file by (e.g. ``"path_3d"``); errors are
    ``FileNotFoundError`` / ``ValueError`` starting with ``"<arg>: <path>"``.
    """
    path = Path(path)
    where = f"{arg}: {path}"
    if not path.is_file():
        raise FileNotFoundError(f"{arg}: no such file: {path}")
    try:
        with zipfile.ZipFile(path) as zf:
            names = {n[:-4]: n for n in zf.namelist() if n.endswith(".npy")}
            wanted = list(names) if keys is None else list(keys)
            missing = [k for k in wanted if k not in names]
            if missing:
                listed = ", ".join(map(repr, missing))
                raise ValueError(f"{where} has no {listed} entry (entries: {sorted(names)})")
            out = {}
            for key in wanted:
                with zf.open(names[key]) as f:
                    out[key] = _read_entry(f, f"{where} entry {key!r}")
            return out
    except ValueError as err:
        if str(err).startswith(where):
            raise
        raise ValueError(f"{where}: not a readable .npz file: {err}") from None
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, KeyError) as err:
        raise ValueError(
            f"{where}: not a readable .npz file (truncated or corrupt?): {err}"
        ) from None
