"""Plain-YAML configs mapped onto dataclasses (unknown keys are errors, never ignored).

Every field is typed once, when the config is loaded: its annotation says what it accepts
(``PositiveInt``, ``Literal["cosine", "constant"]``, ``Probability``, ... from
:mod:`condflow._checks`), so a section added by a task is validated without any code here.
Which dataclasses type a run's ``data``, ``model``, ``loss`` and ``eval`` is the task's
business: a run's config is loaded by :func:`condflow.tasks.load_config`, through the task
it names; this module knows no task.
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Generic, Literal, TypeVar

import yaml

from condflow._checks import (
    DeviceName,
    NonEmptyStr,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
)
from condflow.configs import resolve_config

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

__all__ = [
    "Config",
    "TrainConfig",
    "apply_overrides",
    "changed_keys",
    "config_to_dict",
    "from_dict",
    "merge_config",
    "parse_override",
    "parse_yaml",
    "read_config",
    "validate",
    "with_kind",
]

T = TypeVar("T", bound="DataclassInstance")


@dataclass
class TrainConfig:
    """Optimization and bookkeeping shared by every task."""

    steps: PositiveInt = 2000  # optimizer steps
    batch_size: PositiveInt = 256  # global batch (split across processes under torchrun)
    lr: PositiveFloat = 1e-3  # peak learning rate (Adam)
    weight_decay: NonNegativeFloat = 0.0
    schedule: Literal["cosine", "constant"] = "cosine"  # cosine: with linear warm-up
    warmup_steps: NonNegativeInt = 100
    grad_clip: NonNegativeFloat = 10.0  # max global gradient norm; 0 disables
    log_every: PositiveInt = 50  # steps between CSV log rows
    checkpoint_every: PositiveInt = 500  # steps between checkpoints (the last step always saves)
    num_workers: NonNegativeInt = 0  # DataLoader worker processes
    device: DeviceName = "auto"  # "auto" picks CUDA when available, else CPU
    threads: NonNegativeInt = 0  # torch intra-op threads on CPU; 0 keeps torch's default
    tensorboard: bool = False  # also log to <output_dir>/tensorboard (torch.utils.tensorboard)


DataT = TypeVar("DataT")
ModelT = TypeVar("ModelT")
LossT = TypeVar("LossT")
EvalT = TypeVar("EvalT")


@dataclass
class Config(Generic[DataT, ModelT, LossT, EvalT]):
    """A run: its data/model/loss/eval sections, training and where to write.

    The four sections are typed by the parts the config names (:func:`condflow.tasks.
    load_config`: ``data`` by its ``source``, ``loss`` by the family of ``model.space``);
    type checkers see them as e.g. ``Config[Any, ModelConfig, MeshLoss, EvalConfig]``.
    """

    seed: NonNegativeInt = 0
    output_dir: NonEmptyStr = "runs/default"
    data: DataT = None  # type: ignore[assignment]
    model: ModelT = None  # type: ignore[assignment]
    loss: LossT = None  # type: ignore[assignment]
    eval: EvalT = None  # type: ignore[assignment]
    train: TrainConfig = field(default_factory=TrainConfig)


# -- typing a mapping onto dataclasses ---------------------------------------------------------
# One mechanism for every section, including sections added later: each value is checked
# against its field's annotation (bool/int/float/str, Literal choices, lists, Optional,
# nested dataclasses, and the Range/Match constraints of condflow._checks carried by
# Annotated types), and every message starts with the key's full dotted name.


def _key(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def from_dict(cls: type[T], values: Any, where: str = "") -> T:
    """Build dataclass ``cls`` from a mapping (or validate an instance of it), recursing into
    nested dataclass fields.

    Raises ``ValueError`` naming the offending key path (e.g. ``train.batch_size``) for
    unknown keys, wrong types, out-of-range numbers and values outside their choices.
    """
    if isinstance(values, cls):
        values = {f.name: getattr(values, f.name) for f in dataclasses.fields(cls) if f.init}
    name = where or "config"
    if values is not None and not isinstance(values, dict):
        raise ValueError(f"{name}: expected a mapping, got {type(values).__name__} {values!r}")
    values = _renamed(cls, dict(values or {}), where)
    hints = typing.get_type_hints(cls, include_extras=True)
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ValueError(f"{name}: unknown key(s) {unknown}; known keys are {sorted(names)}")
    kwargs = {k: _coerce(hints[k], value, _key(where, k)) for k, value in values.items()}
    try:
        obj = cls(**kwargs)
    except TypeError as err:
        raise ValueError(f"{name}: {err}") from None
    except ValueError as err:  # a __post_init__ check, phrased "<field>: ..."
        head = str(err).split(":", 1)[0]
        raise ValueError(_key(where, str(err)) if head in names else f"{name}: {err}") from None
    for f in dataclasses.fields(cls):  # defaults too: a default is a value like any other
        if f.init and f.name not in values:
            _coerce(hints[f.name], getattr(obj, f.name), _key(where, f.name))
    return obj


def _renamed(cls: type, values: dict[str, Any], where: str) -> dict[str, Any]:
    """``values`` with the old keys of ``cls.renamed_keys`` (``{old: new}``, for configs and
    checkpoints written before a rename) under their new names, with a warning."""
    for old, new in getattr(cls, "renamed_keys", {}).items():
        if old not in values:
            continue
        if new in values:
            raise ValueError(f"{_key(where, old)}: renamed to {_key(where, new)}; give only "
                             f"{_key(where, new)}")
        warnings.warn(f"{_key(where, old)} is now {_key(where, new)} (read as such)",
                      DeprecationWarning, stacklevel=2)
        values[new] = values.pop(old)
    return values


def validate(cfg: Config) -> Config:
    """Check a :class:`Config` built in Python (not through
    :func:`condflow.tasks.load_config`) the way loading checks a file; returns it. Task
    sections are checked against their own types."""
    from_dict(Config, cfg)
    for name in ("data", "model", "loss", "eval"):
        section = getattr(cfg, name)
        if dataclasses.is_dataclass(section) and not isinstance(section, type):
            from_dict(type(section), section, name)
    return cfg


def _type_name(hint: Any) -> str:
    if typing.get_origin(hint) is Literal:
        return f"one of {list(typing.get_args(hint))}"
    return getattr(hint, "__name__", str(hint))


def _coerce(hint: Any, value: Any, where: str) -> Any:
    """``value`` checked against (and, for numbers, converted to) the annotation ``hint``."""
    origin = typing.get_origin(hint)
    if origin is Annotated:
        return _coerce_annotated(hint, value, where)
    if hint is Any or isinstance(hint, TypeVar):  # a task's section: typed by the task
        return value
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return from_dict(hint, value, where)
    if origin in (typing.Union, types.UnionType):
        return _coerce_union(hint, value, where)
    if origin is Literal:
        return _coerce_literal(hint, value, where)
    if origin in (list, tuple):
        return _coerce_sequence(hint, origin, value, where)
    if origin is dict:
        if not isinstance(value, dict):
            raise ValueError(f"{where}: expected a mapping, got {value!r}")
        return value
    if hint in (int, float):
        return _coerce_number(hint, value, where)
    if hint in (bool, str) and not isinstance(value, hint):
        expected = "bool (true or false)" if hint is bool else "str"
        raise ValueError(f"{where}: expected {expected}, got {value!r}")
    if isinstance(hint, type) and not isinstance(value, hint):
        raise ValueError(f"{where}: expected {hint.__name__}, got {value!r}")
    return value


def _coerce_annotated(hint: Any, value: Any, where: str) -> Any:
    """``Annotated[base, *constraints]``: the base type, then each constraint's ``check``."""
    base, *constraints = typing.get_args(hint)
    value = _coerce(base, value, where)
    for c in constraints:
        if hasattr(c, "check") and value is not None:
            c.check(value, where)
    return value


def _coerce_union(hint: Any, value: Any, where: str) -> Any:
    """``A | B | None``: ``None`` if allowed, else the first option that accepts ``value``."""
    args = typing.get_args(hint)
    if value is None and type(None) in args:
        return None
    options = [a for a in args if a is not type(None)]
    errors = []
    for option in options:
        try:
            return _coerce(option, value, where)
        except ValueError as err:
            errors.append(str(err))
    if len(errors) == 1:
        raise ValueError(errors[0])
    allowed = " or ".join(_type_name(a) for a in args)
    raise ValueError(f"{where}: expected {allowed}, got {value!r}")


def _coerce_literal(hint: Any, value: Any, where: str) -> Any:
    """One of the ``Literal`` choices (``True`` is not a choice ``1``, nor ``1`` a ``True``)."""
    choices = typing.get_args(hint)
    if value not in choices or isinstance(value, bool) != isinstance(choices[0], bool):
        raise ValueError(f"{where}: expected one of {list(choices)}, got {value!r}")
    return value


def _coerce_sequence(hint: Any, origin: type, value: Any, where: str) -> Any:
    """``list[T]``, ``tuple[T, ...]`` or a fixed-length ``tuple[A, B]``, item by item."""
    if not isinstance(value, list | tuple):
        raise ValueError(f"{where}: expected a list, got {value!r}")
    args = typing.get_args(hint)
    if origin is tuple and args and args[-1] is not Ellipsis:
        if len(value) != len(args):
            raise ValueError(f"{where}: expected {len(args)} values, got {list(value)!r}")
        return tuple(_coerce(a, v, f"{where}[{i}]") for i, (a, v) in
                     enumerate(zip(args, value, strict=True)))
    item = args[0] if args else Any
    return origin(_coerce(item, v, f"{where}[{i}]") for i, v in enumerate(value))


def _coerce_number(hint: type, value: Any, where: str) -> int | float:
    """An ``int`` (a float with an integer value, e.g. ``1e4`` steps, becomes one) or a finite
    ``float`` (an ``int`` becomes one); ``bool`` is neither."""
    if hint is int:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{where}: expected int, got {value!r}")
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{where}: expected float, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{where}: expected a finite float, got {value!r}")
    return float(value)


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader, also reading ``1e-3`` / ``5E4`` as floats (YAML 1.2; PyYAML's
    YAML 1.1 resolver needs a dot, so ``lr: 1e-3`` would be the string ``"1e-3"``)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def parse_yaml(text: str, where: str) -> Any:
    """``yaml.safe_load`` with e-notation floats; ``ValueError`` naming ``where`` on bad YAML."""
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as err:
        raise ValueError(f"{where}: invalid YAML: {err}".replace("\n", " ")) from None


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"train.steps=100"`` → (["train", "steps"], 100); the value is parsed as YAML."""
    if "=" not in text:
        raise ValueError(f"--set: expected KEY=VALUE, got {text!r}")
    key, raw = text.split("=", 1)
    keys = key.strip().split(".")
    if not all(keys):
        raise ValueError(f"--set: expected KEY=VALUE with a dotted key, got {text!r}")
    return keys, parse_yaml(raw, f"--set {key.strip()}")


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    for text in overrides:
        keys, value = parse_override(text)
        node = raw
        for i, k in enumerate(keys[:-1]):
            node = node.setdefault(k, {})
            if not isinstance(node, dict):
                parent = ".".join(keys[: i + 1])
                raise ValueError(f"--set {'.'.join(keys)}: {parent} is {node!r}, not a section")
        node[keys[-1]] = value
    return raw


def read_config(source: str | Path) -> dict[str, Any]:
    """The mapping in a YAML file or installed configuration (:mod:`condflow.configs`)."""
    path = resolve_config(source)
    try:
        text = path.read_text()
    except UnicodeDecodeError as err:
        raise ValueError(f"config: {path} is not a text file: {err}") from None
    raw = parse_yaml(text, f"config: {path}")
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ValueError(
            f"config: {path} must hold a mapping of keys (task: ..., train: ...), "
            f"got {type(raw).__name__} {raw!r:.60}"
        )
    return raw


def merge_config(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """``base`` with the keys of ``override`` replaced, recursing into nested mappings."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge_config(merged[key], value)
        else:
            merged[key] = value
    return merged


_KINDED: dict[tuple[type, str, str], type] = {}


def with_kind(cls: type, key: str, name: str) -> type:
    """Dataclass ``cls`` with one more field, ``key: str = name``: the section of a named
    part (``data`` with its ``source``, ``model.encoder`` with its ``kind``), so that the
    typed section says which part it configures and writes back as it was read."""
    made = _KINDED.get((cls, key, name))
    if made is None:
        made = dataclasses.make_dataclass(cls.__name__, [(key, str, field(default=name))],
                                          bases=(cls,))
        made.__module__, made.__doc__ = cls.__module__, cls.__doc__
        _KINDED[(cls, key, name)] = made
    return made


def changed_keys(before: Any, after: Any, where: str) -> list[tuple[str, Any, Any]]:
    """``(dotted key, before, after)`` for every value that differs between two plain config
    dicts, recursing into nested mappings (``where``: the dotted name of both)."""
    if isinstance(before, dict) and isinstance(after, dict):
        keys = sorted(set(before) | set(after))
        return [c for k in keys for c in changed_keys(before.get(k), after.get(k),
                                                      f"{where}.{k}")]
    return [] if before == after else [(where, before, after)]


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """Dataclass → plain dict of built-in types (safe for YAML, JSON and weights-only loads)."""
    return dataclasses.asdict(cfg)
