"""Input validation for public entry points (one helper, never called in hot loops)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, TypeGuard

import torch
from torch import Tensor

__all__ = [
    "DeviceName",
    "Dim",
    "Match",
    "NonEmptyStr",
    "NonNegativeFloat",
    "NonNegativeInt",
    "PositiveFloat",
    "PositiveInt",
    "Probability",
    "Range",
    "check_int",
    "check_module_dtype",
    "check_positive_int",
    "check_tensor",
    "check_trailing",
    "is_int_at_least",
    "set_finite_checks",
]

Dim = int | str | None

_check_finite = True


def set_finite_checks(enabled: bool) -> bool:
    """Turn the NaN/Inf checks at public entry points on (default) or off; returns the
    previous setting (to restore it).

    Shape checks cost nothing and always run; the finiteness check reads a flag back from
    the device, so timing code and CUDA-graph capture may switch it off. It is skipped
    automatically while ``torch.compile`` traces.
    """
    global _check_finite
    previous, _check_finite = _check_finite, bool(enabled)
    return previous


def _finite_checks_active() -> bool:
    return _check_finite and not torch.compiler.is_compiling()


def _fmt(shape: Sequence[Dim]) -> str:
    return "[" + ", ".join("*" if s is None else str(s) for s in shape) + "]"


def check_tensor(
    name: str,
    x: object,
    shape: Sequence[Dim] | None = None,
    *,
    finite: bool = True,
    floating: bool = True,
) -> Tensor:
    """Raise ``ValueError`` naming ``name`` unless ``x`` is a tensor of the expected form.

    ``shape`` lists the expected sizes; an ``int`` must match exactly, a ``str`` (e.g. ``"B"``)
    or ``None`` accepts any size. The message names the argument, the expected shape and
    what was received.
    """
    if not isinstance(x, Tensor):
        raise ValueError(f"{name}: expected a torch.Tensor, got {type(x).__name__}")
    if shape is not None:
        ok = x.dim() == len(shape) and all(
            not isinstance(s, int) or x.shape[i] == s for i, s in enumerate(shape)
        )
        if not ok:
            raise ValueError(f"{name}: expected shape {_fmt(shape)}, got {list(x.shape)}")
    if floating and not x.is_floating_point():
        raise ValueError(f"{name}: expected a floating-point tensor, got dtype {x.dtype}")
    if (
        finite
        and x.is_floating_point()
        and _finite_checks_active()
        and not bool(torch.isfinite(x).all())
    ):
        raise ValueError(f"{name}: contains NaN or Inf values")
    return x


def check_trailing(name: str, x: object, trailing: Sequence[int], *, finite: bool = True) -> Tensor:
    """Like :func:`check_tensor` for ``[..., *trailing]``: any number of leading dims."""
    check_tensor(name, x, finite=False)
    assert isinstance(x, Tensor)
    lead: list[Dim] = [None] * max(x.dim() - len(trailing), 0)
    return check_tensor(name, x, [*lead, *trailing], finite=finite)


def check_module_dtype(name: str, x: Tensor, module: torch.nn.Module) -> Tensor:
    """Raise ``ValueError`` naming ``name`` unless the floating tensor ``x`` has the dtype of
    ``module``'s parameters (torch would fail deep inside with ``mat1 and mat2``). Skipped
    under autocast, where lower-precision activations are expected."""
    param = next(module.parameters(), None)
    if (
        param is not None
        and x.is_floating_point()
        and x.dtype != param.dtype
        and not torch.is_autocast_enabled(x.device.type)
    ):
        raise ValueError(
            f"{name}: dtype {x.dtype} differs from the model's {param.dtype}; convert "
            f"{name} (.to({param.dtype})) or the model (.to({x.dtype}))"
        )
    return x


def is_int_at_least(value: object, minimum: int) -> TypeGuard[int]:
    """Whether ``value`` is an ``int`` (a ``bool`` is not one) >= ``minimum``."""
    return not isinstance(value, bool) and isinstance(value, int) and value >= minimum


def check_int(name: str, value: object, minimum: int) -> int:
    """Raise ``ValueError`` naming ``name`` unless ``value`` is an ``int`` >= ``minimum``."""
    if not is_int_at_least(value, minimum):
        raise ValueError(f"{name}: expected an integer >= {minimum}, got {value!r}")
    return value


def check_positive_int(name: str, value: object) -> int:
    """Raise ``ValueError`` unless ``value`` is an ``int`` >= 1."""
    return check_int(name, value, 1)


# -- constraints carried by config field types ------------------------------------------------
@dataclass(frozen=True)
class Range:
    """Bounds of a numeric config field, attached to its type: ``Annotated[int, Range(ge=1)]``.

    :func:`condflow.config.from_dict` checks every field against the ``Range`` (and
    ``Literal`` choices, :class:`Match` patterns) found in its annotation.
    """

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None

    def describe(self) -> str:
        bounds = ((">=", self.ge), (">", self.gt), ("<=", self.le), ("<", self.lt))
        return " and ".join(f"{op} {v:g}" for op, v in bounds if v is not None)

    def check(self, value: float, where: str) -> None:
        ok = (
            (self.ge is None or value >= self.ge)
            and (self.gt is None or value > self.gt)
            and (self.le is None or value <= self.le)
            and (self.lt is None or value < self.lt)
        )
        if not ok:
            kind = "an integer" if isinstance(value, int) else "a number"
            raise ValueError(f"{where}: expected {kind} {self.describe()}, got {value!r}")


@dataclass(frozen=True)
class Match:
    """A string config field must match ``pattern`` entirely (``expected`` says what it is)."""

    pattern: str
    expected: str

    def check(self, value: str, where: str) -> None:
        if re.fullmatch(self.pattern, value) is None:
            raise ValueError(f"{where}: expected {self.expected}, got {value!r}")


PositiveInt = Annotated[int, Range(ge=1)]
NonNegativeInt = Annotated[int, Range(ge=0)]
PositiveFloat = Annotated[float, Range(gt=0)]
NonNegativeFloat = Annotated[float, Range(ge=0)]
Probability = Annotated[float, Range(ge=0, le=1)]
NonEmptyStr = Annotated[str, Match(r".+", "a non-empty string")]
DeviceName = Annotated[
    str, Match(r"auto|cpu|mps|cuda(:\d+)?", "'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'")
]
