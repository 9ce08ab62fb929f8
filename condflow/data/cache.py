"""On-disk cache of generated synthetic data, keyed by the generating config."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable
from typing import Any

import torch

from condflow.body.paths import atomic_write, cache_dir


def cached_tensors(
    kind: str, key: Any, make: Callable[[], dict[str, torch.Tensor]]
) -> dict[str, torch.Tensor]:
    """Return ``make()``, stored under ``<cache>/data/<kind>-<hash of key>.pt`` after the first
    call (written atomically; loaded with ``weights_only=True``)."""
    if dataclasses.is_dataclass(key):
        key = dataclasses.asdict(key)
    digest = hashlib.sha1(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:12]
    path = cache_dir() / "data" / f"{kind}-{digest}.pt"
    if path.is_file():
        try:
            return torch.load(path, weights_only=True)
        except Exception:  # noqa: BLE001 - a damaged cache file is regenerated
            path.unlink(missing_ok=True)
    tensors = make()
    atomic_write(path, lambda f: torch.save(tensors, f))
    return tensors
