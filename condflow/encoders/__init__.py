"""Context encoders: images or 2D keypoints → context vector ``c`` ``[B, C]``."""

from condflow.encoders.mlp_lifter import MLPLifter
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
    "MLPLifter",
    "ResNet",
    "ResNetEncoder",
    "SmallCNN",
    "load_torchvision_state_dict",
    "resnet18",
    "resnet34",
    "resnet50",
]
