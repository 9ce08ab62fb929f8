"""Output spaces by name: what a config's ``model.space`` selects.

Each name maps to a :class:`SpaceEntry`: the dataclass typing the space's settings (the keys
under ``model.space`` besides ``kind``), the *family* of heads that model it, and a factory
building the :class:`~condflow.spaces.base.OutputSpace` from the settings. Families:

- ``"joints"``: any space whose native representation is root-relative 3D joints
  ``[..., J, 3]`` in millimetres (a skeleton, a hand, an animal chain), modelled by a flow
  over its ``dim`` features and trained on the data's ``joints_3d``;
- ``"smpl"``: the SMPL pose in 6D with a point head for shape and camera (ProHMR), trained
  on SMPL parameters and 2D/3D keypoints.

:func:`register_space` adds a user's own (a ``"joints"`` space trains, evaluates, fits and
exports with no other code).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from condflow._checks import PositiveFloat, PositiveInt
from condflow._registry import Registry, check_settings_class
from condflow.spaces.base import OutputSpace
from condflow.spaces.skeleton import H36M_16, H36M_17, LSP_14, SkeletonLayout, SkeletonSpace
from condflow.spaces.smpl_pose import SMPLPoseSpace

__all__ = [
    "SKELETON_LAYOUTS",
    "SPACES",
    "SMPL6DSettings",
    "SkeletonSettings",
    "SpaceEntry",
    "build_space",
    "register_space",
]

#: Skeleton layouts by name (``model.space.layout``).
SKELETON_LAYOUTS: dict[str, SkeletonLayout] = {
    layout.name: layout for layout in (H36M_17, H36M_16, LSP_14)
}


@dataclass(frozen=True)
class SpaceEntry:
    """A registered output space: its settings dataclass, family and factory."""

    settings: type
    family: str
    factory: Callable[[Any], OutputSpace]


@dataclass
class SkeletonSettings:
    """A :class:`~condflow.spaces.SkeletonSpace` over a named layout."""

    layout: str = "h36m_17"  # one of SKELETON_LAYOUTS
    drop_root: bool = True  # leave out the root joint (zero in root-relative coordinates)


def _skeleton(s: SkeletonSettings) -> SkeletonSpace:
    if s.layout not in SKELETON_LAYOUTS:
        raise ValueError(f"model.space.layout: expected one of {sorted(SKELETON_LAYOUTS)}, "
                         f"got {s.layout!r}")
    return SkeletonSpace(SKELETON_LAYOUTS[s.layout], drop_root=s.drop_root)


@dataclass
class SMPL6DSettings:
    """The SMPL pose in 6D (144 features) and ProHMR's point head h(c) → (β, camera)."""

    point_hidden: PositiveInt = 1024  # hidden width of the MLP h(c) → (β, camera)
    # focal length in pixels at the data's crop size; None: the data's own camera
    focal_length: PositiveFloat | None = None
    # "prohmr": layout of ProHMR's checkpoints (import-prohmr)
    flow_convention: Literal["condflow", "prohmr"] = "condflow"


#: The registered output spaces, by name.
SPACES: Registry[SpaceEntry] = Registry("output space")
SPACES.register("skeleton", SpaceEntry(SkeletonSettings, "joints", _skeleton))
SPACES.register("smpl_6d", SpaceEntry(SMPL6DSettings, "smpl", lambda s: SMPLPoseSpace()))


def register_space(name: str, settings: type, factory: Callable[[Any], OutputSpace],
                   family: str = "joints", replace: bool = False) -> None:
    """Make ``model.space.kind: name`` build ``factory(settings_instance)``.

    Args:
        name: the name configs use.
        settings: a dataclass typing the space's config keys (an empty one if it has none).
        factory: builds the :class:`~condflow.spaces.base.OutputSpace`.
        family: ``"joints"`` (native: root-relative joints ``[..., J, 3]``, mm), ``"smpl"``,
            or the name of a user's own :class:`condflow.tasks.Task` (``register_task``).
        replace: replace a space already registered under ``name``.
    """
    check_settings_class(settings)
    if not isinstance(family, str) or not family:
        raise ValueError(f"family: expected a non-empty string, got {family!r}")
    if not callable(factory):
        raise ValueError(f"factory: expected a callable, got {type(factory).__name__}")
    SPACES.register(name, SpaceEntry(settings, family, factory), replace)


def build_space(kind: str, settings: Any, where: str = "model.space") -> OutputSpace:
    """The output space registered as ``kind``; ``ValueError`` naming ``where`` when unknown
    or when the factory's result is not an :class:`OutputSpace`."""
    space = SPACES.get(kind, f"{where}.kind").factory(settings)
    if not isinstance(space, OutputSpace):
        raise ValueError(f"{where}.kind: the {kind!r} factory built {type(space).__name__}, "
                         "not an OutputSpace (dim, native_shape, joint_names, parents, units, "
                         "to_native, from_native)")
    return space
