"""Image encoders by name: what a config's ``model.encoder`` selects.

Each name maps to a factory of :class:`ImageEncoderSettings` returning an ``nn.Module`` that
takes images ``[B, 3, H, W]`` (as the image datasets yield them) to a context ``[B, C]``
and says its ``C`` as ``out_features``. :func:`register_image_encoder` adds a user's own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from condflow.encoders.resnet import ResNetEncoder
from condflow.encoders.small_cnn import SmallCNN

__all__ = [
    "IMAGE_ENCODERS",
    "ImageEncoderSettings",
    "build_image_encoder",
    "register_image_encoder",
]


@dataclass(frozen=True)
class ImageEncoderSettings:
    """What an image-encoder factory may use (each uses only its own).

    Attributes:
        context_features: context size ``C`` (encoders whose ``C`` is fixed ignore it).
        width: channels of the first stage (the small CNN).
        pretrained: a torchvision-layout weights file (ResNets; never downloaded).
    """

    context_features: int = 256
    width: int = 32
    pretrained: str | None = None


ImageEncoderFactory = Callable[[ImageEncoderSettings], nn.Module]

#: The registered image encoders, by name.
IMAGE_ENCODERS: dict[str, ImageEncoderFactory] = {
    "small_cnn": lambda s: SmallCNN(3, s.context_features, s.width),
    "resnet18": lambda s: ResNetEncoder(18, s.pretrained),
    "resnet34": lambda s: ResNetEncoder(34, s.pretrained),
    "resnet50": lambda s: ResNetEncoder(50, s.pretrained),
}


def register_image_encoder(name: str, factory: ImageEncoderFactory) -> None:
    """Make ``name`` build ``factory(settings)``; ``ValueError`` if ``name`` is taken."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"name: expected a non-empty string, got {name!r}")
    if name in IMAGE_ENCODERS:
        raise ValueError(f"name: image encoder {name!r} is already registered")
    if not callable(factory):
        raise ValueError(f"factory: expected a callable, got {type(factory).__name__}")
    IMAGE_ENCODERS[name] = factory


def build_image_encoder(
    name: str, settings: ImageEncoderSettings, where: str = "model.encoder"
) -> nn.Module:
    """The image encoder registered as ``name``; ``ValueError`` naming ``where`` (the
    config key) for an unknown name."""
    if name not in IMAGE_ENCODERS:
        known = ", ".join(repr(k) for k in IMAGE_ENCODERS)
        raise ValueError(f"{where}: expected one of {known}, got {name!r}")
    return IMAGE_ENCODERS[name](settings)
