"""Help text for the command line from reStructuredText docstrings."""

from __future__ import annotations

import re

__all__ = ["plain_text"]

_ROLE = re.compile(r":[a-z]+:`~?([^`]+)`")  # :func:`~condflow.x.y` -> condflow.x.y
_LITERAL = re.compile(r"``([^`]+)``")  # ``--out`` -> --out


def plain_text(doc: str) -> str:
    """``doc`` with reST roles and inline literals turned into plain text, for ``--help``."""
    return _LITERAL.sub(r"\1", _ROLE.sub(r"\1", doc))
