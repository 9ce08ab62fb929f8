"""Conditional bijectors x = f(z; c) returning ``(output, log|det J|)``."""

from condflow.bijectors.actnorm import ActNorm
from condflow.bijectors.affine import FixedAffine
from condflow.bijectors.base import Bijector, Compose, Inverse
from condflow.bijectors.conditional import ConditionalAffine
from condflow.bijectors.coupling import AdditiveCoupling, AffineCoupling
from condflow.bijectors.glow import GlowBlock
from condflow.bijectors.lu import LULinear, NflowsLULinear
from condflow.bijectors.nets import ContextResidualNet, CouplingNet, ResidualBlock
from condflow.bijectors.nflows_interop import FromNflows, ToNflows
from condflow.bijectors.permutation import Permutation, RandomPermutation, ReversePermutation

__all__ = [
    "ActNorm",
    "AdditiveCoupling",
    "AffineCoupling",
    "Bijector",
    "Compose",
    "ConditionalAffine",
    "FixedAffine",
    "FromNflows",
    "ContextResidualNet",
    "CouplingNet",
    "GlowBlock",
    "Inverse",
    "LULinear",
    "NflowsLULinear",
    "Permutation",
    "RandomPermutation",
    "ResidualBlock",
    "ReversePermutation",
    "ToNflows",
]
