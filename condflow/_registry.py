"""Registries of named parts (encoders, output spaces, data sources), and user plugins.

Each registry maps a name, as a configuration writes it (``model.encoder.kind: small_cnn``),
to an entry: the dataclass typing that part's config section and the factory building it.
Users add their own from their own module (:func:`condflow.register_encoder`,
:func:`condflow.register_space`, :func:`condflow.register_data_source`); the command line
imports such a module when told to (``condflow --plugin mypkg.parts ...``, or an installed
package's ``condflow.plugins`` entry point). A configuration only ever *names* registered
parts: reading a config or a checkpoint never imports anything.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import sys
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path
from typing import Generic, TypeVar

__all__ = ["PLUGIN_GROUP", "Registry", "check_settings_class", "load_plugins"]

E = TypeVar("E")

#: The entry-point group whose modules the command line imports at start.
PLUGIN_GROUP = "condflow.plugins"


class Registry(Generic[E]):
    """Entries by name, for the parts named ``what`` (e.g. ``"encoder"``)."""

    def __init__(self, what: str) -> None:
        self.what = what
        self._entries: dict[str, E] = {}

    def register(self, name: str, entry: E, replace: bool = False) -> None:
        """Add ``entry`` as ``name``; ``ValueError`` if ``name`` is taken (unless ``replace``)."""
        if not isinstance(name, str) or not name.isidentifier():
            raise ValueError(f"name: expected an identifier-like string, got {name!r}")
        if name in self._entries and not replace:
            raise ValueError(f"name: {self.what} {name!r} is already registered "
                             "(replace=True replaces it)")
        self._entries[name] = entry

    def unregister(self, name: str) -> None:
        """Remove ``name`` (``KeyError`` if it is not registered)."""
        del self._entries[name]

    def get(self, name: object, where: str) -> E:
        """The entry of ``name``; ``ValueError`` naming ``where`` (the config key) and the
        registered names otherwise."""
        if not isinstance(name, str) or name not in self._entries:
            raise ValueError(f"{where}: expected a registered {self.what} "
                             f"({', '.join(repr(k) for k in self._entries)}), got {name!r} "
                             "(a part of your own? import its module first: condflow "
                             "--plugin MODULE ...)")
        return self._entries[name]

    def names(self) -> list[str]:
        """The registered names, in registration order."""
        return list(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries


def check_settings_class(settings: object, where: str = "settings") -> type:
    """``settings`` if it is a dataclass type (the type of a part's config section)."""
    if not (isinstance(settings, type) and dataclasses.is_dataclass(settings)):
        raise ValueError(f"{where}: expected a dataclass type, got {settings!r}")
    return settings


def load_plugins(names: Iterable[str] = (), entry_points: bool = True) -> list[str]:
    """Import each plugin module (a module name, or a ``.py`` file), then, with
    ``entry_points``, the modules of installed packages' :data:`PLUGIN_GROUP` entry points.
    Returns the names imported. Plugins register their parts when imported."""
    loaded = []
    for name in names:
        path = Path(name)
        if name.endswith(".py"):
            if not path.is_file():
                raise FileNotFoundError(f"--plugin: no such file: {path}")
            module_name = f"condflow_plugin_{path.stem}"
            spec = importlib.util.spec_from_file_location(module_name, path)
            if spec is None or spec.loader is None:
                raise ValueError(f"--plugin: cannot import {path}")
            module = importlib.util.module_from_spec(spec)
            sys.modules[module_name] = module
            spec.loader.exec_module(module)
        else:
            try:
                importlib.import_module(name)
            except ModuleNotFoundError as e:
                raise ValueError(f"--plugin: no module named {name!r} ({e})") from e
        loaded.append(name)
    if entry_points:
        for ep in metadata.entry_points(group=PLUGIN_GROUP):
            importlib.import_module(ep.value.split(":")[0])
            loaded.append(ep.value)
    return loaded
