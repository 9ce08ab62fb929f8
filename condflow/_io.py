"""File I/O under everything else: the cache folder, atomic writes, file digests, and the one
key mechanism of the hash-keyed caches (synthetic data, fitted priors, rendered image sets).

A cache entry is named ``<cache>/<folder>/<kind>-<key>`` where ``<key>`` is
:func:`cache_key` of what determined its contents, with any input file named by its
:func:`file_digest` (its bytes), never by its path. Changing how a key is computed would
orphan every entry already on disk, so the tests pin the keys of each cache.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import socket
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, TypeVar

T = TypeVar("T")

__all__ = [
    "CACHE_DIR_ENV",
    "atomic_write",
    "cache_dir",
    "cache_key",
    "cache_path",
    "cached_file",
    "file_digest",
]

CACHE_DIR_ENV = "CONDFLOW_CACHE_DIR"


def cache_dir() -> Path:
    """Root of condflow's cache: ``$CONDFLOW_CACHE_DIR`` if set, else ``~/.cache/condflow``."""
    root = os.environ.get(CACHE_DIR_ENV)
    return Path(root).expanduser() if root else Path.home() / ".cache" / "condflow"


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], object]) -> Path:
    """Write a file through ``write(fileobj)`` into a temporary file, then rename it to ``path``.

    Readers see either no file or the complete file, also when several processes write the
    same path at once or a writer crashes. The temporary file's name carries the host and
    process id, and the temporaries that dead processes of this host left for ``path`` (a
    crash between creating and renaming) are removed first.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_orphans(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=_tmp_prefix(path), suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes private files; caches are shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _tmp_prefix(path: Path, pid: int | None = None) -> str:
    return f".{path.name}.{socket.gethostname()}-{os.getpid() if pid is None else pid}."


def _remove_orphans(path: Path) -> None:
    """Delete ``path``'s temporaries whose writer (a process of this host) has died."""
    host = f".{path.name}.{socket.gethostname()}-"
    for tmp in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        rest = tmp.name[len(host):] if tmp.name.startswith(host) else ""
        pid = rest.split(".", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            tmp.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


_file_digests: dict[tuple[str, int, int], str] = {}


def file_digest(path: str | Path) -> str:
    """SHA-256 (hex) of a file's bytes, remembered per (path, size, mtime) in this process."""
    path = Path(path).resolve()
    stat = path.stat()
    memo = (str(path), stat.st_size, stat.st_mtime_ns)
    if memo not in _file_digests:
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        _file_digests[memo] = digest.hexdigest()
    return _file_digests[memo]


def cache_key(value: Any) -> str:
    """12 hex digits of the SHA-1 of ``value`` as JSON with sorted keys (tuples as lists,
    anything else JSON cannot write by its ``str``)."""
    text = json.dumps(value, sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:12]


def cache_path(folder: str, kind: str, key: Any, suffix: str = "") -> Path:
    """``<cache>/<folder>/<kind>-<cache_key(key)><suffix>``."""
    return cache_dir() / folder / f"{kind}-{cache_key(key)}{suffix}"


def cached_file(
    path: Path,
    make: Callable[[], T],
    load: Callable[[Path], T],
    save: Callable[[T, IO[bytes]], object],
) -> T:
    """``load(path)`` when ``path`` holds a readable entry, else ``make()``, written there
    (atomically) by ``save(value, fileobj)``. A file that fails to load is made again."""
    if path.is_file():
        try:
            return load(path)
        except Exception:  # noqa: BLE001 - a damaged cache file is made again
            path.unlink(missing_ok=True)
    value = make()
    atomic_write(path, lambda f: save(value, f))
    return value
