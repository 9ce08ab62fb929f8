"""ResNet-18/34/50 with torchvision's exact ``state_dict`` layout.

The modules are named exactly as in ``torchvision.models.resnet`` (``conv1``, ``bn1``,
``layer1`` .. ``layer4`` made of ``BasicBlock`` / ``Bottleneck`` with ``conv1``/``bn1``/...
and ``downsample.0``/``downsample.1``, ``fc``), so an ImageNet checkpoint saved from
torchvision loads unchanged. torchvision itself is not required.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor, nn

from condflow._checks import check_tensor

__all__ = [
    "BasicBlock",
    "Bottleneck",
    "ResNet",
    "ResNetEncoder",
    "load_torchvision_state_dict",
    "resnet18",
    "resnet34",
    "resnet50",
]

def _conv3x3(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)


def _conv1x1(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with an identity (or projected) skip; ResNet-18/34."""

    expansion = 1

    def __init__(
        self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None
    ) -> None:
        super().__init__()
        self.conv1 = _conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = _conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """1x1 → 3x3 (strided, "ResNet v1.5") → 1x1 bottleneck with skip; ResNet-50."""

    expansion = 4

    def __init__(
        self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None
    ) -> None:
        super().__init__()
        self.conv1 = _conv1x1(inplanes, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = _conv3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = _conv1x1(planes, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


_DEPTHS: dict[int, tuple[type[BasicBlock] | type[Bottleneck], tuple[int, int, int, int]]] = {
    18: (BasicBlock, (2, 2, 2, 2)),
    34: (BasicBlock, (3, 4, 6, 3)),
    50: (Bottleneck, (3, 4, 6, 3)),
}


class ResNet(nn.Module):
    """ResNet in torchvision's layout.

    Args:
        depth: 18, 34 or 50.
        num_classes: size of the final ``fc`` layer; ``None`` builds no ``fc`` and
            ``forward`` returns the pooled features.

    ``forward``: images ``[B, 3, H, W]`` → logits ``[B, num_classes]`` (or features
    ``[B, out_features]`` when ``num_classes is None``).
    """

    input_kind = "images"  # what it reads (condflow.inputs)

    def __init__(self, depth: int = 50, num_classes: int | None = 1000) -> None:
        super().__init__()
        if depth not in _DEPTHS:
            raise ValueError(f"depth: expected one of {sorted(_DEPTHS)}, got {depth!r}")
        block, layers = _DEPTHS[depth]
        self.depth = depth
        self._inplanes = 64
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, 64, layers[0])
        self.layer2 = self._make_layer(block, 128, layers[1], stride=2)
        self.layer3 = self._make_layer(block, 256, layers[2], stride=2)
        self.layer4 = self._make_layer(block, 512, layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.out_features = 512 * block.expansion
        self.fc = nn.Linear(self.out_features, num_classes) if num_classes is not None else None

        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def _make_layer(
        self,
        block: type[BasicBlock] | type[Bottleneck],
        planes: int,
        num_residual_blocks: int,
        stride: int = 1,
    ) -> nn.Sequential:
        downsample = None
        if stride != 1 or self._inplanes != planes * block.expansion:
            downsample = nn.Sequential(
                _conv1x1(self._inplanes, planes * block.expansion, stride),
                nn.BatchNorm2d(planes * block.expansion),
            )
        blocks = [block(self._inplanes, planes, stride, downsample)]
        self._inplanes = planes * block.expansion
        blocks += [block(self._inplanes, planes) for _ in range(1, num_residual_blocks)]
        return nn.Sequential(*blocks)

    def features(self, images: Tensor) -> Tensor:
        """Global-average-pooled features: ``[B, 3, H, W]`` → ``[B, out_features]``."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(images))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return torch.flatten(self.avgpool(x), 1)

    def forward(self, images: Tensor) -> Tensor:
        check_tensor("images", images, ("B", 3, None, None), finite=False)
        x = self.features(images)
        return x if self.fc is None else self.fc(x)


class ResNetEncoder(ResNet):
    """ResNet context encoder: images ``[B, 3, H, W]`` (ImageNet-normalized) → context ``[B, C]``.

    ``C = out_features`` is 2048 for depth 50 and 512 for depths 18/34. The module has no
    ``fc``; its ``state_dict`` keys are torchvision's minus ``fc.*``, and ``pretrained_path``
    may point to a full torchvision checkpoint (its ``fc.*`` entries are ignored).
    """

    def __init__(self, depth: int = 50, pretrained_path: str | Path | None = None) -> None:
        super().__init__(depth=depth, num_classes=None)
        if pretrained_path is not None:
            load_torchvision_state_dict(self, pretrained_path)


def load_torchvision_state_dict(
    model: ResNet, state_dict: str | Path | Mapping[str, Tensor]
) -> None:
    """Load a torchvision-layout ResNet ``state_dict`` (a file or a mapping) into ``model``.

    Files are read with ``torch.load(weights_only=True)``. ``fc.*`` entries are skipped when
    ``model`` has no ``fc``; missing ``num_batches_tracked`` buffers (old checkpoints) are
    allowed. Any other missing or unexpected key, or any shape mismatch, raises ``ValueError``.
    """
    if isinstance(state_dict, str | Path):
        path = Path(state_dict)
        if not path.is_file():
            raise FileNotFoundError(f"pretrained_path: no such file: {path}")
        state_dict = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state_dict, Mapping):
        raise ValueError(
            f"state_dict: expected a mapping of tensor names to tensors, "
            f"got {type(state_dict).__name__}"
        )
    own = model.state_dict()
    given = {k: v for k, v in state_dict.items() if not (model.fc is None and k.startswith("fc."))}
    missing = [k for k in own if k not in given and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in given if k not in own]
    if missing or unexpected:
        raise ValueError(
            f"state_dict: does not match torchvision resnet{model.depth} layout; "
            f"missing keys {missing[:5]}{' ...' if len(missing) > 5 else ''}, "
            f"unexpected keys {unexpected[:5]}{' ...' if len(unexpected) > 5 else ''}"
        )
    for k, v in given.items():
        if not isinstance(v, Tensor):
            raise ValueError(f"state_dict: entry {k!r} is not a tensor ({type(v).__name__})")
        if v.shape != own[k].shape:
            raise ValueError(
                f"state_dict: entry {k!r} has shape {list(v.shape)}, expected "
                f"{list(own[k].shape)} for resnet{model.depth}"
            )
    for k in own:
        if k not in given:  # a num_batches_tracked buffer absent from an old checkpoint
            given[k] = torch.zeros_like(own[k])
    model.load_state_dict(given, strict=True)


def _build(depth: int, pretrained_path: str | Path | None, num_classes: int | None) -> ResNet:
    model = ResNet(depth=depth, num_classes=num_classes)
    if pretrained_path is not None:
        load_torchvision_state_dict(model, pretrained_path)
    return model


def resnet18(pretrained_path: str | Path | None = None, num_classes: int | None = 1000) -> ResNet:
    """ResNet-18 (11,689,512 parameters with the 1000-way ``fc``), optionally loaded."""
    return _build(18, pretrained_path, num_classes)


def resnet34(pretrained_path: str | Path | None = None, num_classes: int | None = 1000) -> ResNet:
    """ResNet-34 (21,797,672 parameters with the 1000-way ``fc``), optionally loaded."""
    return _build(34, pretrained_path, num_classes)


def resnet50(pretrained_path: str | Path | None = None, num_classes: int | None = 1000) -> ResNet:
    """ResNet-50 (25,557,032 parameters with the 1000-way ``fc``), optionally loaded."""
    return _build(50, pretrained_path, num_classes)
