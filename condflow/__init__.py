"""condflow: conditional normalizing flows for probabilistic 3D human pose and mesh recovery."""

# One __all__ rule for the package: every module (private ones too; not __main__) declares
# __all__, the names it offers; a package's __init__ re-exports only names listed in the
# __all__ of the module it imports them from, and lists them in its own __all__.
# tests/test_package_api.py checks both.

from condflow._checks import set_finite_checks
from condflow._version import __version__ as __version__
from condflow.bijectors import CouplingNet
from condflow.data.sources import DataRequest, DataSplit, register_data_source
from condflow.encoders.registry import EncoderRequest, register_encoder
from condflow.flow import ConditionalFlow, ConditionalGlow, ModeNotAvailableError
from condflow.inputs import InputSpec
from condflow.saving import load, save  # one-file models: weights + the config that built them
from condflow.spaces.registry import register_space

__all__ = [
    "ConditionalFlow",
    "ConditionalGlow",
    "CouplingNet",
    "DataRequest",
    "DataSplit",
    "EncoderRequest",
    "InputSpec",
    "ModeNotAvailableError",
    "load",
    "register_data_source",
    "register_encoder",
    "register_space",
    "save",
    "set_finite_checks",
]
