"""Crash-safe checkpoints that load with ``torch.load(weights_only=True)``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from condflow.body.paths import atomic_write


def atomic_save(obj: Any, path: str | Path) -> Path:
    """``torch.save`` through a temporary file renamed over ``path``: a crash at any moment
    leaves either the previous file or the new one, never a torn one."""
    return atomic_write(path, lambda f: torch.save(obj, f))


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint with ``weights_only=True``; clear errors for missing/corrupt files."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint: no such file {path}")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # noqa: BLE001 - re-raised with the path named
        raise ValueError(f"checkpoint: cannot read {path}: {err}") from err
    if not isinstance(ckpt, dict) or "model" not in ckpt or "config" not in ckpt:
        raise ValueError(f"checkpoint: {path} is not a condflow checkpoint (no model/config)")
    return ckpt
