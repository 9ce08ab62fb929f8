"""Plain-YAML configs mapped onto dataclasses (unknown keys are errors, never ignored)."""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")


@dataclass
class TrainConfig:
    """Optimization and bookkeeping shared by every task."""

    steps: int = 2000  # optimizer steps
    batch_size: int = 256  # global batch (split across processes under torchrun)
    lr: float = 1e-3  # peak learning rate (Adam)
    weight_decay: float = 0.0
    schedule: str = "cosine"  # "cosine" (with linear warm-up) or "constant"
    warmup_steps: int = 100
    grad_clip: float = 10.0  # max global gradient norm; 0 disables
    log_every: int = 50  # steps between CSV log rows
    checkpoint_every: int = 500  # steps between checkpoints (the last step always saves)
    num_workers: int = 0  # DataLoader worker processes
    device: str = "auto"  # "auto" picks CUDA when available, else CPU
    threads: int = 0  # torch intra-op threads on CPU; 0 keeps torch's default
    tensorboard: bool = False  # also log to <output_dir>/tensorboard (torch.utils.tensorboard)


@dataclass
class Config:
    """A run: which task, its data/model/loss/eval sections, training and where to write."""

    task: str
    seed: int = 0
    output_dir: str = "runs/default"
    data: Any = None
    model: Any = None
    loss: Any = None
    eval: Any = None
    train: TrainConfig = field(default_factory=TrainConfig)


def from_dict(cls: type[T], values: dict[str, Any] | None, where: str = "config") -> T:
    """Build dataclass ``cls`` from a mapping, recursing into nested dataclass fields.

    Raises ``ValueError`` naming the offending key path for unknown keys or wrong types.
    """
    if values is not None and not isinstance(values, dict):
        raise ValueError(f"{where}: expected a mapping, got {type(values).__name__}")
    values = dict(values or {})
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown}; known keys are {sorted(names)}")
    kwargs = {}
    for key, value in values.items():
        kwargs[key] = _coerce(hints[key], value, f"{where}.{key}")
    try:
        return cls(**kwargs)
    except TypeError as err:
        raise ValueError(f"{where}: {err}") from None


def _coerce(hint: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    if dataclasses.is_dataclass(hint):
        return from_dict(hint, value, where)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(hint)
        if value is None and type(None) in args:
            return None
        hint = next(a for a in args if a is not type(None))
        return _coerce(hint, value, where)
    if origin in (list, tuple):
        if not isinstance(value, list | tuple):
            raise ValueError(f"{where}: expected a list, got {value!r}")
        (item,) = typing.get_args(hint)[:1] or (Any,)
        return origin(_coerce(item, v, f"{where}[{i}]") for i, v in enumerate(value))
    if hint is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if hint in (int, str, bool) and not isinstance(value, hint):
        raise ValueError(f"{where}: expected {hint.__name__}, got {value!r}")
    if hint is int and isinstance(value, bool):
        raise ValueError(f"{where}: expected int, got {value!r}")
    return value


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"train.steps=100"`` → (["train", "steps"], 100); the value is parsed as YAML."""
    if "=" not in text:
        raise ValueError(f"--set: expected KEY=VALUE, got {text!r}")
    key, raw = text.split("=", 1)
    return key.strip().split("."), yaml.safe_load(raw)


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    for text in overrides:
        keys, value = parse_override(text)
        node = raw
        for k in keys[:-1]:
            node = node.setdefault(k, {})
        node[keys[-1]] = value
    return raw


def load_config(source: str | Path | dict[str, Any], overrides: list[str] = ()) -> Config:
    """Read a YAML file (or a dict), apply ``--set`` overrides, and type every section.

    The task named by ``task:`` supplies the dataclasses of ``data``, ``model``, ``loss`` and
    ``eval`` (see :mod:`condflow.tasks`).
    """
    from condflow.tasks import get_task

    if isinstance(source, dict):
        raw = dict(source)
    else:
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"config: no such file {path}")
        raw = yaml.safe_load(path.read_text()) or {}
    raw = apply_overrides(raw, list(overrides))
    if "task" not in raw:
        raise ValueError("config: missing key 'task'")
    task = get_task(raw["task"])
    sections = {name: raw.pop(name, None) for name in ("data", "model", "loss", "eval")}
    cfg = from_dict(Config, raw)
    for name, cls in task.config_types().items():
        setattr(cfg, name, from_dict(cls, sections[name], name))
    return cfg


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """Dataclass → plain dict of built-in types (safe for YAML, JSON and weights-only loads)."""
    return dataclasses.asdict(cfg)
