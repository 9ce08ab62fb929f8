"""Heads join a conditional flow to an output space (and, for meshes, a point head)."""

from condflow.heads.skeleton import SkeletonHead, SkeletonRegressionHead

__all__ = ["SkeletonHead", "SkeletonRegressionHead"]

from condflow.heads.prohmr import ProHMRHead, ProHMRPrediction, ProHMRRegressionHead

__all__ += ["ProHMRHead", "ProHMRPrediction", "ProHMRRegressionHead"]
