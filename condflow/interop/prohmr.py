"""ProHMR's checkpoints (nkolot/ProHMR, PyTorch Lightning ``.ckpt``) as condflow models.

:func:`import_prohmr` reads ProHMR's ``state_dict`` and its yacs model settings and returns
a condflow mesh model (a :class:`~condflow.heads.ProHMRHead` with
``flow_convention="prohmr"``) computing the same functions; :func:`import_prohmr_file`
writes it as a one-file model (:func:`condflow.saving.save`). What maps to what:

=============================================  ==============================================
ProHMR (``ProHMR`` Lightning module)           condflow (``ProHMRHead``)
=============================================  ==============================================
``backbone.*`` (torchvision ResNet, no fc)     ``encoder.*`` (:class:`ResNetEncoder`), as is
``flow.flow._transform._transforms.{3k}``      block k's :class:`ActNorm`
  ActNorm                                        (``parametrization="normalizing"``), as is
``...{3k+1}`` LULinear                         block k's :class:`NflowsLULinear`: the flat
                                                 ``lower_entries``/``upper_entries`` scattered
                                                 into the strict triangles, as is otherwise
``...{3k+2}`` AdditiveCouplingTransform        block k's :class:`AdditiveCoupling`
                                                 (``split="alternate"``, parity k mod 2)
  ``transform_net.initial_layer`` [H, m + C]     ``net.input_z`` = columns ``[:m]`` (no bias),
                                                 ``net.input_c`` = columns ``[m:]`` + bias
  ``blocks.j.batch_norm_layers.{0,1}``           ``net.blocks.j.norm0``/``norm1``
  ``blocks.j.linear_layers.{0,1}``               ``net.blocks.j.linear0``/``linear1``
  ``final_layer``                                ``net.output``, negated (see below)
``flow.fc_head.layers.{0,2}``                  ``point_head.layers.{0,2}``
``flow.fc_head.init_betas`` ``[1, 1, 10]``,    ``point_head.init_betas`` ``[10]``,
``flow.fc_head.init_cam`` ``[1, 1, 3]``          ``point_head.init_cam`` ``[3]`` (SMPL's mean
                                                 parameters: β and camera = offset + these)
``discriminator.*``, ``smpl.*``,               ignored, with a note: the discriminator only
``initialized``, ``*.dummy_buffer``              trains; SMPL comes from condflow's body model
``...identity_features``/``transform_features``  checked to be the even/odd masks, not stored
=============================================  ==============================================

Conventions that differ between ProHMR's nflows fork (nkolot/nflows) and condflow, and how
each is kept exact:

- **Direction of ``forward``.** nflows' ``Transform.forward`` is the normalizing direction
  x → z, condflow's ``Bijector.forward`` the generative z → x; nflows' ``Flow.log_prob``
  is our ``log_prob`` and its ``sample_and_log_prob(noise=z)`` our ``generate(z)``. The
  fork's ``CompositeTransform`` lists ActNorm, LU, coupling per layer in the x → z order,
  which is condflow's :class:`GlowBlock` order read in the normalizing direction; layer k is
  block k (nearest the data for k = 0).
- **ActNorm sign.** The fork stores ``z = exp(log_scale) ⊙ x + shift`` (parameters of the
  normalizing map); condflow's default stores ``x = exp(log_scale) ⊙ z + shift``. Rather
  than converting (``log_scale → −log_scale``, ``shift → −shift ⊙ exp(−log_scale)``, which
  rounds), the ActNorm keeps the fork's parametrization. Its ``initialized`` flag is carried
  over, so an imported model never re-initializes; the fork initializes from the
  Bessel-corrected std floored at 1e-3, condflow from the biased std + eps, which matters
  only for a checkpoint that was never initialized (reported as a note).
- **LU storage.** The fork's ``LULinear`` is ``z = L U x + b`` with unit-lower ``L``,
  upper ``U`` whose diagonal is ``softplus(unconstrained_upper_diag) + 1e-3``, a bias, no
  permutation, and its lower/upper entries stored flat in ``numpy.tril_indices(d, -1)`` /
  ``triu_indices(d, 1)`` order. condflow's :class:`LULinear` is ``x = P L (U + diag s) z``
  (generative, no bias), so the fork's layer is held by :class:`NflowsLULinear` in the
  fork's own parametrization.
- **Coupling.** The fork adds the net's output in the normalizing direction
  (``z₂ = x₂ + t(x₁)``), condflow in the generative one (``x₂ = z₂ + t(z₁)``): the output
  layer is negated, which is exact. Its masks are ``mask[::2] = -1`` flipped every layer:
  layer 0 keeps the even-indexed features — condflow's ``split="alternate"``, parity 0.
  The fork's input layer acts on ``[x₁, c]``; condflow splits it into ``W_z x₁ + (W_c c +
  b)`` (the same sum, rounded in another order).
- **6D layout.** ProHMR lays a joint's 6D features out as the two matrix columns one after
  the other, condflow row by row; a fixed permutation (log-det 0) after the flow maps one
  to the other (:func:`condflow.heads.prohmr.prohmr_6d_order`), so densities are equal.
- **Camera.** Both predict a weak-perspective ``(s, tx, ty)`` turned into the translation
  ``(tx, ty, 2 f / (res · s))``; ProHMR's 2D keypoints are in crop units ``[-0.5, 0.5]``,
  condflow's in ``[-1, 1]`` (twice ProHMR's). ``EXTRA.FOCAL_LENGTH`` is in pixels at
  ``MODEL.IMAGE_SIZE``.
- **Dropout.** The fork's ``ConditionalGlow`` defaults to dropout 0.5 in its coupling nets
  (ProHMR keeps the default); the imported config says so (it matters only for training).

Checkpoints are read with ``torch.load(weights_only=True)``: nothing in them can run code.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, cast

import torch
import yaml
from torch import Tensor, nn

from condflow.bijectors import Compose, GlowBlock, Permutation
from condflow.bijectors.nets import ContextResidualNet, ResidualBlock
from condflow.saving import build_model, save
from condflow.tasks import load_config

__all__ = [
    "PROHMR_IMAGE_MEAN",
    "PROHMR_IMAGE_STD",
    "ProHMRImport",
    "ProHMRSettings",
    "convert_state_dict",
    "import_prohmr",
    "import_prohmr_file",
    "read_prohmr_checkpoint",
    "read_prohmr_config",
]

#: ``MODEL.IMAGE_MEAN`` / ``MODEL.IMAGE_STD`` of ProHMR's configs (ImageNet's, RGB order).
PROHMR_IMAGE_MEAN = (0.485, 0.456, 0.406)
PROHMR_IMAGE_STD = (0.229, 0.224, 0.225)

_FLOW = "flow.flow._transform._transforms."
_IGNORED_PREFIXES = ("discriminator.", "smpl.")
# (blocks in each of the 4 stages, bottleneck blocks) → ResNet depth
_RESNET_BLOCKS: dict[tuple[int, ...], int] = {
    (2, 2, 2, 2, False): 18, (3, 4, 6, 3, False): 34, (3, 4, 6, 3, True): 50,
    (3, 4, 23, 3, True): 101, (3, 8, 36, 3, True): 152,
}


@dataclass(frozen=True)
class ProHMRSettings:
    """The model settings of a ProHMR checkpoint (ProHMR's yacs key in each comment)."""

    backbone_depth: int = 50  # MODEL.BACKBONE.NUM_LAYERS
    flow_blocks: int = 4  # MODEL.FLOW.NUM_LAYERS (Glow blocks)
    flow_hidden: int = 1024  # MODEL.FLOW.LAYER_HIDDEN_FEATURES
    flow_residual_blocks: int = 2  # MODEL.FLOW.LAYER_DEPTH (residual blocks per coupling net)
    context_features: int = 2048  # MODEL.FLOW.CONTEXT_FEATURES
    fc_hidden: int = 1024  # MODEL.FC_HEAD.NUM_FEATURES
    image_size: int = 224  # MODEL.IMAGE_SIZE (pixels)
    focal_length: float = 5000.0  # EXTRA.FOCAL_LENGTH (pixels at IMAGE_SIZE)


#: yacs key → field of :class:`ProHMRSettings`; the defaults are ProHMR's ``prohmr.yaml``.
_CONFIG_KEYS = {
    ("MODEL", "BACKBONE", "NUM_LAYERS"): "backbone_depth",
    ("MODEL", "FLOW", "NUM_LAYERS"): "flow_blocks",
    ("MODEL", "FLOW", "LAYER_HIDDEN_FEATURES"): "flow_hidden",
    ("MODEL", "FLOW", "LAYER_DEPTH"): "flow_residual_blocks",
    ("MODEL", "FLOW", "CONTEXT_FEATURES"): "context_features",
    ("MODEL", "FC_HEAD", "NUM_FEATURES"): "fc_hidden",
    ("MODEL", "IMAGE_SIZE"): "image_size",
    ("EXTRA", "FOCAL_LENGTH"): "focal_length",
}


@dataclass
class ProHMRImport:
    """The result of an import: the condflow config (a plain dict), the model (eval mode),
    the settings read, and notes on what was ignored."""

    config: dict[str, Any]
    model: nn.Module
    settings: ProHMRSettings
    notes: list[str] = field(default_factory=list)


# -- reading --------------------------------------------------------------------------------
def read_prohmr_checkpoint(path: str | Path) -> dict[str, Tensor]:
    """The ``state_dict`` of a ProHMR checkpoint: a Lightning ``.ckpt`` (its ``state_dict``
    entry) or a bare state dict, read with ``torch.load(weights_only=True)``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"CKPT: no such file {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - re-raised with the file and the way out
        raise ValueError(
            f"{path}: cannot be read with torch.load(weights_only=True) ({err}). The file holds "
            "Python objects beyond tensors and plain containers (e.g. Lightning "
            "hyper_parameters); condflow never unpickles those. If you trust the file, keep "
            "only its weights where it was written: python -c \"import torch; "
            f"c = torch.load('{path}', weights_only=False); "
            "torch.save({'state_dict': c['state_dict']}, 'weights.ckpt')\""
        ) from None
    if isinstance(payload, Mapping) and "state_dict" in payload:
        payload = payload["state_dict"]
    if not isinstance(payload, Mapping) or not payload:
        raise ValueError(f"{path}: expected a Lightning checkpoint (with 'state_dict') or a "
                         f"state dict, got {type(payload).__name__}")
    bad = [k for k, v in payload.items() if not isinstance(k, str) or not isinstance(v, Tensor)]
    if bad:
        raise ValueError(f"{path}: state_dict entries that are not named tensors: {bad[:5]}")
    return dict(payload)


def read_prohmr_config(path: str | Path) -> dict[tuple[str, ...], Any]:
    """The model settings of a ProHMR yacs YAML file (e.g. ProHMR's ``prohmr.yaml``), as
    ``{key path: value}`` for the keys the import uses (others are ignored: data, losses,
    training). ``MODEL.IMAGE_MEAN``/``IMAGE_STD`` must be ImageNet's and
    ``MODEL.BACKBONE.TYPE`` ``resnet``, ``MODEL.FLOW.DIM`` 144, ``SMPL.NUM_BODY_JOINTS`` 23
    (other values have no condflow counterpart and raise ``ValueError``)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--model-cfg: no such file {path}")
    raw = yaml.safe_load(path.read_text()) or {}
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: expected a YAML mapping, got {type(raw).__name__}")
    if "_BASE_" in raw:
        raise ValueError(f"{path}: _BASE_ (yacs config inheritance) is not supported; merge "
                         "the files into one")

    def get(keys: tuple[str, ...]) -> Any:
        node: Any = raw
        for k in keys:
            if not isinstance(node, dict) or k not in node:
                return None
            node = node[k]
        return node

    required = {("MODEL", "BACKBONE", "TYPE"): "resnet", ("MODEL", "FLOW", "DIM"): 144,
                ("SMPL", "NUM_BODY_JOINTS"): 23}
    for keys, expected in required.items():
        value = get(keys)
        if value is not None and value != expected:
            raise ValueError(f"{path}: {'.'.join(keys)} is {value!r}; condflow imports ProHMR's "
                             f"SMPL model with {'.'.join(keys)} = {expected!r} only")
    for keys, expected in ((("MODEL", "IMAGE_MEAN"), PROHMR_IMAGE_MEAN),
                           (("MODEL", "IMAGE_STD"), PROHMR_IMAGE_STD)):
        value = get(keys)
        if value is not None and [float(v) for v in value] != list(expected):
            raise ValueError(f"{path}: {'.'.join(keys)} is {value!r}; condflow's image "
                             f"pipeline normalizes with ImageNet's {list(expected)}")
    found = {keys: get(keys) for keys in _CONFIG_KEYS}
    return {keys: value for keys, value in found.items() if value is not None}


# -- settings -------------------------------------------------------------------------------
def _infer_settings(state: Mapping[str, Tensor], where: str) -> dict[str, int]:
    """Sizes read off the checkpoint's tensors."""
    layers = sorted(int(m[1]) for k in state if (m := re.fullmatch(
        re.escape(_FLOW) + r"(\d+)\.log_scale", k)))
    if not layers:
        raise ValueError(f"{where}: no ProHMR flow found (no '{_FLOW}<i>.log_scale' entries); "
                         "is this a ProHMR (SMPL) checkpoint?")
    num_layers = len(layers)
    if layers != [3 * k for k in range(num_layers)]:
        raise ValueError(f"{where}: ActNorm entries at transforms {layers}; expected every "
                         "third transform (ActNorm, LULinear, coupling per layer)")
    dim = state[f"{_FLOW}0.log_scale"].shape[0]
    if dim != 144:
        raise ValueError(f"{where}: the flow has {dim} features; condflow imports ProHMR's "
                         "SMPL flow (144 = 24 joints x 6D) only. ProSkeleton's 3D-joint flow is "
                         "not supported (its fcresnet backbone has no condflow counterpart)")
    net = f"{_FLOW}2.transform_net."
    try:
        hidden, inputs = state[f"{net}initial_layer.weight"].shape
        fc_hidden, fc_in = state["flow.fc_head.layers.0.weight"].shape
    except KeyError as err:
        raise ValueError(f"{where}: missing key {err.args[0]!r}") from None
    depth = len({m[1] for k in state if (m := re.match(re.escape(net) + r"blocks\.(\d+)\.", k))})
    blocks = []
    for layer in range(1, 5):
        blocks.append(len({m[1] for k in state if (m := re.match(
            rf"backbone\.layer{layer}\.(\d+)\.", k))}))
    bottleneck = "backbone.layer1.0.conv3.weight" in state
    backbone = _RESNET_BLOCKS.get((*blocks, bottleneck))
    if backbone is None:
        raise ValueError(f"{where}: backbone with {blocks} blocks per stage is not a ResNet "
                         "18/34/50/101/152")
    if backbone not in (18, 34, 50):
        raise ValueError(f"{where}: the backbone is a ResNet-{backbone}; condflow's ResNet "
                         "encoder has depths 18, 34 and 50")
    context = inputs - dim // 2
    if fc_in != context:
        raise ValueError(f"{where}: flow.fc_head.layers.0.weight takes {fc_in} features but the "
                         f"flow's context has {context}")
    return {"backbone_depth": backbone, "flow_blocks": num_layers, "flow_hidden": int(hidden),
            "flow_residual_blocks": depth, "context_features": int(context),
            "fc_hidden": int(fc_hidden)}


def _settings(state: Mapping[str, Tensor], config: Mapping[tuple[str, ...], Any] | None,
              where: str) -> ProHMRSettings:
    inferred = _infer_settings(state, where)
    values = {**asdict(ProHMRSettings()), **inferred}
    for keys, value in (config or {}).items():
        name = _CONFIG_KEYS[keys]
        if name in inferred and int(value) != inferred[name]:
            raise ValueError(f"{'.'.join(keys)}: the config says {value!r} but the checkpoint "
                             f"{where} holds {inferred[name]}")
        values[name] = type(values[name])(value)
    if values["image_size"] <= 0 or values["focal_length"] <= 0:
        raise ValueError("MODEL.IMAGE_SIZE and EXTRA.FOCAL_LENGTH: expected positive numbers, "
                         f"got {values['image_size']!r} and {values['focal_length']!r}")
    return ProHMRSettings(**values)


def condflow_config(settings: ProHMRSettings, body_model: str | None = None) -> dict[str, Any]:
    """The condflow config (image → ResNet → SMPL 6D) of a ProHMR model with ``settings``."""
    return {
        "data": {"source": "synthetic_images", "res": settings.image_size,
                 "body_model": body_model},
        "model": {
            "encoder": {"kind": f"resnet{settings.backbone_depth}"},
            "space": {
                "kind": "smpl_6d",
                "point_hidden": settings.fc_hidden,
                "focal_length": settings.focal_length,  # pixels at data.res
                "flow_convention": "prohmr",
            },
            "flow_blocks": settings.flow_blocks,
            "flow_hidden": settings.flow_hidden,
            "flow_residual_blocks": settings.flow_residual_blocks,
            "flow_dropout": 0.5,  # the fork's ConditionalGlow default, kept by ProHMR
            "batch_norm": True,
        },
    }


# -- conversion -----------------------------------------------------------------------------
class _Taker:
    """Hands out checkpoint entries once each, checking shapes; remembers what was used."""

    def __init__(self, state: Mapping[str, Tensor], where: str) -> None:
        self.state, self.where = state, where
        self.used: set[str] = set()
        self.missing: list[str] = []
        self.last = ""  # the key handed out last, named in shape errors

    def __call__(self, key: str, shape: tuple[int, ...] | None = None) -> Tensor | None:
        if key not in self.state:
            self.missing.append(key)
            return None
        value = self.state[key]
        self.used.add(key)
        self.last = key
        if shape is not None and tuple(value.shape) != tuple(shape):
            raise ValueError(f"{self.where}: {key}: expected shape {list(shape)}, got "
                             f"{list(value.shape)}")
        return value


class _Putter:
    """Collects the converted entries of ``model``'s ``state_dict``, checking each shape."""

    def __init__(self, model: nn.Module, take: _Taker, where: str) -> None:
        self.own = model.state_dict()
        self.names = {m: n for n, m in model.named_modules()}
        self.take, self.where = take, where
        self.out: dict[str, Tensor] = {}

    def __call__(self, module: nn.Module, attr: str, value: Tensor | None) -> None:
        key = f"{self.names[module]}.{attr}"
        if value is not None:
            own = self.own[key]
            if tuple(value.shape) != tuple(own.shape):
                raise ValueError(f"{self.where}: {self.take.last}: does not fit condflow's {key} "
                                 f"of shape {list(own.shape)} (got {list(value.shape)})")
            self.out[key] = value.detach().clone().to(own.dtype)


def _prohmr_flow(model: nn.Module) -> tuple[list[GlowBlock], Permutation]:
    """The Glow blocks of a ``flow_convention="prohmr"`` head, block k first (the fork's
    layer k), and the fixed permutation to condflow's 6D layout after them."""
    bijector = model.get_submodule("flow.bijector")
    parts = list(bijector.bijectors) if isinstance(bijector, Compose) else []
    glow, layout = parts if len(parts) == 2 else (None, None)
    if not isinstance(glow, Compose) or not isinstance(layout, Permutation) or not all(
        isinstance(b, GlowBlock) for b in glow.bijectors
    ):
        raise ValueError("model: expected a ProHMRHead built with flow_convention='prohmr'")
    return [cast(GlowBlock, b) for b in glow.bijectors][::-1], layout


def _convert_block(block: GlowBlock, prefix: str, k: int, take: _Taker, put: _Putter) -> bool:
    """Fill block k from the fork's layers ``3k..3k+2`` (names from ``prefix``); returns
    whether the checkpoint's ActNorm was initialized."""
    an, lu, cp = (f"{prefix}{3 * k + i}." for i in range(3))
    actnorm, linear, coupling = block.actnorm, block.linear, block.coupling
    d = actnorm.features
    put(actnorm, "log_scale", take(an + "log_scale", (d,)))
    put(actnorm, "shift", take(an + "shift", (d,)))
    initialized = take(an + "initialized", ())
    put(actnorm, "initialized", initialized)
    tril, triu = torch.tril_indices(d, d, -1), torch.triu_indices(d, d, 1)
    for name, index in (("lower", tril), ("upper", triu)):
        entries = take(lu + f"{name}_entries", (index.shape[1],))
        if entries is not None:
            full = entries.new_zeros(d, d)
            full[index[0], index[1]] = entries
            put(linear, name, full)
    put(linear, "unconstrained_diag", take(lu + "unconstrained_upper_diag", (d,)))
    put(linear, "bias", take(lu + "bias", (d,)))
    for name, buffer in (("identity_features", "identity_index"),
                         ("transform_features", "transformed_index")):
        expected = coupling.get_buffer(buffer)
        mask = take(cp + name)
        if mask is not None and not torch.equal(mask.cpu(), expected.cpu()):
            raise ValueError(f"{take.where}: {cp}{name} is not the fork's alternating mask of "
                             f"layer {k} (features {expected[:4].tolist()}...)")
    _convert_coupling_net(coupling.net, coupling.num_identity, cp + "transform_net.", take, put)
    return initialized is None or bool(initialized)


def _convert_coupling_net(net: ContextResidualNet, m: int, tn: str, take: _Taker, put: _Putter
                          ) -> None:
    """The coupling net from the fork's ``transform_net`` (``tn``); ``m`` identity features."""
    initial = take(tn + "initial_layer.weight")
    if initial is not None:
        put(net.input_z, "weight", initial[:, :m])
    if net.input_c is not None:
        if initial is not None:
            put(net.input_c, "weight", initial[:, m:])
        put(net.input_c, "bias", take(tn + "initial_layer.bias"))
    for j, block in enumerate(net.blocks):
        res = cast(ResidualBlock, block)
        for i, (norm, linear) in enumerate(((res.norm0, res.linear0), (res.norm1, res.linear1))):
            bn = f"{tn}blocks.{j}.batch_norm_layers.{i}."
            for attr in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked"):
                put(norm, attr, take(bn + attr))
            for attr in ("weight", "bias"):
                put(linear, attr, take(f"{tn}blocks.{j}.linear_layers.{i}.{attr}"))
    for attr in ("weight", "bias"):  # nflows adds t in the normalizing direction
        value = take(tn + f"final_layer.{attr}")
        put(net.output, attr, None if value is None else -value)


def _convert_point_head(head: nn.Module, take: _Taker, put: _Putter) -> None:
    """Point head: β and camera as offsets from SMPL's mean parameters."""
    for i in (0, 2):
        for attr in ("weight", "bias"):
            put(head.get_submodule(f"layers.{i}"), attr, take(f"flow.fc_head.layers.{i}.{attr}"))
    for name in ("init_betas", "init_cam"):
        size = head.get_buffer(name).numel()
        value = take(f"flow.fc_head.{name}")
        if value is not None:
            if value.numel() != size:
                raise ValueError(f"{take.where}: flow.fc_head.{name}: expected {size} numbers, "
                                 f"got shape {list(value.shape)}")
            put(head, name, value.reshape(size))


def _check_consumed(state: Mapping[str, Tensor], take: _Taker) -> None:
    """``ValueError`` listing every missing key and every unexpected one (not consumed and not
    one of the ignored groups)."""
    ignored = {k for k in state if k.startswith(_IGNORED_PREFIXES) or k == "initialized"
               or k.endswith(".dummy_buffer")}
    unexpected = sorted(set(state) - take.used - ignored)
    if take.missing or unexpected:
        problems = []
        if take.missing:
            problems.append(f"missing keys {take.missing}")
        if unexpected:
            problems.append(f"unexpected keys {unexpected}")
        raise ValueError(f"{take.where}: does not match ProHMR's layout for the settings read: "
                         + "; ".join(problems))


def convert_state_dict(
    state: Mapping[str, Tensor], model: nn.Module, where: str = "checkpoint"
) -> tuple[dict[str, Tensor], list[str]]:
    """condflow ``state_dict`` of ``model`` (a ``ProHMRHead`` with
    ``flow_convention="prohmr"`` of matching sizes) from ProHMR's ``state``, and notes.

    Raises ``ValueError`` listing every missing key, every unexpected key (not consumed and
    not one of the ignored groups), and any shape mismatch.
    """
    glow_blocks, layout = _prohmr_flow(model)
    take = _Taker(state, where)
    put = _Putter(model, take, where)
    own, out = put.own, put.out
    # Backbone: the same torchvision layout.
    for key, value in own.items():
        if key.startswith("encoder."):
            theirs = take("backbone." + key[len("encoder."):], tuple(value.shape))
            if theirs is not None:
                out[key] = theirs
    # Flow: block k of the Glow is the fork's layer k (normalizing order).
    never_initialized = [k for k, block in enumerate(glow_blocks)
                         if not _convert_block(block, _FLOW, k, take, put)]
    # The 6D-layout permutation is fixed by the model, not by the checkpoint.
    for attr in ("permutation", "inverse_permutation"):
        out[f"{put.names[layout]}.{attr}"] = own[f"{put.names[layout]}.{attr}"]
    _convert_point_head(model.get_submodule("point_head"), take, put)
    _check_consumed(state, take)

    notes: list[str] = []
    for prefix, why in (("discriminator.", "the adversarial prior's discriminator (training "
                                           "only)"),
                        ("smpl.", "SMPL's buffers (condflow poses its own body model)")):
        count = sum(k.startswith(prefix) for k in state)
        if count:
            notes.append(f"ignored {count} '{prefix}*' entries: {why}")
    if never_initialized:
        notes.append(f"ActNorm of flow layers {never_initialized} was never initialized in the "
                     "checkpoint (an untrained model?); condflow initializes it from the first "
                     "training batch")
    missing_own = sorted(set(own) - set(out))
    if missing_own:  # every entry of the model must come from somewhere
        raise RuntimeError(f"convert_state_dict: no value for {missing_own[:5]}")
    return out, notes


# -- entry points ---------------------------------------------------------------------------
def import_prohmr(
    checkpoint: str | Path | Mapping[str, Tensor],
    model_config: str | Path | None = None,
    body_model: str | None = None,
) -> ProHMRImport:
    """A condflow model computing what ProHMR's checkpoint computes.

    Args:
        checkpoint: ProHMR's ``.ckpt`` (or a state dict).
        model_config: ProHMR's yacs model YAML (``--model_cfg`` of ProHMR's demo); sizes are
            read off the checkpoint and checked against it, image size and focal length
            come from it (default: ProHMR's ``prohmr.yaml``: 224 px, 5000 px).
        body_model: SMPL file for the condflow config's ``data.body_model`` (default
            ``None``: ``$CONDFLOW_SMPL_PATH``, else condflow's synthetic model).
    """
    where = str(checkpoint) if isinstance(checkpoint, str | Path) else "state_dict"
    state = (read_prohmr_checkpoint(checkpoint) if isinstance(checkpoint, str | Path)
             else dict(checkpoint))
    config = read_prohmr_config(model_config) if model_config is not None else None
    settings = _settings(state, config, where)
    cfg_dict = condflow_config(settings, body_model)
    model = build_model(load_config(cfg_dict))
    converted, notes = convert_state_dict(state, model, where)
    model.load_state_dict(converted, strict=True)
    return ProHMRImport(cfg_dict, model.eval(), settings, notes)


def import_prohmr_file(
    checkpoint: str | Path,
    out: str | Path,
    model_config: str | Path | None = None,
    body_model: str | None = None,
    overwrite: bool = False,
) -> ProHMRImport:
    """:func:`import_prohmr`, then save the model as a one-file condflow model at ``out``
    (refusing to replace an existing file unless ``overwrite``)."""
    out = Path(out)
    if out.exists() and not overwrite:
        raise FileExistsError(f"OUT: {out} exists; pass --overwrite (overwrite=True) to "
                              "replace it")
    result = import_prohmr(checkpoint, model_config, body_model)
    save(result.model, out, result.config)
    return result
