"""One-file models: weights and the config that built them, loadable with nothing else.

A model file is a ``torch.save``'d dict of built-in types and tensors (so it loads with
``torch.load(weights_only=True)``)::

    {"format": "condflow-model", "format_version": 1, "condflow_version": "0.1.0",
     "config": {...},          # condflow.config.config_to_dict(cfg): task, model, data, ...
     "model": {...},           # the state_dict, on the CPU
     "body_model": {...},      # models that pose a body only: which one (see below)
     "checksum": "..."}        # SHA-256 of model + config, verified at load

Everything a model needs beyond its config — normalization statistics of the training
targets, ActNorm initialization, batch-norm statistics — is a buffer of its ``state_dict``;
the body-model choice is part of the config. Loading rebuilds the model from the config
through its task (``condflow.tasks``) and loads the weights, so the result is the exact
model that was saved. A training checkpoint (``<output_dir>/checkpoints/last.pt``) holds the
same two entries and loads the same way. Loading refuses a file whose checksum does not
match or that holds NaN/Inf weights (:func:`condflow.checkpoint.read_weights`), and keeps
the dtype of the saved parameters (a float64 model loads as float64).

The body model's arrays stay out of the file (SMPL is licensed separately): its file name,
vertex count and SHA-256 are recorded instead, and loading fails if the config resolves to
another body model on the loading machine (e.g. ``$CONDFLOW_SMPL_PATH`` set there but not
where the model was saved).

Models are plain ``nn.Module`` s built by a task and do not know their config, hence the
function pair ``save(model, path, cfg)`` / ``load(path)`` rather than a method.

Any other flow, bijector or head (one built by hand, e.g. a ``ConditionalGlow``) is saved
without a config, ``save(flow, path)``: its class remembers the constructor arguments it
was built with (``condflow._recipe``), and the file holds that *recipe* in place of the
config, ``{"format": ..., "recipe": {"class": "condflow.flow:ConditionalGlow", "args":
{...}}, "model": {...}}``. ``load`` calls the constructors again and loads the weights.
Only classes deriving from ``condflow._recipe.Recorded`` can be rebuilt (condflow's
bijectors, flows, heads, small encoders and body model, and a user's own subclasses once
defined); nothing named in the file is imported.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

# bijectors, encoders, flow, heads, spaces: the modules defining the classes a recipe rebuilds
from condflow import _recipe, bijectors, encoders, flow, heads, spaces  # noqa: F401
from condflow._io import file_digest
from condflow._version import __version__
from condflow.body.model import BodyModel
from condflow.checkpoint import read_weights, save_checkpoint
from condflow.config import Config, changed_keys, config_to_dict
from condflow.heads.base import Head, as_head
from condflow.tasks import load_config, task_for

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "body_model_fingerprint",
    "build_model",
    "check_state_dict",
    "load",
    "load_head",
    "load_with_config",
    "save",
]

FORMAT = "condflow-model"
#: Bumped whenever the layout of a model file changes incompatibly.
FORMAT_VERSION = 1


def _as_config(cfg: Config | dict[str, Any], where: str) -> Config:
    if not isinstance(cfg, dict):
        return cfg
    try:
        return load_config(cfg) if isinstance(cfg, dict) else cfg
    except ValueError as err:
        raise ValueError(f"{where}: {err}") from None


def build_model(cfg: Config) -> nn.Module:
    """The untrained model of ``cfg`` (its task's ``build_model`` without data), in eval mode.

    A ``model.encoder.pretrained`` initialization file is not read: the weights come from the
    file being loaded, and the training machine's path need not exist here.
    """
    encoder = cfg.model.encoder
    if getattr(encoder, "pretrained", None):
        model = dataclasses.replace(cfg.model, encoder=dataclasses.replace(encoder,
                                                                           pretrained=None))
        cfg = dataclasses.replace(cfg, model=model)
    return task_for(cfg).build_model().eval()


def body_model_fingerprint(model: nn.Module) -> dict[str, Any] | None:
    """Which body model a model poses (it is not in the ``state_dict``): file name, vertex
    count and the SHA-256 of the model file; ``None`` for models without one."""
    body = next((m for m in model.modules() if isinstance(m, BodyModel)), None)
    if body is None:
        return None
    return {
        "file": Path(body.model_file).name,
        "synthetic": bool(body.is_synthetic),
        "num_vertices": int(body.num_vertices),
        "sha256": file_digest(body.model_file),
    }


def _check_body_model(saved: dict[str, Any] | None, model: nn.Module, where: str) -> None:
    if saved is None:
        return
    here = body_model_fingerprint(model)
    if here is None or here["sha256"] != saved["sha256"]:
        def describe(b: dict[str, Any] | None) -> str:
            if b is None:
                return "none"
            kind = "synthetic" if b["synthetic"] else "SMPL"
            return f"{kind} {b['file']} ({b['num_vertices']} vertices, sha256 {b['sha256'][:12]})"

        raise ValueError(
            f"{where}: the model was saved with the body model {describe(saved)}, but its "
            f"config resolves here to {describe(here)}; point data.body_model or "
            "$CONDFLOW_SMPL_PATH at the same model file (unset both for the synthetic model)"
        )


def check_state_dict(
    model: nn.Module,
    state: dict[str, Any],
    where: str,
    written_with: dict[str, Any] | None = None,
    cfg: Config | None = None,
) -> None:
    """Raise ``ValueError`` naming every missing, unexpected or wrongly shaped entry of
    ``state`` with respect to ``model.state_dict()``; with the config the weights were
    ``written_with`` (a dict) and the ``cfg`` that built ``model``, name the ``model.*``
    keys that differ instead."""
    expected = model.state_dict()
    problems = []
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    if missing:
        problems.append(f"missing keys {missing[:5]}{' ...' if len(missing) > 5 else ''}")
    if unexpected:
        more = " ..." if len(unexpected) > 5 else ""
        problems.append(f"unexpected keys {unexpected[:5]}{more}")
    for key, value in state.items():
        if key not in expected:
            continue
        if not isinstance(value, Tensor):
            problems.append(f"{key}: expected a tensor, got {type(value).__name__}")
        elif value.shape != expected[key].shape:
            problems.append(
                f"{key}: expected shape {list(expected[key].shape)} (built from the config), "
                f"got {list(value.shape)}"
            )
    if not problems:
        return
    if isinstance(written_with, dict) and cfg is not None:
        saved = config_to_dict(load_config(written_with))  # an old config as its parts
        diff = [f"{k}={a!r} (here {b!r})" for k, a, b in
                changed_keys(saved["model"], config_to_dict(cfg)["model"], "model")]
        if diff:
            raise ValueError(f"{where}: written with {', '.join(diff)}; the weights do "
                             "not fit the model this config builds")
    raise ValueError(
        f"{where}: the weights do not fit the model built from the config: "
        + "; ".join(problems)
    )


def save(model: nn.Module, path: str | Path, cfg: Config | dict[str, Any] | None = None) -> Path:
    """Write ``model`` and the config that built it to one file at ``path``.

    ``cfg`` must build a model with exactly ``model``'s state_dict keys and shapes (checked
    now, so that a wrong config fails here rather than at load time). Without ``cfg`` the
    model's constructor recipe is written instead (any flow, bijector or head; see the
    module docstring). The write is atomic. Returns the path.
    """
    if not isinstance(model, nn.Module):
        raise ValueError(f"model: expected a torch.nn.Module, got {type(model).__name__}")
    if cfg is None:
        return _save_recipe(model, path)
    cfg = _as_config(cfg, "cfg")
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    check_state_dict(build_model(cfg), state, "save")
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "condflow_version": __version__,
        "config": config_to_dict(cfg),
        "model": state,
    }
    body = body_model_fingerprint(model)
    if body is not None:
        payload["body_model"] = body
    return save_checkpoint(payload, path)


def _save_recipe(model: nn.Module, path: str | Path) -> Path:
    """``save`` without a config: the model's constructor recipe in its place."""
    spec = _recipe.recipe(model)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    check_state_dict(_build_recipe(spec, "save"), state, "save")
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "condflow_version": __version__,
        "recipe": spec,
        "model": state,
    }
    body = body_model_fingerprint(model)
    if body is not None:
        payload["body_model"] = body
    return save_checkpoint(payload, path)


def _build_recipe(spec: Any, where: str) -> nn.Module:
    module = _recipe.build(spec, f"{where}: recipe")
    if not isinstance(module, nn.Module):
        raise ValueError(f"{where}: recipe: builds a {type(module).__name__}, not a module")
    return module.eval()


def _load_recipe(payload: dict[str, Any], path: Path) -> nn.Module:
    try:
        model = _build_recipe(payload["recipe"], str(path))
    except FileNotFoundError as err:  # e.g. the body model file
        raise FileNotFoundError(f"{path}: rebuilding the model: {err}") from None
    _check_body_model(payload.get("body_model"), model, str(path))
    check_state_dict(model, payload["model"], str(path))
    _match_dtype(model, payload["model"])
    model.load_state_dict(payload["model"])
    return model


def _read(path: Path, map_location: str | torch.device) -> dict[str, Any]:
    payload = read_weights(path, map_location, "model")
    if "format" in payload:  # a model file (a training checkpoint has no format entry)
        if payload["format"] != FORMAT:
            raise ValueError(f"{path}: format {payload['format']!r}, expected {FORMAT!r}")
        version = payload.get("format_version")
        if version != FORMAT_VERSION:
            by = payload.get("condflow_version", "an unknown version")
            if isinstance(version, int) and version > FORMAT_VERSION:
                advice = "upgrade condflow to read it"
            else:
                advice = f"load it with condflow {by} and save it again"
            raise ValueError(
                f"{path}: model file format version {version!r} (written by condflow {by}), "
                f"but condflow {__version__} reads format version {FORMAT_VERSION}; "
                f"{advice}"
            )
    if not isinstance(payload.get("config", {}), dict):
        raise ValueError(f"{path}: config: expected a mapping, got {type(payload['config'])}")
    if not isinstance(payload["model"], dict):
        raise ValueError(f"{path}: model: expected a state_dict, got {type(payload['model'])}")
    return payload


def _match_dtype(model: nn.Module, state: dict[str, Any]) -> None:
    """Give ``model`` the floating dtype its saved parameters have (a float64 model loads
    as float64, not silently rounded to the float32 the config builds)."""
    dtypes = {state[k].dtype for k, _ in model.named_parameters() if state[k].is_floating_point()}
    if len(dtypes) == 1:
        (dtype,) = dtypes
        if any(p.dtype != dtype for p in model.parameters()):
            model.to(dtype)


def load_with_config(
    path: str | Path, device: str | torch.device = "cpu", cfg: Config | None = None
) -> tuple[Config, nn.Module]:
    """``(cfg, model)`` from a model file or training checkpoint; the model is in eval mode
    on ``device``. The model is built from the file's own config, or from ``cfg`` when
    given (e.g. ``condflow eval CKPT --set ...``); the one way condflow loads a model.

    Raises ``FileNotFoundError`` for a missing file and ``ValueError`` naming the problem for
    an unreadable file, another format version, a config that does not parse (unknown key,
    unknown task) or weights that do not fit the model the config builds (key, expected vs
    got shape).
    """
    path = Path(path)
    payload = _read(path, "cpu")
    if "config" not in payload:
        raise ValueError(
            f"{path}: a module saved without a config (save(module, path)); it has none to "
            "return: load it with condflow.load"
        )
    cfg = cfg or _as_config(payload["config"], f"{path}: config")
    try:
        model = build_model(cfg)
    except FileNotFoundError as err:  # e.g. the body model file of the config
        raise FileNotFoundError(f"{path}: rebuilding the model: {err}") from None
    _check_body_model(payload.get("body_model"), model, str(path))
    check_state_dict(model, payload["model"], str(path), payload["config"], cfg)
    _match_dtype(model, payload["model"])
    model.load_state_dict(payload["model"])
    return cfg, model.to(device).eval()


def load_head(path: str | Path, device: str | torch.device = "cpu") -> tuple[Config, Head]:
    """:func:`load_with_config` for the commands that need a head
    (:class:`~condflow.heads.base.Head`, what the built-in tasks build); ``ValueError``
    naming the file for another module."""
    cfg, model = load_with_config(path, device)
    return cfg, as_head(model, f"{path}: its config builds a")


def load(path: str | Path, device: str | torch.device = "cpu") -> nn.Module:
    """The model saved at ``path`` (by :func:`save`, or a training checkpoint), in eval
    mode on ``device``. See :func:`load_with_config` for the errors; a file saved without
    a config is rebuilt from its recipe (``ValueError`` naming an unknown class)."""
    payload = _read(Path(path), "cpu")
    if "config" not in payload:
        return _load_recipe(payload, Path(path)).to(device).eval()
    return load_with_config(path, device)[1]
