"""Context encoders by name: what a config's ``model.encoder`` selects.

Each name maps to an :class:`EncoderEntry`: the dataclass typing the encoder's settings
(the keys under ``model.encoder`` besides ``kind``), the input kind it reads
(:mod:`condflow.inputs`) and a factory of ``(settings, EncoderRequest)`` returning an
``nn.Module`` from inputs ``[B, *shape]`` to a context ``[B, C]``, with ``out_features = C``
and ``input_kind``. :func:`register_encoder` adds a user's own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from torch import Tensor, nn

from condflow._checks import NonNegativeInt, PositiveInt, Probability
from condflow._norms import Norm
from condflow._registry import Registry, check_settings_class
from condflow.encoders.mlp_lifter import MLPLifter
from condflow.encoders.resnet import ResNetEncoder
from condflow.encoders.small_cnn import SmallCNN
from condflow.inputs import INPUT_KINDS, InputSpec

__all__ = [
    "ENCODERS",
    "EncoderEntry",
    "EncoderRequest",
    "MLPLifterSettings",
    "ResNetSettings",
    "SmallCNNSettings",
    "build_encoder",
    "register_encoder",
    "with_output_layer",
]


@dataclass(frozen=True)
class EncoderRequest:
    """What the model asks of an encoder besides its own settings.

    Attributes:
        inputs: the data's input (kind and per-example shape).
        out_features: when set, the encoder ends in ``out_features`` outputs (the features a
            regression head predicts directly) instead of the context.
        batch_norm: the model's normalization for encoders with hidden MLP layers.
    """

    inputs: InputSpec
    out_features: int | None = None
    batch_norm: bool | Norm = True


@dataclass(frozen=True)
class EncoderEntry:
    """A registered encoder: its settings dataclass, the input kind it reads, its factory."""

    settings: type
    reads: str
    factory: Callable[[Any, EncoderRequest], nn.Module]


class _OutputLayer(nn.Sequential):
    """An encoder followed by a linear map to ``out_features`` (regression heads)."""

    out_features: int
    input_kind: str

    def __init__(self, encoder: nn.Module, out_features: int) -> None:
        inner = cast(Any, encoder)
        super().__init__(encoder, nn.Linear(int(inner.out_features), out_features))
        self.out_features, self.input_kind = out_features, str(inner.input_kind)


def with_output_layer(encoder: nn.Module, out_features: int | None) -> nn.Module:
    """``encoder`` ending in ``out_features`` outputs (unchanged for ``None``)."""
    return encoder if out_features is None else _OutputLayer(encoder, out_features)


@dataclass
class MLPLifterSettings:
    """Martinez et al.'s residual MLP (:class:`~condflow.encoders.MLPLifter`)."""

    hidden: PositiveInt = 1024
    blocks: NonNegativeInt = 2  # residual blocks
    dropout: Probability = 0.0  # dropout noise in c widens the density a flow learns
    use_confidence: bool = True  # feed (x, y, confidence) rather than (x, y)


class _DropConfidence(nn.Module):
    def forward(self, keypoints: Tensor) -> Tensor:
        return keypoints[..., :2]


class _LifterWithoutConfidence(nn.Sequential):
    """``_DropConfidence`` then a lifter of ``[B, J, 2]``, stating the lifter's C."""

    out_features: int
    input_kind = "keypoints_2d"


def _mlp_lifter(s: MLPLifterSettings, r: EncoderRequest) -> nn.Module:
    if len(r.inputs.shape) != 2 or r.inputs.shape[1] != 3:
        raise ValueError(f"model.encoder: mlp_lifter reads keypoints [J, 3], the data has "
                         f"{list(r.inputs.shape)}")
    lifter = MLPLifter(num_joints=r.inputs.shape[0], in_channels=3 if s.use_confidence else 2,
                       hidden=s.hidden, num_residual_blocks=s.blocks, dropout=s.dropout,
                       out_features=r.out_features, batch_norm=r.batch_norm)
    if s.use_confidence:
        return lifter
    encoder = _LifterWithoutConfidence(_DropConfidence(), lifter)
    encoder.out_features = lifter.out_features
    return cast(nn.Module, encoder)


@dataclass
class SmallCNNSettings:
    """The CPU encoder (:class:`~condflow.encoders.SmallCNN`)."""

    context_features: PositiveInt = 256  # context size C
    width: PositiveInt = 32  # channels of the first stage


@dataclass
class ResNetSettings:
    """A ResNet (:class:`~condflow.encoders.ResNetEncoder`; C = 512, or 2048 for depth 50)."""

    pretrained: str | None = None  # torchvision-layout weights file (never downloaded)


def _image_encoder(make: Callable[[Any], nn.Module]) -> Callable[[Any, EncoderRequest], nn.Module]:
    def factory(s: Any, r: EncoderRequest) -> nn.Module:
        encoder = make(s)
        cast(Any, encoder).input_res = r.inputs.shape[-1]  # the side of the crops it reads
        return with_output_layer(encoder, r.out_features)
    return factory


def _resnet(depth: int) -> Callable[[ResNetSettings], nn.Module]:
    return lambda s: ResNetEncoder(depth, s.pretrained)


#: The registered encoders, by name.
ENCODERS: Registry[EncoderEntry] = Registry("encoder")
ENCODERS.register("mlp_lifter", EncoderEntry(MLPLifterSettings, "keypoints_2d", _mlp_lifter))
ENCODERS.register("small_cnn", EncoderEntry(SmallCNNSettings, "images", _image_encoder(
    lambda s: SmallCNN(3, s.context_features, s.width))))
for _depth in (18, 34, 50):
    ENCODERS.register(f"resnet{_depth}",
                      EncoderEntry(ResNetSettings, "images", _image_encoder(_resnet(_depth))))


def register_encoder(name: str, settings: type, reads: str,
                     factory: Callable[[Any, EncoderRequest], nn.Module],
                     replace: bool = False) -> None:
    """Make ``model.encoder.kind: name`` build ``factory(settings_instance, request)``.

    Args:
        name: the name configs use.
        settings: a dataclass typing the encoder's config keys (an empty one if it has none).
        reads: the input kind it reads (``"keypoints_2d"`` or ``"images"``).
        factory: builds the module; it must set ``out_features`` (C) and honour
            ``request.out_features`` (e.g. with :func:`with_output_layer`).
        replace: replace an encoder already registered under ``name``.
    """
    check_settings_class(settings)
    if reads not in INPUT_KINDS:
        raise ValueError(f"reads: expected one of {sorted(INPUT_KINDS)}, got {reads!r}")
    if not callable(factory):
        raise ValueError(f"factory: expected a callable, got {type(factory).__name__}")
    ENCODERS.register(name, EncoderEntry(settings, reads, factory), replace)


def build_encoder(kind: str, settings: Any, request: EncoderRequest,
                  where: str = "model.encoder") -> nn.Module:
    """The encoder registered as ``kind`` for ``request``; ``ValueError`` naming ``where``
    for an unknown name or an input kind it does not read."""
    entry = ENCODERS.get(kind, f"{where}.kind")
    if request.inputs.kind != entry.reads:
        raise ValueError(f"{where}.kind: {kind!r} reads {entry.reads}, but the data's input is "
                         f"{request.inputs.kind} {list(request.inputs.shape)}")
    encoder = entry.factory(settings, request)
    if not isinstance(getattr(encoder, "out_features", None), int):
        raise ValueError(f"{where}.kind: the {kind!r} factory built a module without an int "
                         "out_features")
    if not hasattr(encoder, "input_kind"):
        cast(Any, encoder).input_kind = entry.reads
    return encoder
