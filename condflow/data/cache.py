"""On-disk cache of generated synthetic data, keyed by the generating config and the
*contents* of the files it was generated from (a changed body model is a new key)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from condflow._io import cache_path, cached_file, file_digest

__all__ = ["cached_tensors"]


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
    path = cache_path("data", kind, {"key": key, "files": [file_digest(f) for f in files]}, ".pt")
    return cached_file(
        path, make, lambda p: torch.load(p, weights_only=True), lambda t, f: torch.save(t, f)
    )
