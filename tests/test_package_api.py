"""The package's ``__all__`` rule (stated in ``condflow/__init__.py``)."""

from __future__ import annotations

import ast
import importlib
import pkgutil
from pathlib import Path

import condflow


def _module_names() -> list[str]:
    found = ["condflow"]
    for info in pkgutil.walk_packages(condflow.__path__, "condflow."):
        if not info.name.endswith(".__main__"):  # importing it would run the CLI
            found.append(info.name)
    return sorted(found)


MODULES = _module_names()


def test_the_walk_finds_the_package():
    assert {"condflow.flow", "condflow.bijectors.lu", "condflow._checks"} <= set(MODULES)


def test_every_module_declares_all_of_names_it_defines():
    missing, unknown = [], []
    for name in MODULES:
        module = importlib.import_module(name)
        if "__all__" not in vars(module):
            missing.append(name)
            continue
        unknown += [f"{name}.{n}" for n in module.__all__ if not hasattr(module, n)]
    assert not missing, f"modules without __all__: {missing}"
    assert not unknown, f"__all__ names that do not exist: {unknown}"


def _imports(path: Path) -> dict[str, str]:
    """Names a package ``__init__`` imports at module level → the module they come from."""
    sources = {}
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            for alias in node.names:
                sources[alias.asname or alias.name] = node.module
    return sources


def test_packages_reexport_only_names_their_modules_list():
    wrong = []
    for name in MODULES:
        module = importlib.import_module(name)
        if not hasattr(module, "__path__"):
            continue
        sources = _imports(Path(module.__file__))
        for exported in module.__all__:
            source = sources.get(exported)
            if source is None:
                continue  # defined in the __init__ itself
            listed = getattr(importlib.import_module(source), "__all__", ())
            if exported not in listed:
                wrong.append(f"{name}.{exported} (from {source})")
    assert not wrong, f"re-exported names not in their module's __all__: {wrong}"
