"""Residual MLP lifter of Martinez et al. (2017): normalized 2D keypoints → context (or 3D)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from condflow._checks import check_int, check_positive_int, check_tensor
from condflow._norms import Norm, make_norm, norm_name
from condflow._recipe import Recorded

__all__ = ["MLPLifter"]


def _linear_norm_relu_dropout(
    in_features: int, out_features: int, dropout: float, norm: Norm
) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(in_features, out_features),
        make_norm(norm, out_features),
        nn.ReLU(inplace=True),
        nn.Dropout(dropout),
    )


class _ResidualBlock(nn.Module):
    """``x + f(x)`` with ``f`` two (Linear, norm, ReLU, Dropout) layers."""

    def __init__(self, hidden: int, dropout: float, norm: Norm) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            _linear_norm_relu_dropout(hidden, hidden, dropout, norm),
            _linear_norm_relu_dropout(hidden, hidden, dropout, norm),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.layers(x)


class MLPLifter(Recorded, nn.Module):
    """Martinez et al. residual MLP over 2D keypoints.

    ``Linear → BN → ReLU → Dropout`` to ``hidden`` (BN: the normalization ``batch_norm``), then
    ``num_residual_blocks`` residual blocks of two such layers each. With ``out_features=None``
    the output is the context ``c`` ``[B, hidden]``; with ``out_features=d`` a final ``Linear``
    maps to ``[B, d]`` (the deterministic regression baseline, e.g. ``d = 3·J`` for direct 3D
    output).

    Args:
        num_joints: number of keypoints ``J``.
        in_channels: 2 for ``(x, y)``, 3 for ``(x, y, confidence)``. A confidence of 0 marks an
            occluded joint: its coordinates are zeroed (even if NaN) before the first layer.
        hidden: width of the hidden layers.
        num_residual_blocks: number of residual blocks.
        dropout: dropout probability (0.5, Martinez et al.'s; the lifting task sets its
            ``model.lifter_dropout``, default 0: dropout in ``c`` widens a flow's density).
        out_features: optional output size of a final linear layer.
        batch_norm: normalization after each hidden linear layer: ``"batch"`` / ``True``
            (batch norm, Martinez et al.), ``"layer"`` (LayerNorm, per row) or ``"none"`` /
            ``False``; the last two make every example independent of its batch.

    ``forward``: keypoints ``[B, J, in_channels]`` or ``[B, J·in_channels]`` →
    ``[B, out_features]``.
    """

    input_kind = "keypoints_2d"  # what it reads (condflow.inputs)

    def __init__(
        self,
        num_joints: int = 16,
        in_channels: int = 2,
        hidden: int = 1024,
        num_residual_blocks: int = 2,
        dropout: float = 0.5,
        out_features: int | None = None,
        batch_norm: bool | str = True,
    ) -> None:
        super().__init__()
        check_positive_int("num_joints", num_joints)
        if in_channels not in (2, 3):
            raise ValueError(f"in_channels: expected 2 or 3, got {in_channels!r}")
        check_positive_int("hidden", hidden)
        check_int("num_residual_blocks", num_residual_blocks, 0)
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout: expected a probability in [0, 1), got {dropout!r}")
        if out_features is not None:
            check_positive_int("out_features", out_features)
        norm = norm_name(batch_norm)
        self.num_joints = num_joints
        self.in_channels = in_channels
        self.hidden = hidden
        self.out_features = hidden if out_features is None else out_features

        self.input_layer = _linear_norm_relu_dropout(
            num_joints * in_channels, hidden, dropout, norm
        )
        self.blocks = nn.Sequential(
            *[_ResidualBlock(hidden, dropout, norm) for _ in range(num_residual_blocks)]
        )
        self.output_layer = nn.Linear(hidden, out_features) if out_features is not None else None

    def forward(self, keypoints: Tensor) -> Tensor:
        j, c = self.num_joints, self.in_channels
        if keypoints.dim() == 2:
            check_tensor("keypoints", keypoints, ("B", j * c), finite=False)
            keypoints = keypoints.reshape(-1, j, c)
        else:
            check_tensor("keypoints", keypoints, ("B", j, c), finite=False)
        if c == 3:
            visible = keypoints[..., 2:] > 0
            coords = torch.where(visible, keypoints[..., :2], torch.zeros_like(keypoints[..., :2]))
            keypoints = torch.cat([coords, keypoints[..., 2:]], dim=-1)
        x = self.blocks(self.input_layer(keypoints.flatten(1)))
        return x if self.output_layer is None else self.output_layer(x)
