"""Export a trained model: the mode predictor and the sampler, as an ``ExportedProgram``
(``torch.export``, ``.pt2``), ONNX or, as a fallback, TorchScript.

Two graphs can be exported from a model:

- the **predictor** ``inputs → outputs of the mode f(0; c)`` (encoder → flow at z = 0 →
  output space); for a regression model, its direct prediction;
- the **sampler** with a fixed number of samples n: ``(inputs, noise [B, n, d]) → mode
  outputs, sample outputs ([B, n, ...]) and log p(sample | c) [B, n]``. The standard-normal
  noise is an input, so that the exported graph is deterministic and its results can be
  compared with the eager model's for the same noise; draw it as ``randn(B, n, d)``.

Formats (:data:`FORMATS`), the first two being PyTorch's current export paths:

- ``"pt2"``: ``torch.export.export`` with a dynamic batch dimension, saved by
  ``torch.export.save``; load with ``torch.export.load(path).module()``;
- ``"onnx"``: the ``torch.export``-based ONNX exporter (``torch.onnx.export(...,
  dynamo=True)``, opset ≥ 18; needs the ``onnx`` and ``onnxscript`` packages);
  ``dynamo=False`` selects the older TorchScript-based exporter (opset ≥ 17);
- ``"torchscript"``: ``torch.jit.trace``, kept as a fallback (PyTorch deprecates
  TorchScript); load with ``torch.jit.load``.

Every graph returns a tuple of tensors, named in order by the metadata's ``"outputs"``
(ONNX outputs carry these names); the batch axis is dynamic. The metadata (a JSON dict:
the extra file ``condflow.json`` of ``.pt2`` and TorchScript files, the ``metadata_props``
key ``condflow`` of ONNX files; :func:`read_metadata` reads either) also records the
normalization the inputs must have (``"input_normalization"``) and each output's unit
(``"units"``).

Each export is verified: the saved file is loaded back (ONNX: run in onnxruntime when it is
installed) and run on a batch of another size than the one traced, and every output must
match the eager model within ``max|exported − eager| ≤ rtol · max(1, max|eager|)``
(``rtol = 1e-4``), else ``RuntimeError``.

Graphs are captured in eval mode on the CPU in float32, with values that the eager model
caches (e.g. the LU linear maps' W) frozen as constants. A mesh head's graphs pose the body,
so they hold the body model's arrays (template, blend shapes, regressors) as constants: an
export made with a licensed SMPL model is subject to SMPL's licence, unlike the
``condflow.save`` file, which holds no body-model data.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import warnings
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from condflow._checks import check_int, check_positive_int, check_tensor, set_finite_checks
from condflow._version import __version__
from condflow.heads.base import Head, as_head
from condflow.heads.prohmr import MESH_FIELDS
from condflow.saving import body_model_fingerprint, load_with_config
from condflow.tasks import describe, task_for

__all__ = [
    "FORMATS",
    "INSTALL_ONNX",
    "MESH_FIELDS",
    "Predictor",
    "Sampler",
    "example_inputs",
    "export",
    "export_file",
    "export_onnx",
    "export_program",
    "export_torchscript",
    "exportable",
    "format_for_path",
    "latent_features",
    "read_metadata",
]

FORMATS = ("pt2", "onnx", "torchscript")
#: Default opset of ONNX exports (the dynamo-based exporter needs 18 or more).
ONNX_OPSET = 18
#: What to install for ONNX export, in the words of an error message.
INSTALL_ONNX = (
    "pip install onnx onnxscript (and onnxruntime, with which the export is checked)"
)
_SUFFIXES = {".pt2": "pt2", ".onnx": "onnx", ".pt": "torchscript", ".ts": "torchscript"}
RTOL = 1e-4
_METADATA_FILE = "condflow.json"



def _units(model: Head, names: tuple[str, ...]) -> dict[str, str]:
    return {name: model.output_units[name.removeprefix("sample_")] for name in names}


def _check_head(model: object) -> Head:
    return as_head(model, "model: cannot export a")


def format_for_path(path: str | Path) -> str:
    """The format a file name suggests: ``.pt2`` → ``"pt2"``, ``.onnx`` → ``"onnx"``,
    ``.pt``/``.ts`` → ``"torchscript"``; ``ValueError`` for another suffix."""
    suffix = Path(path).suffix
    if suffix not in _SUFFIXES:
        raise ValueError(
            f"format: cannot tell the format from the suffix of {str(path)!r}; name the file "
            f"*.pt2, *.onnx or *.pt, or give one of {FORMATS}"
        )
    return _SUFFIXES[suffix]


class Predictor(nn.Module):
    """``inputs → tuple of mode outputs`` (named by ``output_names``, the head's
    ``mode_outputs``): the mode f(0; c) of a flow, the direct prediction of a regression
    head. Skeleton heads: 2D keypoints ``[B, 16, 3] → (joints [B, 17, 3],)`` (mm). Mesh
    heads: images ``[B, 3, R, R] →`` the :data:`~condflow.heads.prohmr.MESH_FIELDS` of the
    mode, e.g. ``vertices [B, V, 3]``.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = _check_head(model)
        self.output_names: tuple[str, ...] = self.model.mode_outputs

    def forward(self, inputs: Tensor) -> tuple[Tensor, ...]:
        mode = self.model.export_prediction(self.model.context(inputs))
        return tuple(getattr(mode, f)[:, 0] for f in self.output_names)


class Sampler(nn.Module):
    """``(inputs, noise [B, n, d]) → (*mode outputs, *sample outputs, log_prob [B, n])``.

    ``noise[:, i]`` is the z of sample ``i`` (``noise = 0`` gives the mode); ``log_prob`` is
    log p(sample | c). The mode outputs are the head's ``mode_outputs``, the sample outputs
    its ``sample_outputs`` prefixed ``sample_``, ``[B, n, ...]``. Skeleton heads:
    ``(joints [B, 17, 3], sample_joints [B, n, 17, 3], log_prob)``. Mesh heads: the
    :data:`~condflow.heads.prohmr.MESH_FIELDS` of the mode, then ``sample_vertices``,
    ``sample_eval_joints``, ``sample_keypoints_2d``, ``sample_rotmat`` (shape and camera
    are the same for every sample), then ``log_prob``.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = _check_head(model)
        if not self.model.probabilistic:
            raise ValueError("model: a regression model is deterministic and has no sampler")
        samples = tuple(f"sample_{f}" for f in self.model.sample_outputs)
        self.output_names: tuple[str, ...] = (*self.model.mode_outputs, *samples, "log_prob")

    def forward(self, inputs: Tensor, noise: Tensor) -> tuple[Tensor, ...]:
        c = self.model.context(inputs)
        # The mode is f(0; c): one pass with z = 0 prepended (one body model in the graph).
        z = torch.cat([torch.zeros_like(noise[:, :1]), noise], dim=1)
        both = self.model.export_prediction(c, z)
        return (
            *(getattr(both, f)[:, 0] for f in self.model.mode_outputs),
            *(getattr(both, f)[:, 1:] for f in self.model.sample_outputs),
            both.outputs()["log_prob"][:, 1:],
        )


def latent_features(model: nn.Module) -> int:
    """d, the size of the flow's z (the last axis of the sampler's noise)."""
    head = _check_head(model)
    if not head.probabilistic:
        raise ValueError(f"model: a {type(model).__name__} has no flow to sample from")
    return head.latent_features


def exportable(model: nn.Module, num_samples: int | None = None) -> Predictor | Sampler:
    """The module that is traced: the predictor, or with ``num_samples`` the sampler."""
    return Predictor(model) if num_samples is None else Sampler(model)


def example_inputs(model: nn.Module, batch_size: int = 2, seed: int = 0) -> Tensor:
    """Plausible random inputs of ``model``, ``[batch_size, ...]`` (the head's
    ``example_inputs``: e.g. normalized 2D keypoints with confidences for a lifter,
    standardized images ``[B, 3, R, R]`` for an image head)."""
    check_positive_int("batch_size", batch_size)
    gen = torch.Generator().manual_seed(seed)
    return _check_head(model).example_inputs(batch_size, gen)


def _noise(model: nn.Module, batch: int, num_samples: int, seed: int) -> Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(batch, num_samples, latent_features(model), generator=gen)


@contextmanager
def _tracing() -> Iterator[None]:
    """No gradients, no finiteness checks (they would be traced as constants) and no
    warnings about the shape checks that are baked into the trace."""
    previous = set_finite_checks(False)
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", UserWarning)
            yield
    finally:
        set_finite_checks(previous)


def _prepare(
    model: nn.Module, example: Tensor, num_samples: int | None
) -> tuple[Predictor | Sampler, tuple[Tensor, ...], tuple[Tensor, ...]]:
    if not isinstance(model, nn.Module):
        raise ValueError(f"model: expected a torch.nn.Module, got {type(model).__name__}")
    check_tensor("example", example)
    if num_samples is not None:
        check_positive_int("num_samples", num_samples)
    module = exportable(copy.deepcopy(model).cpu().float().eval(), num_samples).eval()
    args: tuple[Tensor, ...] = (example.detach().cpu().float(),)
    if num_samples is not None:
        args += (_noise(model, len(example), num_samples, seed=0),)
    with _tracing():
        # The eager run also fills caches (e.g. LULinear's W), which become graph constants.
        outputs = module(*args)
    return module, args, outputs


def _check_close(name: str, got: Tensor, expected: Tensor, where: str) -> None:
    if got.shape != expected.shape:
        raise RuntimeError(
            f"{where}: output {name} has shape {list(got.shape)}, eager {list(expected.shape)}"
        )
    err = (got - expected).abs().max().item() if got.numel() else 0.0
    bound = RTOL * max(1.0, expected.abs().max().item() if got.numel() else 0.0)
    if not err <= bound:
        raise RuntimeError(f"{where}: output {name} differs from eager by {err:.3g} > {bound:.3g}")


def _verification_args(module: Predictor | Sampler, example: Tensor, num_samples: int | None
                        ) -> tuple:
    # One more row than traced, so that a batch size baked into the graph is caught.
    rows = torch.cat([example, example.flip(0)[:1]], 0).cpu().float()
    args: tuple[Tensor, ...] = (rows,)
    if num_samples is not None:
        args += (_noise(module.model, len(rows), num_samples, seed=1),)
    return args


def _metadata(
    module: Predictor | Sampler,
    args: tuple[Tensor, ...],
    outputs: tuple[Tensor, ...],
    extra: dict[str, Any],
) -> dict[str, Any]:
    names = ("inputs", "noise")[: len(args)]
    body = body_model_fingerprint(module.model)
    return {
        "format": "condflow-export",
        "condflow_version": __version__,
        "graph": "sampler" if isinstance(module, Sampler) else "predictor",
        "inputs": {n: ["batch", *a.shape[1:]] for n, a in zip(names, args, strict=True)},
        "outputs": {
            n: ["batch", *o.shape[1:]] for n, o in zip(module.output_names, outputs, strict=True)
        },
        "num_samples": args[1].shape[1] if len(args) > 1 else None,
        "input_normalization": module.model.input_normalization(),
        "units": _units(module.model, module.output_names),
        **({"body_model": body} if body is not None else {}),
        **extra,
    }


def export_torchscript(
    model: nn.Module,
    path: str | Path,
    example: Tensor,
    num_samples: int | None = None,
    metadata: dict[str, Any] | None = None,
) -> Path:
    """Trace the predictor (or, with ``num_samples``, the sampler) of ``model`` on
    ``example`` inputs ``[B, ...]`` and save it to ``path``; verified as described above.
    Load with ``torch.jit.load(path)``. The fallback format: prefer :func:`export_program`."""
    module, args, outputs = _prepare(model, example, num_samples)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = _metadata(module, args, outputs, metadata or {})
    check = _verification_args(module, example, num_samples)
    with _tracing():
        traced = torch.jit.trace(module, args, check_trace=False)
        torch.jit.save(traced, str(path), _extra_files={_METADATA_FILE: json.dumps(meta)})
        loaded = torch.jit.load(str(path))
        expected, got = module(*check), loaded(*check)
    for name, g, e in zip(module.output_names, got, expected, strict=True):
        _check_close(name, g, e, f"TorchScript export {path}")
    return path


def _dynamic_shapes(args: tuple[Tensor, ...]) -> tuple[dict[int, Any], ...]:
    batch = torch.export.Dim("batch")
    return tuple({0: batch} for _ in args)


def export_program(
    model: nn.Module,
    path: str | Path,
    example: Tensor,
    num_samples: int | None = None,
    metadata: dict[str, Any] | None = None,
) -> Path:
    """Capture the predictor (or, with ``num_samples``, the sampler) of ``model`` with
    ``torch.export`` on ``example`` inputs ``[B, ...]``, the batch axis dynamic, and save the
    ``ExportedProgram`` to ``path`` (``.pt2``); verified as described above. Load with
    ``torch.export.load(path).module()``."""
    module, args, outputs = _prepare(model, example, num_samples)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = _metadata(module, args, outputs, metadata or {})
    check = _verification_args(module, example, num_samples)
    with _tracing(), module.model.capturable():
        program = torch.export.export(module, args, dynamic_shapes=_dynamic_shapes(args))
        torch.export.save(program, path, extra_files={_METADATA_FILE: json.dumps(meta)})
    with _tracing():  # the reference is the unmodified eager model
        loaded = torch.export.load(path).module()
        expected, got = module(*check), loaded(*check)
    for name, g, e in zip(module.output_names, got, expected, strict=True):
        _check_close(name, g, e, f"ExportedProgram {path}")
    return path


def _require_onnx(dynamo: bool) -> Any:
    try:
        import onnx

        if dynamo:
            import onnxscript  # noqa: F401 - the dynamo-based exporter's ONNX builder
    except ImportError as err:
        raise ValueError(
            f"format: ONNX export needs the {err.name} package: {INSTALL_ONNX}"
        ) from None
    return onnx


def export_onnx(
    model: nn.Module,
    path: str | Path,
    example: Tensor,
    num_samples: int | None = None,
    metadata: dict[str, Any] | None = None,
    opset: int = ONNX_OPSET,
    dynamo: bool = True,
) -> Path:
    """Export the predictor (or, with ``num_samples``, the sampler) of ``model`` to ONNX at
    ``path`` with a dynamic batch axis. Inputs are named ``inputs`` (and ``noise``), outputs
    as in the metadata. ``dynamo=True`` uses the ``torch.export``-based exporter (opset ≥
    18), ``False`` the TorchScript-based one (opset ≥ 17). Checked with ``onnx.checker``, and
    run in onnxruntime against the eager model when onnxruntime is installed."""
    onnx = _require_onnx(dynamo)
    least = 18 if dynamo else 17
    check_int("opset", opset, least)
    module, args, outputs = _prepare(model, example, num_samples)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    input_names = ["inputs", "noise"][: len(args)]
    names = input_names + list(module.output_names)
    quiet = contextlib.redirect_stdout(io.StringIO())  # the dynamo exporter's progress lines
    with _tracing(), quiet, module.model.capturable() if dynamo else contextlib.nullcontext():
        if dynamo:
            torch.onnx.export(
                module,
                args,
                str(path),
                dynamo=True,
                opset_version=opset,
                input_names=input_names,
                output_names=list(module.output_names),
                dynamic_shapes=_dynamic_shapes(args),
                external_data=False,
                verbose=False,
            )
        else:
            torch.onnx.export(
                module,
                args,
                str(path),
                dynamo=False,
                opset_version=opset,
                input_names=input_names,
                output_names=list(module.output_names),
                dynamic_axes={n: {0: "batch"} for n in names},
                do_constant_folding=True,
            )
    exporter = "dynamo" if dynamo else "torchscript"
    meta = _metadata(
        module, args, outputs, {**(metadata or {}), "opset": opset, "onnx_exporter": exporter}
    )
    proto = onnx.load(str(path))
    entry = proto.metadata_props.add()
    entry.key, entry.value = "condflow", json.dumps(meta)
    onnx.checker.check_model(proto)
    onnx.save(proto, str(path))
    try:
        import onnxruntime
    except ImportError:
        return path
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    check = _verification_args(module, example, num_samples)
    got = session.run(None, {n: a.numpy() for n, a in zip(input_names, check, strict=True)})
    with _tracing():
        expected = module(*check)
    for name, g, e in zip(module.output_names, got, expected, strict=True):
        _check_close(name, torch.from_numpy(g), e, f"ONNX export {path}")
    return path


def export(
    model: nn.Module,
    path: str | Path,
    format: str | None = None,
    example: Tensor | None = None,
    num_samples: int | None = None,
    metadata: dict[str, Any] | None = None,
) -> Path:
    """:func:`export_program`, :func:`export_onnx` or :func:`export_torchscript` by
    ``format`` (one of :data:`FORMATS`; ``None``: from the suffix of ``path``, see
    :func:`format_for_path`). ``example`` defaults to :func:`example_inputs`."""
    format = format_for_path(path) if format is None else format
    if format not in FORMATS:
        raise ValueError(f"format: expected one of {FORMATS}, got {format!r}")
    example = example_inputs(model) if example is None else example
    if format == "pt2":
        return export_program(model, path, example, num_samples, metadata)
    if format == "onnx":
        return export_onnx(model, path, example, num_samples, metadata)
    return export_torchscript(model, path, example, num_samples, metadata)


def export_file(
    model_path: str | Path,
    out: str | Path,
    format: str | None = None,
    num_samples: int | None = None,
) -> Path:
    """Export the model file (or training checkpoint) ``model_path`` to ``out``; ``format``
    as in :func:`export`. The metadata also names the task and whether the training inputs
    were root-centred (lifting: the hip moved to (0, 0), as ``condflow predict`` does)."""
    format = format_for_path(out) if format is None else format
    if format not in FORMATS:
        raise ValueError(f"format: expected one of {FORMATS}, got {format!r}")
    cfg, model = load_with_config(model_path)
    meta: dict[str, Any] = {"model": describe(cfg), "source": Path(model_path).name}
    if _check_head(model).input_kind == "keypoints_2d":  # synthetic: centred on the hip
        meta["root_centred_inputs"] = task_for(cfg).source.root_centred_inputs
    return export(model, out, format, example_inputs(model), num_samples, meta)


def read_metadata(path: str | Path) -> dict[str, Any]:
    """The metadata stored in an exported ``.pt2``, ONNX or TorchScript file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"path: no such file {path}")
    if path.suffix == ".onnx":
        proto = _require_onnx(dynamo=False).load(str(path), load_external_data=False)
        for entry in proto.metadata_props:
            if entry.key == "condflow":
                return json.loads(entry.value)
        raise ValueError(f"path: {path} has no condflow metadata")
    files = {_METADATA_FILE: ""}
    if zipfile.is_zipfile(path) and _is_exported_program(path):
        torch.export.load(path, extra_files=files)
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            torch.jit.load(str(path), _extra_files=files)
    if not files[_METADATA_FILE]:
        raise ValueError(f"path: {path} has no condflow metadata")
    return json.loads(files[_METADATA_FILE])


def _is_exported_program(path: Path) -> bool:
    """``torch.export.save`` archives hold an ``archive_format`` entry; TorchScript's don't."""
    with zipfile.ZipFile(path) as archive:
        return any(name.endswith("/archive_format") for name in archive.namelist())
