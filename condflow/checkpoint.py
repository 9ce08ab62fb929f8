"""Crash-safe checkpoints that load with ``torch.load(weights_only=True)``, sealed by a checksum.

Training checkpoints and one-file models (:mod:`condflow.saving`) are dicts holding a
``"model"`` state_dict and what rebuilds the model: a ``"config"`` (or, for a module saved
without one, its constructor ``"recipe"``). :func:`save_checkpoint` adds ``"checksum"``: the
SHA-256 of both (tensor bytes, dtypes, shapes, keys; the config as sorted JSON).
:func:`read_weights` loads such a file with ``weights_only=True`` (no code can run), and
refuses it — naming the file — when the checksum does not match (a damaged or edited
file) or when a weight is NaN/Inf (naming the parameter). Files written before checksums
existed have none and are still read.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from condflow._io import atomic_write

__all__ = ["atomic_save", "load_checkpoint", "read_weights", "save_checkpoint", "state_checksum"]


def atomic_save(obj: Any, path: str | Path) -> Path:
    """``torch.save`` through a temporary file renamed over ``path``: a crash at any moment
    leaves either the previous file or the new one, never a torn one."""
    return atomic_write(path, lambda f: torch.save(obj, f))


def state_checksum(state: dict[str, Any], config: Any = None) -> str:
    """SHA-256 (hex) of a state_dict's keys, dtypes, shapes and bytes, and of ``config``."""
    digest = hashlib.sha256()
    for key in sorted(state):
        value = state[key]
        digest.update(key.encode())
        if isinstance(value, Tensor):
            t = value.detach().cpu().contiguous()
            digest.update(f"{t.dtype}{list(t.shape)}".encode())
            digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
        else:
            digest.update(repr(value).encode())
    digest.update(json.dumps(config, sort_keys=True, default=str).encode())
    return digest.hexdigest()


def _description(payload: dict[str, Any]) -> Any:
    """What rebuilds the model of ``payload``: its config, else its recipe."""
    return payload["config"] if "config" in payload else payload.get("recipe")


def save_checkpoint(payload: dict[str, Any], path: str | Path) -> Path:
    """:func:`atomic_save` of ``payload`` (with ``"model"`` and ``"config"`` or ``"recipe"``)
    plus its ``"checksum"``; returns the path."""
    sealed = {**payload, "checksum": state_checksum(payload["model"], _description(payload))}
    return atomic_save(sealed, path)


def read_weights(
    path: str | Path, map_location: str | torch.device = "cpu", what: str = "checkpoint"
) -> dict[str, Any]:
    """Load a checkpoint or model file with ``weights_only=True``, check its checksum and
    that every weight is finite. ``FileNotFoundError`` / ``ValueError`` naming the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what}: no such file {path}")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # noqa: BLE001 - re-raised with the path named
        # Never retried without weights_only: torch's advice to do so is left out.
        refused = [ln.strip() for ln in str(err).splitlines() if "unsupported global" in ln.lower()]
        if refused:
            raise ValueError(
                f"{what}: {path}: cannot read: it holds objects other than tensors and plain "
                f"containers, which could run code when loaded ({refused[0]}); refused"
            ) from None
        raise ValueError(
            f"{what}: {path}: cannot read (damaged, or not a torch file: {type(err).__name__})"
        ) from None
    if not isinstance(payload, dict) or not isinstance(payload.get("model"), dict) \
            or not ("config" in payload or "recipe" in payload):
        raise ValueError(f"{what}: {path} is not a condflow model file or checkpoint "
                         "(no model/config)")
    expected = payload.get("checksum")
    if expected is not None and expected != state_checksum(payload["model"], _description(payload)):
        raise ValueError(f"{what}: {path} is damaged: its checksum does not match its "
                         "contents (a bit flipped, or the file was edited)")
    bad = [k for k, v in payload["model"].items()
           if isinstance(v, Tensor) and v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        more = f" and {len(bad) - 3} more" if len(bad) > 3 else ""
        raise ValueError(f"{what}: {path} holds NaN or Inf weights in {bad[:3]}{more}")
    return payload


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """A training checkpoint or model file, read by :func:`read_weights`."""
    return read_weights(path, map_location, "checkpoint")
