"""The skeleton space: J 3D joints flattened to 3J root-relative features.

A ``SkeletonLayout`` names the joints, their kinematic tree, the left/right flip permutation
and the root (one joint, or several whose mean is the root, e.g. the two hips).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from condflow._checks import check_trailing
from condflow._recipe import Recorded
from condflow.joints import H36M_17_TO_16, H36M_JOINT_NAMES, H36M_PARENTS, H36M_TO_J14, J14_HIPS

__all__ = [
    "H36M_16",
    "H36M_17",
    "H36M_17_TO_16",
    "H36M_TO_J14",
    "LSP_14",
    "SkeletonLayout",
    "SkeletonSpace",
    "flip_joints",
]


@dataclass(frozen=True)
class SkeletonLayout:
    """Joint order of a skeleton.

    Attributes:
        name: short identifier, e.g. ``"h36m_17"``.
        joint_names: one name per joint.
        parents: parent index of each joint, ``-1`` for a root (forests are allowed).
        flip_perm: ``flip_perm[j]`` is the mirror-image joint of ``j`` (an involution).
        root: joints whose mean position is the root of root-relative coordinates.
    """

    name: str
    joint_names: tuple[str, ...]
    parents: tuple[int, ...]
    flip_perm: tuple[int, ...]
    root: tuple[int, ...] = (0,)

    def __post_init__(self) -> None:
        n = len(self.joint_names)
        if len(self.parents) != n or len(self.flip_perm) != n:
            raise ValueError(
                f"SkeletonLayout {self.name!r}: joint_names, parents and flip_perm must have "
                f"equal lengths, got {n}, {len(self.parents)}, {len(self.flip_perm)}"
            )
        if any(not -1 <= p < n or p == j for j, p in enumerate(self.parents)):
            raise ValueError(
                f"SkeletonLayout {self.name!r}: parents must lie in [-1, {n}) "
                f"and differ from the joint, got {self.parents}"
            )
        if sorted(self.flip_perm) != list(range(n)) or any(
            self.flip_perm[self.flip_perm[j]] != j for j in range(n)
        ):
            raise ValueError(
                f"SkeletonLayout {self.name!r}: flip_perm must be a permutation "
                f"that is its own inverse, got {self.flip_perm}"
            )
        if not self.root or any(not 0 <= r < n for r in self.root):
            raise ValueError(
                f"SkeletonLayout {self.name!r}: root must be non-empty joint "
                f"indices in [0, {n}), got {self.root}"
            )

    @property
    def num_joints(self) -> int:
        """Number of joints J."""
        return len(self.joint_names)

    def subset(
        self, indices: Sequence[int], name: str, root: Sequence[int] | None = None
    ) -> SkeletonLayout:
        """Layout of the joints ``indices`` (in that order).

        A joint's parent becomes its nearest ancestor inside the subset (``-1`` if none). The
        subset must be closed under flipping. ``root`` (indices into the subset) defaults to
        this layout's root, which must then lie in the subset.
        """
        index = {old: new for new, old in enumerate(indices)}
        if len(index) != len(indices) or any(not 0 <= i < self.num_joints for i in indices):
            raise ValueError(f"indices: expected distinct joints of {self.name!r}, got {indices}")
        parents = []
        for old in indices:
            p = self.parents[old]
            while p != -1 and p not in index:
                p = self.parents[p]
            parents.append(index.get(p, -1))
        if any(self.flip_perm[i] not in index for i in indices):
            raise ValueError(f"indices: the subset of {self.name!r} is not closed under flipping")
        flip_perm = tuple(index[self.flip_perm[i]] for i in indices)
        if root is None:
            if any(r not in index for r in self.root):
                raise ValueError(f"root: required because the root of {self.name!r} is dropped")
            root = [index[r] for r in self.root]
        return SkeletonLayout(
            name=name,
            joint_names=tuple(self.joint_names[i] for i in indices),
            parents=tuple(parents),
            flip_perm=flip_perm,
            root=tuple(root),
        )


# Human3.6M, 17 joints in the VideoPose3D order.
H36M_17 = SkeletonLayout(
    name="h36m_17",
    joint_names=H36M_JOINT_NAMES,
    parents=H36M_PARENTS,
    flip_perm=(0, 4, 5, 6, 1, 2, 3, 7, 8, 9, 10, 14, 15, 16, 11, 12, 13),
)

# H36M_17 without the nose, the 16-joint skeleton of 2D-to-3D lifting.
H36M_16 = H36M_17.subset(H36M_17_TO_16, name="h36m_16")

# The 14-joint LSP evaluation subset of SPIN/ProHMR. Names follow H36M_17; the root is the
# mid-hip, the mean of the two hips.
LSP_14 = H36M_17.subset(H36M_TO_J14, name="lsp_14", root=J14_HIPS)


def flip_joints(joints: Tensor, layout: SkeletonLayout) -> Tensor:
    """Mirror joints ``[..., J, 3]`` left/right: negate x and swap left and right joints."""
    check_trailing("joints", joints, (layout.num_joints, 3), finite=False)
    sign = torch.tensor([-1.0, 1.0, 1.0], dtype=joints.dtype, device=joints.device)
    return joints[..., list(layout.flip_perm), :] * sign


class SkeletonSpace(Recorded):
    """Root-relative 3D joints ``[..., J, 3]`` flattened to features ``[..., 3J]``.

    With ``drop_root=True`` (single-joint roots only) the root joint, identically zero in
    root-relative coordinates, is left out, giving ``3(J - 1)`` features; a density model then
    has no degenerate dimensions. Methods check their input's trailing shape and finiteness.
    """

    def __init__(self, layout: SkeletonLayout = H36M_17, drop_root: bool = False) -> None:
        if not isinstance(layout, SkeletonLayout):
            raise ValueError(f"layout: expected a SkeletonLayout, got {type(layout).__name__}")
        if drop_root and len(layout.root) != 1:
            raise ValueError(
                f"drop_root: needs a single root joint, {layout.name!r} has root {layout.root}"
            )
        self.layout = layout
        self.drop_root = bool(drop_root)
        keep = [j for j in range(layout.num_joints) if not (drop_root and j == layout.root[0])]
        self._keep = keep

    def __repr__(self) -> str:
        return f"SkeletonSpace(layout={self.layout.name!r}, drop_root={self.drop_root})"

    @property
    def num_joints(self) -> int:
        """Number of joints J of the layout."""
        return self.layout.num_joints

    @property
    def dim(self) -> int:
        """Number of features: 3J, or 3(J - 1) with ``drop_root``."""
        return 3 * len(self._keep)

    @property
    def joint_names(self) -> tuple[str, ...]:
        return self.layout.joint_names

    @property
    def parents(self) -> tuple[int, ...]:
        return self.layout.parents

    def root_relative(self, joints: Tensor) -> Tensor:
        """Subtract the root position from joints ``[..., J, 3]``; returns ``[..., J, 3]``."""
        check_trailing("joints", joints, (self.num_joints, 3))
        root = joints[..., list(self.layout.root), :].mean(dim=-2, keepdim=True)
        return joints - root

    def from_joints(self, joints: Tensor, root_relative: bool = True) -> Tensor:
        """Joints ``[..., J, 3]`` to features ``[..., dim]`` (made root-relative by default)."""
        check_trailing("joints", joints, (self.num_joints, 3))
        if self.drop_root and not root_relative:
            raise ValueError("root_relative: must be True when the space drops the root joint")
        if root_relative:
            joints = self.root_relative(joints)
        if self.drop_root:
            joints = joints[..., self._keep, :]
        return joints.reshape(*joints.shape[:-2], self.dim)

    def to_joints(self, x: Tensor) -> Tensor:
        """Features ``[..., dim]`` to joints ``[..., J, 3]`` (a dropped root comes back as 0)."""
        check_trailing("x", x, (self.dim,))
        joints = x.reshape(*x.shape[:-1], len(self._keep), 3)
        if self.drop_root:
            r = self.layout.root[0]
            zero = joints.new_zeros(*joints.shape[:-2], 1, 3)
            joints = torch.cat([joints[..., :r, :], zero, joints[..., r:, :]], dim=-2)
        return joints

    def flip(self, joints: Tensor) -> Tensor:
        """Mirror joints ``[..., J, 3]`` left/right (see ``flip_joints``)."""
        return flip_joints(joints, self.layout)

    # -- the OutputSpace protocol (condflow.spaces.base) -----------------------------------
    units = "millimetres, root-relative"

    @property
    def native_shape(self) -> tuple[int, ...]:
        """``(J, 3)``: root-relative joints."""
        return (self.num_joints, 3)

    def to_native(self, x: Tensor) -> Tensor:
        """:meth:`to_joints`."""
        return self.to_joints(x)

    def from_native(self, native: Tensor) -> Tensor:
        """:meth:`from_joints` (made root-relative)."""
        return self.from_joints(native)
