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

import smplx.lbs
import torch
import torch.nn.functional as F
from smplx.lbs import lbs, transform_mat
from torch import Tensor, nn

from condflow._checks import check_positive_int, check_tensor, set_finite_checks
from condflow._version import __version__
from condflow.data.image_datasets import IMAGENET_MEAN, IMAGENET_STD
from condflow.encoders.mlp_lifter import MLPLifter
from condflow.heads.prohmr import ProHMRHead
from condflow.heads.skeleton import SkeletonHead, SkeletonRegressionHead
from condflow.saving import body_model_fingerprint, load_with_config

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
    "head_kind",
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

#: Outputs of a mesh head's mode (and of each sample, prefixed ``sample_``), per image.
MESH_FIELDS = ("vertices", "eval_joints", "keypoints_2d", "rotmat", "betas", "cam")
_MESH_SAMPLE_FIELDS = ("vertices", "eval_joints", "keypoints_2d", "rotmat")
_UNITS = {
    "joints": "millimetres, Human3.6M-17 order, root-relative, camera frame",
    "vertices": "metres, body frame (camera-aligned orientation, no translation)",
    "eval_joints": "metres, Human3.6M-17 joints regressed from the vertices, body frame",
    "keypoints_2d": "normalized crop coordinates in [-1, 1] (SPIN's 24 keypoints)",
    "rotmat": "rotation matrices of SMPL's 24 joints, the global orientation first",
    "betas": "SMPL shape coefficients (10)",
    "cam": "weak-perspective camera (s, tx, ty) in normalized crop coordinates",
}
_LOG_PROB_UNITS = {
    "skeleton": "nats, log density over the joint coordinates in millimetres",
    "mesh": "nats, log density over the 144-d 6D pose (24 joints x 6)",
}


def _units(kind: str, names: tuple[str, ...]) -> dict[str, str]:
    units = {}
    for name in names:
        base = name.removeprefix("sample_")
        units[name] = _LOG_PROB_UNITS[kind] if name == "log_prob" else _UNITS[base]
    return units


def input_normalization(kind: str) -> dict[str, Any]:
    """How the exported graph's ``inputs`` must be prepared (stored in the metadata)."""
    if kind == "skeleton":
        return {
            "inputs": "2D keypoints [B, 16, 3] (x, y, confidence) in Human3.6M-16 order "
            "(see condflow.data.keypoint_files)",
            "xy": "VideoPose3D's screen normalization of pixel coordinates in a W x H image: "
            "x' = 2 x / W - 1, y' = 2 y / W - H / W",
            "confidence": "1 for a seen joint, 0 for a hidden one (whose x', y' are 0)",
        }

    return {
        "inputs": "RGB crops [B, 3, R, R], R the model's img_res, of a square box around the "
        "person (condflow predict: the box of the seen keypoints, enlarged 1.2 times)",
        "pixels": "(rgb / 255 - mean) / std per channel",
        "mean": [float(v) for v in IMAGENET_MEAN],
        "std": [float(v) for v in IMAGENET_STD],
    }


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


def head_kind(model: nn.Module) -> str:
    """``"skeleton"`` (flow or regression skeleton head) or ``"mesh"`` (ProHMR head)."""
    if isinstance(model, SkeletonHead | SkeletonRegressionHead):
        return "skeleton"

    if isinstance(model, ProHMRHead):
        return "mesh"
    raise ValueError(f"model: cannot export a {type(model).__name__}")


def _with_vertices(model: nn.Module, prediction: Any) -> Any:
    """``prediction`` (a ``ProHMRPrediction``) with its vertices ``[B, n, V, 3]``.

    The vertices are smplx's linear blend skinning of the body model's arrays, called
    directly: smplx's ``SMPLLayer.forward`` takes ``max(1, batch size)``, which fixes a
    symbolic batch size to the traced one in ``torch.export``."""
    b, n = prediction.rotmat.shape[:2]
    rotmat = prediction.rotmat.reshape(-1, 24, 3, 3)
    betas = prediction.betas.reshape(rotmat.shape[0], -1)
    smpl = model.body.smpl
    vertices, _ = lbs(betas, rotmat, smpl.v_template, smpl.shapedirs, smpl.posedirs,
                      smpl.J_regressor, smpl.parents, smpl.lbs_weights, pose2rot=False)
    prediction.vertices = vertices.reshape(b, n, -1, 3)
    return prediction


class Predictor(nn.Module):
    """``inputs → tuple of mode outputs`` (named by ``output_names``).

    Skeleton heads: 2D keypoints ``[B, 16, 3] → (joints [B, 17, 3],)`` (mm; the mode of a
    flow, the direct prediction of a regression head). Mesh heads: images
    ``[B, 3, R, R] →`` the :data:`MESH_FIELDS` of the mode, e.g. ``vertices [B, V, 3]``.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.kind = head_kind(model)
        self.model = model
        self.output_names: tuple[str, ...] = (
            ("joints",) if self.kind == "skeleton" else MESH_FIELDS
        )

    def forward(self, inputs: Tensor) -> tuple[Tensor, ...]:
        if self.kind == "skeleton":
            return (self.model(inputs),)
        mode = _with_vertices(self.model, self.model.mode(self.model.context(inputs)))
        return tuple(getattr(mode, f)[:, 0] for f in MESH_FIELDS)


class Sampler(nn.Module):
    """``(inputs, noise [B, n, d]) → (*mode outputs, *sample outputs, log_prob [B, n])``.

    ``noise[:, i]`` is the z of sample ``i`` (``noise = 0`` gives the mode); ``log_prob`` is
    log p(sample | c). Skeleton heads: ``(joints [B, 17, 3], sample_joints [B, n, 17, 3],
    log_prob)``. Mesh heads: the :data:`MESH_FIELDS` of the mode, then ``sample_vertices``,
    ``sample_eval_joints``, ``sample_keypoints_2d``, ``sample_rotmat`` ``[B, n, ...]`` (shape
    and camera are the same for every sample), then ``log_prob``.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        if isinstance(model, SkeletonRegressionHead):
            raise ValueError("model: a regression model is deterministic and has no sampler")
        self.kind = head_kind(model)
        self.model = model
        if self.kind == "skeleton":
            self.output_names: tuple[str, ...] = ("joints", "sample_joints", "log_prob")
        else:
            samples = tuple(f"sample_{f}" for f in _MESH_SAMPLE_FIELDS)
            self.output_names = (*MESH_FIELDS, *samples, "log_prob")

    def forward(self, inputs: Tensor, noise: Tensor) -> tuple[Tensor, ...]:
        c = self.model.context(inputs)
        if self.kind == "skeleton":
            x, log_prob = self.model.flow.generate(noise, c)
            return self.model.mode(c), self.model.space.to_joints(x), log_prob
        # The mode is f(0; c): one pass with z = 0 prepended (one body model in the graph).
        z = torch.cat([torch.zeros_like(noise[:, :1]), noise], dim=1)
        both = _with_vertices(self.model, self.model.generate(z, c))
        return (
            *(getattr(both, f)[:, 0] for f in MESH_FIELDS),
            *(getattr(both, f)[:, 1:] for f in _MESH_SAMPLE_FIELDS),
            both.log_prob[:, 1:],
        )


def latent_features(model: nn.Module) -> int:
    """d, the size of the flow's z (the last axis of the sampler's noise)."""
    if isinstance(model, SkeletonRegressionHead) or not hasattr(model, "flow"):
        raise ValueError(f"model: a {type(model).__name__} has no flow to sample from")
    return model.flow.features


def exportable(model: nn.Module, num_samples: int | None = None) -> Predictor | Sampler:
    """The module that is traced: the predictor, or with ``num_samples`` the sampler."""
    return Predictor(model) if num_samples is None else Sampler(model)


def example_inputs(model: nn.Module, batch_size: int = 2, seed: int = 0) -> Tensor:
    """Plausible random inputs of ``model``, ``[batch_size, ...]``.

    Skeleton heads: normalized 2D keypoints in [-0.6, 0.6] with confidences in [0.5, 1],
    ``[B, J, 3]`` (``[B, J, 2]`` for a lifter without confidences). Mesh heads: standardized
    images ``[B, 3, R, R]`` with R the head's ``img_res``.
    """
    check_positive_int("batch_size", batch_size)
    gen = torch.Generator().manual_seed(seed)
    if head_kind(model) == "mesh":
        return torch.randn(batch_size, 3, model.img_res, model.img_res, generator=gen)
    lifter = next((m for m in model.encoder.modules() if isinstance(m, MLPLifter)), None)
    if lifter is None:
        raise ValueError(f"model: no MLPLifter in the encoder of a {type(model).__name__}")
    # A lifter that ignores confidences sits behind a module dropping them from [B, J, 3].
    channels = 3 if lifter.in_channels == 3 or lifter is not model.encoder else 2
    kp = torch.rand(batch_size, lifter.num_joints, channels, generator=gen)
    kp[..., :2] = kp[..., :2] * 1.2 - 0.6
    if channels == 3:
        kp[..., 2] = 0.5 + 0.5 * kp[..., 2]
    return kp


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


def _verification_args(module: nn.Module, example: Tensor, num_samples: int | None) -> tuple:
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
        "input_normalization": input_normalization(module.kind),
        "units": _units(module.kind, module.output_names),
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


def _rigid_transform(
    rot_mats: Tensor, joints: Tensor, parents: tuple[int, ...]
) -> tuple[Tensor, Tensor]:
    """smplx's ``batch_rigid_transform`` with the kinematic tree as Python ints.

    smplx indexes its Python list of transforms with ``parents[i]``, a tensor element, which
    ``torch.export`` cannot capture (a data-dependent list index); the arithmetic is the same.
    """
    joints = torch.unsqueeze(joints, dim=-1)
    rel_joints = joints.clone()
    rel_joints[:, 1:] -= joints[:, list(parents[1:])]
    transforms_mat = transform_mat(
        rot_mats.reshape(-1, 3, 3), rel_joints.reshape(-1, 3, 1)
    ).reshape(-1, joints.shape[1], 4, 4)
    chain = [transforms_mat[:, 0]]
    for i in range(1, len(parents)):
        chain.append(torch.matmul(chain[parents[i]], transforms_mat[:, i]))
    transforms = torch.stack(chain, dim=1)
    posed_joints = transforms[:, :, :3, 3]
    joints_homogen = F.pad(joints, [0, 0, 0, 1])
    rel_transforms = transforms - F.pad(
        torch.matmul(transforms, joints_homogen), [3, 0, 0, 0, 0, 0, 0, 0]
    )
    return posed_joints, rel_transforms


@contextmanager
def _capturable(module: nn.Module) -> Iterator[None]:
    """Make a mesh head's body model capturable by ``torch.export`` with a dynamic batch.

    While exporting, smplx's rigid transform is :func:`_rigid_transform` (the same
    arithmetic with the kinematic tree as Python ints).
    """
    if module.kind != "mesh":
        yield
        return
    parents = tuple(int(p) for p in module.model.body.parents.tolist())
    original = smplx.lbs.batch_rigid_transform

    def batch_rigid_transform(
        rot_mats: Tensor, joints: Tensor, parents_tensor: Tensor, dtype: Any = None
    ) -> tuple[Tensor, Tensor]:
        return _rigid_transform(rot_mats, joints, parents)

    smplx.lbs.batch_rigid_transform = batch_rigid_transform
    try:
        yield
    finally:
        smplx.lbs.batch_rigid_transform = original


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
    with _tracing(), _capturable(module):
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
    if isinstance(opset, bool) or not isinstance(opset, int) or opset < least:
        raise ValueError(f"opset: expected an integer >= {least}, got {opset!r}")
    module, args, outputs = _prepare(model, example, num_samples)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    input_names = ["inputs", "noise"][: len(args)]
    names = input_names + list(module.output_names)
    quiet = contextlib.redirect_stdout(io.StringIO())  # the dynamo exporter's progress lines
    with _tracing(), quiet, _capturable(module) if dynamo else contextlib.nullcontext():
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
    meta: dict[str, Any] = {"task": cfg.task, "source": Path(model_path).name}
    if cfg.task == "lifting":
        meta["root_centred_inputs"] = cfg.data.source == "synthetic"
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
