"""Where body model files live: the cache directory and atomic file writes."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO

CACHE_DIR_ENV = "CONDFLOW_CACHE_DIR"
SMPL_PATH_ENV = "CONDFLOW_SMPL_PATH"


def cache_dir() -> Path:
    """Root of condflow's cache: ``$CONDFLOW_CACHE_DIR`` if set, else ``~/.cache/condflow``."""
    root = os.environ.get(CACHE_DIR_ENV)
    return Path(root).expanduser() if root else Path.home() / ".cache" / "condflow"


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], object]) -> Path:
    """Write a file through ``write(fileobj)`` into a temporary file, then rename it to ``path``.

    Readers see either no file or the complete file, also when several processes write the
    same path at once or a writer crashes.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
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
