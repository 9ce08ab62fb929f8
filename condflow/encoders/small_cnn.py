"""A small, fast convolutional context encoder for CPU runs on 64–128 px crops."""

from __future__ import annotations

from torch import Tensor, nn

from condflow._checks import check_positive_int, check_tensor
from condflow._recipe import Recorded

__all__ = ["SmallCNN"]


class SmallCNN(Recorded, nn.Module):
    """Five stride-2 ``conv3x3 → BN → ReLU`` stages, global average pool and a linear layer.

    Channel widths are ``width·(1, 2, 4, 8, 8)``, so a 64 px crop reaches 2x2 before pooling.

    Args:
        in_channels: image channels.
        out_features: context size ``C``.
        width: channels of the first stage.

    ``forward``: images ``[B, in_channels, H, W]`` → context ``[B, C]``.
    """

    input_kind = "images"  # what it reads (condflow.inputs)

    def __init__(self, in_channels: int = 3, out_features: int = 256, width: int = 32) -> None:
        super().__init__()
        check_positive_int("in_channels", in_channels)
        check_positive_int("out_features", out_features)
        check_positive_int("width", width)
        self.in_channels = in_channels
        self.out_features = out_features
        channels = [in_channels] + [width * m for m in (1, 2, 4, 8, 8)]
        stages: list[nn.Module] = []
        for c_in, c_out in zip(channels[:-1], channels[1:], strict=True):
            stages += [
                nn.Conv2d(c_in, c_out, kernel_size=3, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(c_out),
                nn.ReLU(inplace=True),
            ]
        self.stages = nn.Sequential(*stages)
        self.fc = nn.Linear(channels[-1], out_features)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, images: Tensor) -> Tensor:
        check_tensor("images", images, ("B", self.in_channels, None, None), finite=False)
        return self.fc(self.stages(images).mean(dim=(2, 3)))
