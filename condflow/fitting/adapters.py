"""Head adapters: how a head's output θ (plus per-example extras) becomes 2D keypoints.

The interface is :class:`condflow.heads.base.HeadAdapter`; every head makes its own with
:meth:`~condflow.heads.base.Head.fitting_adapter` (:class:`SkeletonAdapter` for skeleton
heads, :class:`SMPLAdapter` for ProHMR heads). The fitting code takes a head or an adapter.
"""

from __future__ import annotations

from torch import nn

from condflow.body.camera import pinhole_translation
from condflow.heads.base import HeadAdapter, as_head
from condflow.heads.prohmr import SMPLAdapter
from condflow.heads.skeleton import SkeletonAdapter

__all__ = [
    "HeadAdapter",
    "SMPLAdapter",
    "SkeletonAdapter",
    "make_adapter",
    "pinhole_translation",
]


def make_adapter(head: nn.Module | HeadAdapter, **kwargs: object) -> HeadAdapter:
    """The adapter of a head (an adapter is returned as it is); ``kwargs`` go to the
    adapter's constructor (e.g. ``focal`` for a skeleton head)."""
    if isinstance(head, HeadAdapter):
        return head
    return as_head(head, "head: cannot fit with a").fitting_adapter(**kwargs)
