"""The example configurations, installed with the package and named on the command line.

Each ``<name>.yaml`` here is the same file as the readable copy under the checkout's
``examples/`` (a link in the repository; the wheel carries its content), so
``condflow train lifting`` works after a plain ``pip install`` and
``condflow train examples/lifting/config.yaml`` in a checkout reads the same bytes.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

__all__ = ["config_names", "describe_config", "resolve_config"]


def _files() -> dict[str, Path]:
    root = resources.files(__name__)
    return {
        Path(entry.name).stem: Path(str(entry))
        for entry in root.iterdir()
        if entry.name.endswith(".yaml")
    }


def config_names() -> list[str]:
    """Names of the installed configurations, sorted."""
    return sorted(_files())


def describe_config(name: str) -> str:
    """The first sentence of configuration ``name``'s leading comment (its summary)."""
    words: list[str] = []
    for line in resolve_config(name).read_text().splitlines():
        if not line.startswith("#"):
            break
        words.append(line.lstrip("#").strip())
        if "." in words[-1]:
            break
    text = " ".join(words)
    end = text.find(". ")
    return text if end < 0 else text[: end + 1]


def resolve_config(source: str | Path) -> Path:
    """``source`` as a config file: an existing path, else an installed configuration's name.

    Raises ``FileNotFoundError`` naming ``source`` and the installed names when neither exists.
    """
    path = Path(source)
    if path.is_file():
        return path
    files = _files()
    if str(source) in files:
        return files[str(source)]
    raise FileNotFoundError(
        f"config: no such file {path}, and no installed configuration named {str(source)!r} "
        f"(installed: {', '.join(sorted(files))}; `condflow configs` lists them)"
    )
