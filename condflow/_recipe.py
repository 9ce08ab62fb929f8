"""Constructor recipes: rebuild a module from its class and constructor arguments.

A class deriving from :class:`Recorded` (every bijector, the flows, the heads, the
encoders, the body model) remembers the arguments its outermost ``__init__`` was called
with. :func:`recipe` turns them into plain data (built-in types and tensors, so a file
holding it loads with ``torch.load(weights_only=True)``)::

    {"class": "condflow.flow:ConditionalGlow", "args": {"features": 48, ...}}

Arguments that are recorded modules become nested recipes; tuples, dtypes, paths and
frozen dataclasses of condflow (e.g. a skeleton layout) are tagged. :func:`build` calls
the constructors again. It never imports anything: a class is found only among the
``Recorded`` classes already defined in this process (condflow's, once their modules are
imported, and a user's own), and a dataclass only in an already imported condflow module.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import sys
from pathlib import PurePath
from typing import Any

import torch
from torch import Tensor

__all__ = ["Recorded", "build", "class_key", "recipe"]

_ARGS = "_condflow_init_args"
_REGISTRY: dict[str, type] = {}


def class_key(cls: type) -> str:
    """``"module:qualname"`` of ``cls``."""
    return f"{cls.__module__}:{cls.__qualname__}"


class Recorded:
    """Mixin: instances remember their constructor arguments (see the module docstring)."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _REGISTRY[class_key(cls)] = cls
        init = cls.__dict__.get("__init__")
        if init is None:
            return
        signature = inspect.signature(init)
        kinds = {name: p.kind for name, p in list(signature.parameters.items())[1:]}

        @functools.wraps(init)
        def __init__(self: Any, *args: Any, **kw: Any) -> None:
            if _ARGS not in self.__dict__:  # the outermost __init__: type(self)'s
                bound = signature.bind(self, *args, **kw)
                bound.apply_defaults()
                arguments = dict(bound.arguments)
                arguments.pop(next(iter(signature.parameters)))  # self
                self.__dict__[_ARGS] = (type(self), arguments, kinds)
            init(self, *args, **kw)

        cls.__init__ = __init__  # type: ignore[method-assign]


def _encode(value: Any, where: str) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, Tensor):
        return value.detach().cpu().clone()
    if isinstance(value, torch.dtype):
        return {"__dtype__": str(value).removeprefix("torch.")}
    if isinstance(value, PurePath):
        return {"__path__": str(value)}
    if isinstance(value, tuple):
        return {"__tuple__": [_encode(v, f"{where}[{i}]") for i, v in enumerate(value)]}
    if isinstance(value, list):
        return [_encode(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {"__dict__": {k: _encode(v, f"{where}[{k!r}]") for k, v in value.items()}}
    if _ARGS in getattr(value, "__dict__", {}):
        return recipe(value, where)
    if (
        dataclasses.is_dataclass(value)
        and not isinstance(value, type)
        and type(value).__module__.startswith("condflow.")
    ):
        fields = {
            f.name: _encode(getattr(value, f.name), f"{where}.{f.name}")
            for f in dataclasses.fields(value)
            if f.init
        }
        return {"__dataclass__": class_key(type(value)), "fields": fields}
    raise ValueError(
        f"{where}: a {type(value).__name__} cannot be recorded (expected built-in values, "
        "tensors or modules deriving from condflow's Recorded)"
    )


def recipe(module: Any, where: str = "model") -> dict[str, Any]:
    """The recipe of ``module``; ``ValueError`` naming the argument that cannot be recorded
    (e.g. a plain ``torch.nn.Linear`` as an embedding net)."""
    record = module.__dict__.get(_ARGS) if hasattr(module, "__dict__") else None
    if record is None or record[0] is not type(module):
        raise ValueError(
            f"{where}: a {type(module).__name__} does not record its constructor arguments "
            "(only classes deriving from condflow._recipe.Recorded do)"
        )
    cls, arguments, kinds = record
    args: dict[str, Any] = {}
    for name, value in arguments.items():
        kind = kinds[name]
        if kind is inspect.Parameter.VAR_POSITIONAL:
            raise ValueError(f"{where}: {cls.__name__}(*{name}) cannot be recorded")
        if kind is inspect.Parameter.VAR_KEYWORD:
            for k, v in value.items():
                args[k] = _encode(v, f"{where}.{k}")
        else:
            args[name] = _encode(value, f"{where}.{name}")
    return {"class": class_key(cls), "args": args}


def _lookup(key: object, where: str) -> type:
    if not isinstance(key, str) or key not in _REGISTRY:
        raise ValueError(
            f"{where}: unknown class {key!r}; a class is rebuilt only if it derives from "
            "condflow._recipe.Recorded and its module is imported"
        )
    return _REGISTRY[key]


def _decode(value: Any, where: str) -> Any:
    if isinstance(value, list):
        return [_decode(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if not isinstance(value, dict):
        return value
    if "class" in value:
        return build(value, where)
    if "__tuple__" in value:
        return tuple(_decode(v, f"{where}[{i}]") for i, v in enumerate(value["__tuple__"]))
    if "__dict__" in value:
        return {k: _decode(v, f"{where}[{k!r}]") for k, v in value["__dict__"].items()}
    if "__dtype__" in value:
        dtype = getattr(torch, str(value["__dtype__"]), None)
        if not isinstance(dtype, torch.dtype):
            raise ValueError(f"{where}: unknown dtype {value['__dtype__']!r}")
        return dtype
    if "__path__" in value:
        return str(value["__path__"])
    if "__dataclass__" in value:
        module_name, _, qualname = str(value["__dataclass__"]).partition(":")
        module = sys.modules.get(module_name) if module_name.startswith("condflow.") else None
        cls = getattr(module, qualname, None) if module is not None else None
        if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
            raise ValueError(f"{where}: unknown dataclass {value['__dataclass__']!r}")
        return cls(**{k: _decode(v, f"{where}.{k}") for k, v in value["fields"].items()})
    raise ValueError(f"{where}: not a recipe value: a mapping with keys {sorted(value)}")


def build(spec: Any, where: str = "recipe") -> Any:
    """Call the constructors of the recipe ``spec`` (from :func:`recipe`) again."""
    if not isinstance(spec, dict) or not isinstance(spec.get("args"), dict):
        raise ValueError(f"{where}: expected a mapping with 'class' and 'args'")
    cls = _lookup(spec.get("class"), where)
    args = {k: _decode(v, f"{where}.{k}") for k, v in spec["args"].items()}
    try:
        return cls(**args)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{where}: rebuilding {cls.__name__}: {err}") from err
