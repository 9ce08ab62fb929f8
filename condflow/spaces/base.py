"""The output-space protocol: what a flow's d features mean.

An output space maps the flow's features ``x [..., d]`` to a *native* representation that
people use, and back:

    x [..., d]  ──to_native──▶  native [..., *native_shape]  ──from_native──▶  x [..., d]

``from_native(to_native(x)) == x`` on the space's image (for the SMPL 6D space: up to the
Gram-Schmidt projection of raw 6D features onto rotations). Heads compose an encoder, a
flow over ``space.dim`` features and a space; nothing else needs to know which space it is.
Implemented by :class:`~condflow.spaces.skeleton.SkeletonSpace` (native: root-relative joints
``[..., J, 3]`` in millimetres) and :class:`~condflow.spaces.smpl_pose.SMPLPoseSpace`
(native: rotation matrices ``[..., 24, 3, 3]``).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from torch import Tensor

__all__ = ["OutputSpace"]


@runtime_checkable
class OutputSpace(Protocol):
    """What every output space provides (see the module docstring)."""

    @property
    def dim(self) -> int:
        """d, the number of features the flow models."""
        ...

    @property
    def native_shape(self) -> tuple[int, ...]:
        """Trailing shape of the native representation, e.g. ``(17, 3)`` or ``(24, 3, 3)``."""
        ...

    @property
    def joint_names(self) -> tuple[str, ...]:
        """One name per joint (the leading axis of ``native_shape``)."""
        ...

    @property
    def parents(self) -> tuple[int, ...]:
        """Kinematic tree: the parent of each joint, ``-1`` for a root."""
        ...

    @property
    def units(self) -> str:
        """Unit of the native representation, in words (e.g. ``"millimetres"``)."""
        ...

    def to_native(self, x: Tensor) -> Tensor:
        """Features ``[..., d]`` → native ``[..., *native_shape]``."""
        ...

    def from_native(self, native: Tensor) -> Tensor:
        """Native ``[..., *native_shape]`` → features ``[..., d]``."""
        ...
