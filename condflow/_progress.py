"""One progress bar for every long step (training, evaluation, fitting, data generation,
rendering): tqdm on stderr, shown only where someone watches.

A bar is drawn when progress is enabled (:func:`set_progress`; the CLI's ``--no-progress``
turns it off) **and** stderr is a terminal, so logs, pipes and CI output stay free of bar
updates. Library code calls :func:`progress` and never decides on its own.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any, TypeVar

from tqdm import tqdm

__all__ = ["progress", "progress_enabled", "set_progress"]

T = TypeVar("T")

_enabled = True


def set_progress(enabled: bool) -> None:
    """Turn progress bars on or off for this process (on by default); every CLI command that
    draws bars sets it from its ``--no-progress`` when it starts."""
    global _enabled
    _enabled = bool(enabled)


def progress_enabled(enabled: bool | None = None) -> bool:
    """Whether a bar would be drawn: ``enabled`` (default: the :func:`set_progress` switch)
    and stderr is a terminal."""
    wanted = _enabled if enabled is None else enabled
    isatty = getattr(sys.stderr, "isatty", None)
    return bool(wanted and isatty is not None and isatty())


def progress(
    iterable: Iterable[T] | None = None,
    desc: str | None = None,
    total: int | None = None,
    unit: str = "it",
    enabled: bool | None = None,
    **kwargs: Any,
) -> tqdm:
    """A tqdm bar over ``iterable`` (or a manual one with ``total``, advanced by
    ``.update(n)``), drawn on stderr only when :func:`progress_enabled` says so; otherwise a
    silent pass-through with the same interface."""
    return tqdm(iterable, desc=desc, total=total, unit=unit, dynamic_ncols=True,
                disable=not progress_enabled(enabled), file=sys.stderr, **kwargs)
