"""Normalization layers of condflow's residual MLPs (coupling nets, the MLP lifter), by name.

``"batch"`` is batch norm (ProHMR's coupling nets, Martinez et al.'s lifter). In training
mode its statistics come from the current batch, so the train-mode output for an example
(e.g. a flow's ``log_prob``) depends on the other examples of its batch; in eval mode the
running statistics are used and it does not. ``"layer"`` normalizes each row over its
features (``LayerNorm``), the same in both modes and independent of the batch; ``"none"``
normalizes nothing. Arguments named ``batch_norm`` also take ``True`` / ``False`` for
``"batch"`` / ``"none"``.
"""

from __future__ import annotations

import typing
from typing import Literal

from torch import nn

#: The normalizations, by name.
__all__ = ["Norm", "make_norm", "norm_name"]


Norm = Literal["batch", "layer", "none"]
NORMS: tuple[str, ...] = typing.get_args(Norm)


def norm_name(batch_norm: bool | str, name: str = "batch_norm") -> Norm:
    """``"batch"``, ``"layer"`` or ``"none"`` for a ``batch_norm`` argument (True / False
    read as ``"batch"`` / ``"none"``); ``ValueError`` naming ``name`` otherwise."""
    if isinstance(batch_norm, bool):
        return "batch" if batch_norm else "none"
    if batch_norm not in NORMS:
        raise ValueError(f"{name}: expected True, False or one of {NORMS}, got {batch_norm!r}")
    return typing.cast(Norm, batch_norm)


def make_norm(kind: Norm, features: int) -> nn.Module:
    """The normalization ``kind`` (a name from :data:`NORMS`) of ``[N, features]`` rows."""
    if kind == "batch":
        return nn.BatchNorm1d(features)
    return nn.LayerNorm(features) if kind == "layer" else nn.Identity()
