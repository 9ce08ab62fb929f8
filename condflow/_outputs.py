"""Where commands write: never over an input, never over a file this run did not create.

Every command of :mod:`condflow.commands` gets one :class:`OutputGuard` (built by
:func:`condflow.cli.main` from the command's arguments) and passes each path it is about
to write through :meth:`OutputGuard.claim` before writing. ``claim`` refuses

- a path that is one of the command's input files (even with ``--overwrite``): outputs
  must get distinct names;
- an existing file that this run did not create, unless ``--overwrite`` was given;
- a path whose folder cannot be created or written, naming the argument (``--out``).

Claiming early (before the model runs) means a refused output costs nothing; a file claimed
once may be written any number of times by the same run.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO

from condflow._io import atomic_write

__all__ = ["OutputGuard"]


class OutputGuard:
    """The output policy of one command run (see the module docstring)."""

    def __init__(self, overwrite: bool = False, inputs: Iterable[str | Path] = ()) -> None:
        self.overwrite = bool(overwrite)
        self._inputs: set[Path] = set()
        self._claimed: set[Path] = set()
        self.add_inputs(inputs)

    def add_inputs(self, paths: Iterable[str | Path]) -> None:
        """Protect ``paths`` (files that exist) from being written."""
        for p in map(Path, paths):
            if p.is_file():
                self._inputs.add(p.resolve())

    def claim(self, path: str | Path, arg: str = "--out") -> Path:
        """Check that this run may write the file ``path``, create its folder, remember the
        claim and return ``path``; ``FileExistsError`` / ``IsADirectoryError`` /
        ``NotADirectoryError`` / ``PermissionError`` naming ``arg`` and the path otherwise."""
        path = Path(path)
        resolved = path.resolve()
        if resolved in self._inputs:
            raise FileExistsError(
                f"{arg}: {path} is an input of this command; write the outputs elsewhere"
            )
        if resolved in self._claimed:
            return path
        if path.is_dir():
            raise IsADirectoryError(f"{arg}: {path} is a directory, expected a file name")
        if path.exists() and not self.overwrite:
            raise FileExistsError(
                f"{arg}: {path} already exists and was not written by this run; pass "
                "--overwrite to replace it, or choose another output"
            )
        self.directory(path.parent, arg)
        self._claimed.add(resolved)
        return path

    def directory(self, path: str | Path, arg: str = "--out") -> Path:
        """Create the folder ``path`` (with parents) if needed and check it is writable."""
        path = Path(path)
        existing = path
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent
        if not existing.is_dir():
            raise NotADirectoryError(f"{arg}: {existing} is a file, so {path} cannot be a folder")
        if not os.access(existing, os.W_OK | os.X_OK):
            raise PermissionError(f"{arg}: cannot write in {existing} (permission denied)")
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise PermissionError(f"{arg}: cannot create the folder {path}: {err}") from None
        return path

    def write(
        self, path: str | Path, write: Callable[[IO[bytes]], object], arg: str = "--out"
    ) -> Path:
        """Claim ``path`` and write it atomically through ``write(fileobj)``."""
        return atomic_write(self.claim(path, arg), write)

    def write_text(self, path: str | Path, text: str, arg: str = "--out") -> Path:
        return self.write(path, lambda f: f.write(text.encode()), arg)
