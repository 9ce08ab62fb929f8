"""condflow: conditional normalizing flows for probabilistic 3D human pose and mesh recovery."""

from condflow._checks import set_finite_checks
from condflow._version import __version__ as __version__
from condflow.bijectors import CouplingNet
from condflow.flow import ConditionalFlow, ConditionalGlow, ModeNotAvailableError
from condflow.saving import load, save  # one-file models: weights + the config that built them

__all__ = [
    "ConditionalFlow",
    "ConditionalGlow",
    "CouplingNet",
    "ModeNotAvailableError",
    "load",
    "save",
    "set_finite_checks",
]
