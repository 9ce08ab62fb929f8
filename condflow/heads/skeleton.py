"""Skeleton head: encoder → c → p(root-relative 3D joints | c), in millimetres."""

from __future__ import annotations

from typing import Any, ClassVar, cast

import torch
from torch import Tensor, nn

from condflow._recipe import Recorded
from condflow.bijectors import Compose, CouplingNet, FixedAffine
from condflow.body.camera import pinhole_translation
from condflow.flow import ConditionalFlow, ConditionalGlow
from condflow.heads.base import (
    Head,
    HeadAdapter,
    RegressionHead,
    SkeletonPrediction,
    encoder_context_features,
)
from condflow.spaces.base import OutputSpace
from condflow.spaces.skeleton import H36M_17_TO_16

__all__ = ["SkeletonAdapter", "SkeletonHead", "SkeletonRegressionHead"]


class _SkeletonOutputs:
    """What both joint-space heads share: predictions, export names and units."""

    mode_outputs: ClassVar[tuple[str, ...]] = ("joints",)
    sample_outputs: ClassVar[tuple[str, ...]] = ("joints",)
    space: OutputSpace
    encoder: nn.Module

    output_units: dict[str, str]

    def _set_space(self, space: OutputSpace) -> None:
        self.space = space
        names = space.joint_names
        self.output_units = {
            "joints": f"{space.units}, {len(names)} joints ({', '.join(names)}), "
            "root-relative, camera frame",
            "log_prob": f"nats, log density over the joint coordinates in {space.units}",
        }

    def predict(self, features: Tensor, context: Tensor, log_prob: Tensor | None = None
                ) -> SkeletonPrediction:
        """Joints ``[B, n, J, 3]`` (mm) of features ``[B, n, d]``."""
        return SkeletonPrediction(self.space.to_native(features), log_prob)


class SkeletonHead(_SkeletonOutputs, Recorded, Head):
    """A conditional Glow over the features of a joint space (e.g. a
    :class:`~condflow.spaces.SkeletonSpace`: d = 3J, or 3(J−1)
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

    def __init__(
        self,
        encoder: nn.Module,
        space: OutputSpace,
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
        context_features = encoder_context_features(encoder, context_features)
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
        self._set_space(space)
        self.flow = ConditionalFlow(
            Compose([glow.bijector, FixedAffine(mean, std)]), d, context_features
        )

    @property
    def standardization(self) -> FixedAffine:
        """The fixed affine map from standardized features to millimetres (the flow's last
        generative step)."""
        # Known by construction: __init__ composes the Glow with this FixedAffine last.
        return cast(FixedAffine, cast(Compose, self.flow.bijector).bijectors[-1])

    @property
    def log_scale(self) -> Tensor:
        return self.standardization.scale.log().sum()

    def fitting_adapter(self, **kwargs: Any) -> SkeletonAdapter:
        """:class:`SkeletonAdapter` (``kwargs``: its ``focal``, ``keypoint_joints``, ...)."""
        return SkeletonAdapter(self, **kwargs)


class SkeletonRegressionHead(_SkeletonOutputs, Recorded, RegressionHead):
    """The deterministic baseline: the same encoder regressing the skeleton directly.

    ``encoder`` must output ``space.dim`` standardized features (e.g. an ``MLPLifter`` with
    ``out_features=space.dim``); ``mean``/``std`` map them to millimetres.
    """

    def __init__(
        self,
        encoder: nn.Module,
        space: OutputSpace,
        mean: Tensor | None = None,
        std: Tensor | None = None,
    ) -> None:
        super().__init__()
        d = space.dim
        if encoder.out_features != d:
            raise ValueError(f"encoder: expected out_features == {d}, got {encoder.out_features}")
        self.encoder = encoder
        self._set_space(space)
        self.standardization = FixedAffine(
            torch.zeros(d) if mean is None else mean, torch.ones(d) if std is None else std
        )

    def regress(self, context: Tensor) -> Tensor:
        """The encoder's output ``[B, d]`` (standardized features) → features in mm."""
        return self.standardization(context)[0]


class SkeletonAdapter(HeadAdapter):
    """Skeleton head: root-relative joints (mm) plus a root translation T ``[B, 3]`` (metres,
    camera frame; fitted as ``offset``/``log_depth``, see :meth:`initial_extras`), seen by a
    pinhole camera with the principal point at the origin of the normalized screen
    coordinates.

    Args:
        head: a :class:`SkeletonHead` over a 17-joint Human3.6M skeleton (camera frame).
        focal: normalized focal length ``2 · focal_px / image_size`` (2.0 for the synthetic
            lifting set: 1000 px at 1000 px).
        keypoint_joints: which of the head's joints the K observed keypoints are
            (default the 16 Human3.6M joints without the nose, ``H36M_17_TO_16``).
        min_depth: depths are clamped to at least this (metres) before dividing.
    """

    head: SkeletonHead

    def __init__(
        self,
        head: SkeletonHead,
        focal: float = 2.0,
        keypoint_joints: tuple[int, ...] = H36M_17_TO_16,
        min_depth: float = 0.05,
    ) -> None:
        if not isinstance(head, SkeletonHead):
            raise ValueError(f"head: expected a SkeletonHead, got {type(head).__name__}")
        if not focal > 0:
            raise ValueError(f"focal: expected a positive number, got {focal!r}")
        self.head = head
        self.focal = float(focal)
        self.keypoint_joints = list(keypoint_joints)
        self.num_keypoints = len(self.keypoint_joints)
        self.min_depth = float(min_depth)

    def joints_mm(self, theta: Tensor) -> Tensor:
        """θ ``[B, d]`` → root-relative joints ``[B, J, 3]`` in millimetres."""
        return self.head.space.to_native(theta)

    def initial_extras(self, theta: Tensor, context: Tensor, keypoints: Tensor
                       ) -> dict[str, Tensor]:
        """The root translation by least squares (:func:`pinhole_translation`) for the joints
        ``theta``, as ``offset [B, 2]`` (the root's image position f·T_xy/T_z) and
        ``log_depth [B, 1]`` (log T_z): a well-scaled parametrization with T_z > 0."""
        points = self.joints_mm(theta)[:, self.keypoint_joints] / 1000.0
        return self.from_translation(pinhole_translation(points, keypoints, self.focal))

    def from_translation(self, transl: Tensor) -> dict[str, Tensor]:
        """Translation ``[B, 3]`` (T_z > 0) → extras ``{offset, log_depth}``."""
        depth = transl[:, 2:]
        return {"offset": self.focal * transl[:, :2] / depth, "log_depth": depth.log()}

    def translation(self, extras: dict[str, Tensor]) -> Tensor:
        """Extras → root translation T ``[B, 3]`` (metres, camera frame)."""
        depth = extras["log_depth"].exp()
        return torch.cat([extras["offset"] * depth / self.focal, depth], 1)

    def camera_points(self, theta: Tensor, extras: dict[str, Tensor]) -> Tensor:
        """Joints in the camera frame ``[B, J, 3]`` (metres)."""
        return self.joints_mm(theta) / 1000.0 + self.translation(extras)[:, None]

    def project(self, theta: Tensor, extras: dict[str, Tensor]) -> Tensor:
        p = self.camera_points(theta, extras)[:, self.keypoint_joints]
        return self.focal * p[..., :2] / p[..., 2:].clamp_min(self.min_depth)

    def outputs(self, theta: Tensor, extras: dict[str, Tensor]) -> dict[str, Tensor]:
        return {"joints_mm": self.joints_mm(theta), "transl": self.translation(extras)}
