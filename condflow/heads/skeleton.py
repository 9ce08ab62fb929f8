"""Skeleton head: encoder → c → p(root-relative 3D joints | c), in millimetres."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from condflow._checks import check_module_dtype
from condflow._recipe import Recorded
from condflow.bijectors import Compose, CouplingNet, FixedAffine
from condflow.flow import ConditionalFlow, ConditionalGlow
from condflow.spaces.skeleton import SkeletonSpace


class SkeletonHead(Recorded, nn.Module):
    """A conditional Glow over the features of a :class:`SkeletonSpace` (d = 3J, or 3(J−1)
    with the root dropped), conditioned on ``c = encoder(inputs)``.

    The flow runs on standardized features; a fixed affine map (``mean``/``std`` of the
    training targets, saved in the ``state_dict``) is its last generative step, so
    ``log_prob`` is an exact density over joints in millimetres and ``mode`` is exact.
    The Glow has ``num_blocks`` blocks, with coupling nets of shape ``coupling_net``
    (:class:`~condflow.bijectors.CouplingNet`). ``conditional_volume`` gives every Glow block
    a context-dependent elementwise affine map (:class:`~condflow.bijectors.ConditionalAffine`),
    so the density's volume — and log p(mode | c) — follow the input.

    Shapes: ``inputs`` whatever the encoder takes (e.g. 2D keypoints ``[B, J2, 3]``);
    ``context`` ``[B, C]``; joints ``[B, J, 3]`` or ``[B, n, J, 3]``.
    """

    #: A density over outputs: ``sample``/``log_prob``/``mode`` exist.
    probabilistic = True
    #: What ``forward`` returns, as pictures and tables name it.
    point_label = "mode f(0; c)"

    def __init__(
        self,
        encoder: nn.Module,
        space: SkeletonSpace,
        context_features: int | None = None,
        mean: Tensor | None = None,
        std: Tensor | None = None,
        num_blocks: int = 4,
        *,
        coupling_net: CouplingNet = CouplingNet(),
        conditional_volume: bool = False,
        volume_hidden: int = 128,
    ) -> None:
        super().__init__()
        d = space.dim
        context_features = context_features or encoder.out_features
        glow = ConditionalGlow(
            d,
            context_features,
            num_blocks,
            coupling_net=coupling_net,
            conditional_volume=conditional_volume,
            volume_hidden=volume_hidden,
        )
        mean = torch.zeros(d) if mean is None else mean
        std = torch.ones(d) if std is None else std
        self.encoder = encoder
        self.space = space
        self.flow = ConditionalFlow(
            Compose([glow.bijector, FixedAffine(mean, std)]), d, context_features
        )

    @property
    def standardization(self) -> FixedAffine:
        return self.flow.bijector.bijectors[-1]

    def context(self, inputs: Tensor) -> Tensor:
        """c = encoder(inputs): ``[B, C]``."""
        return self.encoder(check_module_dtype("inputs", inputs, self))

    def log_prob(self, joints: Tensor, context: Tensor) -> Tensor:
        """log p(joints | c) in mm⁻ᵈ: ``[B, J, 3] -> [B]`` or ``[B, n, J, 3] -> [B, n]``."""
        return self.flow.log_prob(self.space.from_joints(joints), context)

    def sample(
        self, num_samples: int, context: Tensor, generator: torch.Generator | None = None
    ) -> Tensor:
        """``[B, C] -> [B, n, J, 3]``."""
        return self.space.to_joints(self.flow.sample(num_samples, context, generator))

    def sample_and_log_prob(
        self, num_samples: int, context: Tensor, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor]:
        """Joints ``[B, n, J, 3]`` and their log-densities ``[B, n]``."""
        x, log_prob = self.flow.sample_and_log_prob(num_samples, context, generator)
        return self.space.to_joints(x), log_prob

    def mode(self, context: Tensor) -> Tensor:
        """The most likely skeleton f(0; c): ``[B, C] -> [B, J, 3]``."""
        return self.space.to_joints(self.flow.mode(context))

    def forward(self, inputs: Tensor) -> Tensor:
        """Mode prediction from raw inputs: ``[B, J, 3]`` (the deterministic predictor)."""
        return self.mode(self.context(inputs))


class SkeletonRegressionHead(Recorded, nn.Module):
    """The deterministic baseline: the same encoder regressing the skeleton directly.

    ``encoder`` must output ``space.dim`` standardized features (e.g. an ``MLPLifter`` with
    ``out_features=space.dim``); ``mean``/``std`` map them to millimetres.
    """

    #: A single prediction, no density.
    probabilistic = False
    point_label = "regression"

    def __init__(
        self,
        encoder: nn.Module,
        space: SkeletonSpace,
        mean: Tensor | None = None,
        std: Tensor | None = None,
    ) -> None:
        super().__init__()
        d = space.dim
        if encoder.out_features != d:
            raise ValueError(f"encoder: expected out_features == {d}, got {encoder.out_features}")
        self.encoder = encoder
        self.space = space
        self.standardization = FixedAffine(
            torch.zeros(d) if mean is None else mean, torch.ones(d) if std is None else std
        )

    def forward(self, inputs: Tensor) -> Tensor:
        """``inputs -> [B, J, 3]`` in millimetres."""
        inputs = check_module_dtype("inputs", inputs, self)
        return self.space.to_joints(self.standardization(self.encoder(inputs))[0])
