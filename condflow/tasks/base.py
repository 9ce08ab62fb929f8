"""A run's configuration as parts, and what a family of heads supplies to the training loop.

A configuration names three parts, each from its registry:

- ``data.source``: a data source (:mod:`condflow.data.sources`), its settings beside it;
- ``model.encoder.kind``: a context encoder (:mod:`condflow.encoders.registry`);
- ``model.space.kind``: an output space (:mod:`condflow.spaces.registry`),

plus the flow's settings (``model.flow_*``), the objective's weights (``loss``, typed by the
space's family) and the evaluation (``eval``). The space's *family* (``"joints"`` or
``"smpl"``) is the :class:`Task` that builds the head, its objective and its evaluation; a
family works with any encoder and any source that give what it needs. Impossible pairs (an
encoder that reads images on keypoint data, a skeleton on data without 3D joints) are refused
when the config is loaded, naming the key.

Configs written before the parts existed (``task: lifting`` / ``task: mesh`` with flat model
keys) are read as the same parts, with a ``DeprecationWarning``.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Generic, Literal, TypeVar

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from condflow._checks import NonNegativeInt, PositiveInt, Probability
from condflow._norms import Norm
from condflow.bijectors import CouplingNet
from condflow.config import Config, apply_overrides, from_dict, read_config, with_kind
from condflow.data.sources import DATA_SOURCES, DataRequest, DataSourceEntry, DataSplit, build_data
from condflow.data.synthetic_lifting import LiftingSetConfig
from condflow.encoders.registry import ENCODERS, EncoderRequest, build_encoder
from condflow.inputs import InputSpec
from condflow.losses.objective import Objective
from condflow.spaces.base import OutputSpace
from condflow.spaces.registry import SPACES, build_space

__all__ = [
    "EvalConfig",
    "ModelConfig",
    "Task",
    "describe",
    "get_task",
    "load_config",
    "register_task",
    "task_for",
    "to_device",
]

#: The kind of model a task builds (every method that takes a model takes this kind).
M = TypeVar("M", bound=nn.Module)


@dataclass
class ModelConfig:
    """The parts of the model and the flow's settings.

    ``encoder`` and ``space`` are the named parts' settings, each with its ``kind`` (filled
    in by :func:`load_config` from ``{kind: name, ...}`` or the bare name).
    """

    kind: Literal["flow", "regression"] = "flow"  # probabilistic, or the deterministic baseline
    encoder: Any = None  # {kind: mlp_lifter | small_cnn | resnet18/34/50 | registered, ...}
    space: Any = None  # {kind: skeleton | smpl_6d | registered, ...}
    flow_blocks: PositiveInt = 4  # Glow blocks (ProHMR: 4)
    flow_hidden: PositiveInt = 1024  # coupling-net width (ProHMR: 1024)
    flow_residual_blocks: NonNegativeInt = 2  # residual blocks per coupling net (ProHMR: 2)
    flow_dropout: Probability = 0.0  # dropout in the coupling nets
    # lifter and coupling nets: "batch" or true (batch norm), "layer" (LayerNorm) or "none"/false
    batch_norm: bool | Norm = True
    conditional_volume: bool = False  # per-block c-dependent scale: log p(mode | c) per input
    volume_hidden: PositiveInt = 128  # width of the conditional-volume nets

    def coupling_net(self) -> CouplingNet:
        """The coupling nets' settings (also the regression baselines' MLP shape)."""
        return CouplingNet(hidden_features=self.flow_hidden,
                           num_residual_blocks=self.flow_residual_blocks,
                           dropout=self.flow_dropout, batch_norm=self.batch_norm)


@dataclass
class EvalConfig:
    """Min-of-n for ``num_samples`` (the paper's "min" is min-of-4096), and the uncertainty
    metrics of :mod:`condflow.tasks.evaluation` from the first ``uncertainty_samples``."""

    num_samples: list[PositiveInt] = field(default_factory=lambda: [1, 5, 10, 25, 100, 4096])
    batch_size: PositiveInt = 250  # examples per evaluation batch
    uncertainty_samples: PositiveInt = 100  # samples giving the spread and the calibration
    sample_chunk: PositiveInt = 64  # samples per example drawn and scored at once
    picture_examples: NonNegativeInt = 4  # test examples in the PNG
    picture_samples: NonNegativeInt = 3  # samples drawn per picture row (mesh pictures)


class Task(Generic[M]):
    """A family of heads plugged into :func:`condflow.train.train`: builds the head for the
    configured encoder and space, its objective, and evaluates it.

    Subclasses set ``name`` (the family), ``loss_config`` (the dataclass of ``loss``),
    ``needs`` (the batch keys the family trains and evaluates on, besides the input) and
    implement the methods below. The data, encoder and space come from the config's parts
    (:meth:`split`, :meth:`encoder`, :meth:`space`).
    """

    name: ClassVar[str]
    loss_config: ClassVar[type]
    needs: ClassVar[frozenset[str]] = frozenset()
    #: ``--set``-style overrides of the family's own for ``--fast-dev-run`` (the source's
    #: and the loop's are added to them).
    fast_dev_run: ClassVar[tuple[str, ...]] = ()

    def __init__(self, cfg: Config[Any, ModelConfig, Any, EvalConfig]) -> None:
        self.cfg = cfg
        self._split: DataSplit | None = None

    # -- the parts ------------------------------------------------------------------------
    @property
    def source(self) -> DataSourceEntry:
        return DATA_SOURCES.get(self.cfg.data.source, "data.source")

    @property
    def inputs(self) -> InputSpec:
        """The data's input (kind, per-example shape), from the data settings alone."""
        return self.source.inputs(self.cfg.data)

    def split(self) -> DataSplit:
        """The data (built once per task)."""
        if self._split is None:
            self._split = build_data(self.cfg.data.source, self.cfg.data,
                                     DataRequest(self.cfg.seed, self.needs))
        return self._split

    def datasets(self) -> tuple[Dataset, Dataset]:
        """``(train, test)`` datasets yielding dicts of tensors."""
        split = self.split()
        return split.train, split.test

    def encoder(self, out_features: int | None = None) -> nn.Module:
        """The configured encoder for the data's input (``out_features``: see
        :class:`~condflow.encoders.registry.EncoderRequest`)."""
        m = self.cfg.model
        return build_encoder(m.encoder.kind, m.encoder,
                             EncoderRequest(self.inputs, out_features, m.batch_norm))

    def space(self) -> OutputSpace:
        return build_space(self.cfg.model.space.kind, self.cfg.model.space)

    def keypoint_camera(self) -> tuple[int, float]:
        """``(image px, focal px)`` of the camera that made the training keypoints (the
        source's, e.g. the crop camera of image sets); for a source without one (real
        keypoints), the synthetic lifting set's default camera."""
        if self.source.camera is not None:
            return self.source.camera(self.cfg.data)
        default = LiftingSetConfig()
        return default.image_size, default.focal_px

    # -- what a family implements ---------------------------------------------------------
    def build_model(self, train_data: Dataset | None = None) -> M:
        """The model; ``train_data`` (when given) supplies normalization statistics."""
        raise NotImplementedError

    def objective(self, model: M) -> Objective:
        """The training objective of ``model``."""
        raise NotImplementedError

    def evaluate(self, model: M, data: Dataset, device: torch.device) -> dict[str, Any]:
        """Metrics on ``data`` as a flat dict of numbers (and lists)."""
        raise NotImplementedError

    def picture(self, model: M, data: Dataset, path: str, device: torch.device) -> None:
        """Write a PNG illustrating predictions on a few examples of ``data``."""
        raise NotImplementedError

    @staticmethod
    def table(metrics: dict[str, Any], num_samples: list[int]) -> str:
        """:meth:`evaluate`'s ``metrics`` for people (``num_samples``: the min-of-n rows);
        JSON unless the family has a table of its own."""
        return json.dumps(metrics, indent=2)


_TASKS: dict[str, type[Task[Any]]] = {}

T = TypeVar("T", bound="type[Task[Any]]")


def register_task(cls: T) -> T:
    """Make ``cls`` (a :class:`Task` subclass) the family ``cls.name`` (the ``family`` of
    :func:`condflow.register_space`); returns it, so it also serves as a class decorator.
    Re-registering a name replaces it."""
    if not (isinstance(cls, type) and issubclass(cls, Task)):
        raise TypeError(f"register_task: expected a Task subclass, got {cls!r}")
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not name:
        raise ValueError(f"register_task: {cls.__name__}.name must be a non-empty string, "
                         f"got {name!r}")
    _TASKS[name] = cls
    return cls


def get_task(family: str) -> type[Task[Any]]:
    """The :class:`Task` class of ``family``."""
    if family not in _TASKS:
        raise ValueError(f"family: no task for {family!r}; expected one of {sorted(_TASKS)}")
    return _TASKS[family]


def task_for(cfg: Config) -> Task[Any]:
    """The task of ``cfg``: its space's family, on its parts."""
    family = SPACES.get(cfg.model.space.kind, "model.space.kind").family
    return get_task(family)(cfg)


def describe(cfg: Config) -> str:
    """``cfg``'s parts in words, e.g. ``"mlp_lifter → skeleton (flow) on synthetic_lifting"``."""
    m = cfg.model
    return f"{m.encoder.kind} → {m.space.kind} ({m.kind}) on {cfg.data.source}"


# -- loading ---------------------------------------------------------------------------------


def _part(value: Any, where: str) -> tuple[str, dict[str, Any]]:
    """``(name, settings)`` of a part given as ``name`` or ``{kind: name, ...}``."""
    if isinstance(value, str):
        return value, {}
    if not isinstance(value, dict):
        raise ValueError(f"{where}: expected a name or a mapping with 'kind', got {value!r}")
    rest = dict(value)
    if "kind" not in rest:
        raise ValueError(f"{where}.kind: missing (which {where.split('.')[-1]} to use)")
    return rest.pop("kind"), rest


def load_config(source: str | Path | dict[str, Any], overrides: Sequence[str] = ()) -> Config:
    """Read a YAML file, an installed configuration by name (:mod:`condflow.configs`) or a
    dict, apply ``--set`` overrides, and type every section by the parts it names.

    Raises ``ValueError`` naming the key for unknown parts and keys, wrong values, and
    pairs of parts that cannot work together.
    """
    raw = copy.deepcopy(source) if isinstance(source, dict) else read_config(source)
    raw = _from_legacy(apply_overrides(raw, list(overrides)))
    data = raw.pop("data", None)
    model = raw.pop("model", None)
    if not isinstance(data, dict) or "source" not in data:
        raise ValueError("data.source: missing (which data source to use: "
                         f"{', '.join(DATA_SOURCES.names())})")
    if not isinstance(model, dict) or "encoder" not in model or "space" not in model:
        raise ValueError("model: needs 'encoder' and 'space' (e.g. encoder: {kind: mlp_lifter}, "
                         "space: {kind: skeleton})")
    src_name = data["source"]
    src = DATA_SOURCES.get(src_name, "data.source")
    data_cfg: Any = from_dict(with_kind(src.settings, "source", src_name), data, "data")
    parts: dict[str, Any] = {}
    for key, registry in (("encoder", ENCODERS), ("space", SPACES)):
        name, settings = _part(model[key], f"model.{key}")
        entry = registry.get(name, f"model.{key}.kind")
        parts[key] = from_dict(with_kind(entry.settings, "kind", name),
                               {**settings, "kind": name}, f"model.{key}")
    model_cfg = from_dict(ModelConfig, {**model, **parts}, "model")
    family = get_task(SPACES.get(parts["space"].kind, "model.space.kind").family)
    reads = ENCODERS.get(parts["encoder"].kind, "model.encoder.kind").reads
    inputs = src.inputs(data_cfg)
    if reads != inputs.kind:
        raise ValueError(f"model.encoder.kind: {parts['encoder'].kind!r} reads {reads}, but "
                         f"data.source {src_name!r} gives {inputs.kind} {list(inputs.shape)}")
    missing = sorted(family.needs - src.provides)
    if missing:
        raise ValueError(f"data.source: {src_name!r} does not give {missing}, which "
                         f"model.space {parts['space'].kind!r} is trained on "
                         f"(it gives {sorted(src.provides)})")
    loss_cfg: Any = from_dict(family.loss_config, raw.pop("loss", None), "loss")
    eval_cfg = from_dict(EvalConfig, raw.pop("eval", None), "eval")
    cfg: Config = from_dict(Config, raw)
    cfg.data, cfg.model, cfg.loss, cfg.eval = data_cfg, model_cfg, loss_cfg, eval_cfg
    return cfg


# -- configs written before the parts: task: lifting | mesh ----------------------------------

#: Flat model keys of the old configs → (part, key in the part's settings).
_LEGACY_MODEL_KEYS = {
    "lifting": {"use_confidence": ("encoder", "use_confidence"),
                "lifter_hidden": ("encoder", "hidden"), "lifter_blocks": ("encoder", "blocks"),
                "lifter_dropout": ("encoder", "dropout")},
    "mesh": {"context_features": ("encoder", "context_features"),
             "cnn_width": ("encoder", "width"), "pretrained": ("encoder", "pretrained"),
             "point_hidden": ("space", "point_hidden"),
             "flow_convention": ("space", "flow_convention")},
}
_LEGACY_SOURCES = {"lifting": "synthetic_lifting", "mesh": "synthetic_images"}


def _fields(cls: type) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


#: The old mesh encoder keys and their defaults (written into every old checkpoint).
_OLD_ENCODER_KEYS = {"context_features": 256, "width": 32, "pretrained": None}


def _old_default(task: str, key: str, value: Any) -> bool:
    """Whether ``data.key: value`` is the default of a key of the old ``task``'s other
    data source: written into every old checkpoint, ignored by the old code."""
    sources = {"lifting": ("synthetic_lifting", "h36m"),
               "mesh": ("synthetic_images", "spin_npz")}[task]
    for name in sources:
        for f in dataclasses.fields(DATA_SOURCES.get(name, "data.source").settings):
            if f.name == key:
                default = (f.default_factory() if f.default_factory is not dataclasses.MISSING
                           else f.default)
                if dataclasses.is_dataclass(default) and not isinstance(default, type):
                    default = dataclasses.asdict(default)
                return bool(json.dumps(default) == json.dumps(value))  # tuples as lists
    return False


def _from_legacy(raw: dict[str, Any]) -> dict[str, Any]:
    """An old config (``task: lifting`` or ``task: mesh``, flat model keys) as parts; others
    unchanged."""
    if "task" not in raw:
        return raw
    task = raw.pop("task")
    if not isinstance(task, str) or task not in _LEGACY_MODEL_KEYS:
        raise ValueError(f"task: {task!r} is not a configuration any more; a config names "
                         "data.source, model.encoder and model.space (`condflow configs` lists "
                         "the shipped ones)")
    warnings.warn(f"task: {task} is read as its parts (data.source, model.encoder, model.space);"
                  " write them instead", DeprecationWarning, stacklevel=3)
    data = dict(raw.get("data") or {})
    model = dict(raw.get("model") or {})
    source = data.get("source", "synthetic")
    data["source"] = _LEGACY_SOURCES[task] if source == "synthetic" else source
    known = _fields(DATA_SOURCES.get(data["source"], "data.source").settings) | {"source"}
    data = {k: v for k, v in data.items() if k in known or not _old_default(task, k, v)}
    # parts already written as such (an old config merged into a new one) are kept
    encoder = model.pop("encoder", "mlp_lifter" if task == "lifting" else "small_cnn")
    encoder = dict(encoder) if isinstance(encoder, dict) else {"kind": encoder}
    space = model.pop("space", None)
    if task == "lifting":
        space = dict(space or {"kind": "skeleton", "layout": "h36m_17", "drop_root": True})
        model.setdefault("flow_hidden", 256)
    else:
        space = dict(space or {"kind": "smpl_6d"})
        focal = model.pop("focal_length", None)
        if focal is not None and focal != 5000.0:  # px at 224 px crops, scaled to the crop
            space["focal_length"] = focal * data.get("res", 64) / 224.0
        raw.setdefault("eval", {}).setdefault("batch_size", 50)
    parts = {"encoder": encoder, "space": space}
    for old, (part, new) in _LEGACY_MODEL_KEYS[task].items():
        if old not in model:
            continue
        value = model.pop(old)
        if parts[part].get(new, value) != value:
            raise ValueError(f"model.{old}: now model.{part}.{new}, which is also given, as "
                             f"{parts[part][new]!r} (here {value!r}); give only one")
        parts[part][new] = value
    entry = ENCODERS.get(encoder["kind"], "model.encoder.kind")  # the old code ignored
    encoder = {k: v for k, v in encoder.items()  # other encoders' keys at their defaults
               if k == "kind" or k in _fields(entry.settings) or v != _OLD_ENCODER_KEYS.get(k)}
    model.update(encoder=encoder, space=space)
    raw["data"], raw["model"] = data, model
    return raw


def to_device(batch: dict[str, Tensor], device: torch.device) -> dict[str, Tensor]:
    return {
        k: v.to(device, non_blocking=True) if isinstance(v, Tensor) else v for k, v in batch.items()
    }
