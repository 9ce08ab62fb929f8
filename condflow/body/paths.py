"""Where body model files live: the cache directory and atomic file writes."""

from __future__ import annotations

import glob
import os
import socket
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO

__all__ = ["CACHE_DIR_ENV", "SMPL_PATH_ENV", "atomic_write", "cache_dir"]

CACHE_DIR_ENV = "CONDFLOW_CACHE_DIR"
SMPL_PATH_ENV = "CONDFLOW_SMPL_PATH"


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
