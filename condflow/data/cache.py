"""On-disk cache of generated synthetic data, keyed by the generating config and the
*contents* of the files it was generated from (a changed body model is a new key)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from condflow.body.paths import atomic_write, cache_dir

__all__ = ["cached_tensors", "file_digest"]

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


def cached_tensors(
    kind: str,
    key: Any,
    make: Callable[[], dict[str, torch.Tensor]],
    files: Sequence[str | Path] = (),
) -> dict[str, torch.Tensor]:
    """Return ``make()``, stored under ``<cache>/data/<kind>-<hash>.pt`` after the first call
    (written atomically; loaded with ``weights_only=True``).

    The hash covers ``key`` (a dataclass or JSON-able value) and the SHA-256 of each of
    ``files`` (e.g. the body model the data is posed with), never their paths.
    """
    if dataclasses.is_dataclass(key) and not isinstance(key, type):
        key = dataclasses.asdict(key)
    full = {"key": key, "files": [file_digest(f) for f in files]}
    text = json.dumps(full, sort_keys=True, default=str)
    digest = hashlib.sha1(text.encode()).hexdigest()[:12]
    path = cache_dir() / "data" / f"{kind}-{digest}.pt"
    if path.is_file():
        try:
            return torch.load(path, weights_only=True)
        except Exception:  # noqa: BLE001 - a damaged cache file is regenerated
            path.unlink(missing_ok=True)
    tensors = make()
    atomic_write(path, lambda f: torch.save(tensors, f))
    return tensors
