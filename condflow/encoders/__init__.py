"""Context encoders: images or 2D keypoints → context vector ``c`` ``[B, C]``."""

from condflow.encoders.mlp_lifter import MLPLifter
from condflow.encoders.registry import (
    ENCODERS,
    EncoderRequest,
    build_encoder,
    register_encoder,
)
from condflow.encoders.resnet import (
    ResNet,
    ResNetEncoder,
    load_torchvision_state_dict,
    resnet18,
    resnet34,
    resnet50,
)
from condflow.encoders.small_cnn import SmallCNN

__all__ = [
    "ENCODERS",
    "EncoderRequest",
    "MLPLifter",
    "ResNet",
    "ResNetEncoder",
    "SmallCNN",
    "build_encoder",
    "load_torchvision_state_dict",
    "register_encoder",
    "resnet18",
    "resnet34",
    "resnet50",
]
