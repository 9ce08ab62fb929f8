"""Heads join a context encoder, a conditional flow and an output space (and, for meshes, a
point head) behind one interface, :class:`Head` (:mod:`condflow.heads.base`)."""

from condflow.heads.base import (
    Head,
    HeadAdapter,
    NotProbabilisticError,
    Prediction,
    RegressionHead,
    SkeletonPrediction,
)
from condflow.heads.prohmr import ProHMRHead, ProHMRPrediction, ProHMRRegressionHead, SMPLAdapter
from condflow.heads.skeleton import SkeletonAdapter, SkeletonHead, SkeletonRegressionHead

__all__ = [
    "Head",
    "HeadAdapter",
    "NotProbabilisticError",
    "Prediction",
    "ProHMRHead",
    "ProHMRPrediction",
    "ProHMRRegressionHead",
    "RegressionHead",
    "SMPLAdapter",
    "SkeletonAdapter",
    "SkeletonHead",
    "SkeletonPrediction",
    "SkeletonRegressionHead",
]
