"""The head interface: the one thing training, evaluation, fitting, fusion, export, predict
and pictures talk to.

    inputs ──encoder──▶ c ──flow f(·; c)──▶ x [B, n, d] ──space / body──▶ Prediction [B, n, ...]

A head composes a context encoder, a :class:`~condflow.flow.ConditionalFlow` over the
``space.dim`` features of an output space (:class:`~condflow.spaces.base.OutputSpace`) and,
where the space needs one, a point head for per-input extras (SMPL's β and camera). It never
re-implements the flow: ``mode`` is the flow's ``mode_and_log_prob`` (so an inexact mode
raises :class:`~condflow.flow.ModeNotAvailableError`), ``sample`` its chunked
``sample_and_log_prob``. Every density method returns a typed :class:`Prediction` whose
fields are ``[B, n, ...]`` (``n = 1`` for the mode).

A regression baseline (:class:`RegressionHead`) has the same interface: ``mode`` is its
direct prediction, and everything that needs a density raises
:class:`NotProbabilisticError`.

What the consumers above need is part of the interface too: a fitting adapter (how θ and
per-input extras project to 2D keypoints), the exported outputs with their names and units,
the inputs' normalization and plausible example inputs.
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from dataclasses import dataclass, fields
from typing import Any, ClassVar, TypeVar, cast

import torch
from torch import Tensor, nn

from condflow._checks import check_module_dtype, check_positive_int
from condflow.flow import ConditionalFlow
from condflow.inputs import example_inputs, input_normalization
from condflow.spaces.base import OutputSpace

__all__ = [
    "Head",
    "HeadAdapter",
    "NotProbabilisticError",
    "Prediction",
    "RegressionHead",
    "SkeletonPrediction",
    "as_head",
    "encoder_context_features",
]

P = TypeVar("P", bound="Prediction")


def encoder_context_features(encoder: nn.Module, context_features: int | None) -> int:
    """C, the context size: ``context_features`` when given, else ``encoder.out_features``
    (which every encoder states)."""
    return context_features or check_positive_int("encoder.out_features", encoder.out_features)


class NotProbabilisticError(ValueError):
    """Raised when a deterministic (regression) head is asked for a density, samples or a
    latent space."""


@dataclass
class Prediction:
    """Base of the typed predictions: ``n`` predictions per input, every tensor field
    ``[B, n, ...]``; ``log_prob`` ``[B, n]`` is log p(prediction | c) (``None`` for a
    regression head)."""

    @property
    def num_samples(self) -> int:
        """n, the size of the sample axis."""
        first = next(getattr(self, f.name) for f in fields(self) if getattr(self, f.name)
                     is not None)
        return int(first.shape[1])

    @property
    def native(self) -> Tensor:
        """The prediction in its output space's native representation
        ``[B, n, *space.native_shape]`` (what ``Head.log_prob`` scores)."""
        raise NotImplementedError

    @property
    def joints_mm(self) -> Tensor:
        """Root-relative 3D joints ``[B, n, J, 3]`` in millimetres: what metrics measure."""
        raise NotImplementedError

    def __getitem__(self: P, index: slice | int) -> P:
        """Select along the sample axis (an int keeps the axis with size 1)."""
        if isinstance(index, int):
            index = slice(index, index + 1 if index != -1 else None)
        return type(self)(**{f.name: None if getattr(self, f.name) is None
                             else getattr(self, f.name)[:, index] for f in fields(self)})

    def expand(self: P, num_samples: int) -> P:
        """A prediction with ``n = 1`` repeated ``num_samples`` times (a view)."""
        check_positive_int("num_samples", num_samples)
        return type(self)(**{
            f.name: None if (v := getattr(self, f.name)) is None
            else v.expand(-1, num_samples, *v.shape[2:]) for f in fields(self)})

    def outputs(self) -> dict[str, Tensor]:
        """The fields that are set, by name."""
        return {f.name: v for f in fields(self) if (v := getattr(self, f.name)) is not None}


@dataclass
class SkeletonPrediction(Prediction):
    """Skeletons: ``joints [B, n, J, 3]`` root-relative, millimetres; ``log_prob [B, n]``
    (nats, over the joint coordinates in millimetres)."""

    joints: Tensor
    log_prob: Tensor | None = None

    @property
    def native(self) -> Tensor:
        return self.joints

    @property
    def joints_mm(self) -> Tensor:
        return self.joints


class HeadAdapter:
    """How a head's output θ (plus per-example extras) becomes 2D keypoints, for the generic
    fitting code (:mod:`condflow.fitting`). Made by :meth:`Head.fitting_adapter`.

    * ``flow``: the conditional flow θ = f(z; c) with ``d = flow.features``;
    * ``initial_extras(theta, context, keypoints)``: starting values of the variables fitted
      alongside θ (a root translation; shape β and a camera), ``{name: [B, ...]}``;
    * ``project(theta, extras)``: 2D keypoints ``[B, K, 2]`` in the units of the observations;
    * ``extra_residuals(extras)``: residuals ``[B, E]`` of a penalty on the extras (β for
      E_β = ‖β‖², or none), and ``extra_energy(extras)`` ``[B]``, their squared sum;
    * ``outputs(theta, extras)``: what people measure (``"joints_mm"``: root-relative 3D
      joints ``[B, 17, 3]`` in millimetres, the Human3.6M joints, plus head-specific fields).
    """

    head: Head
    num_keypoints: int

    @property
    def flow(self) -> ConditionalFlow:
        return self.head.flow

    @property
    def dim(self) -> int:
        """d, the dimension of θ and z."""
        return self.flow.features

    def initial_extras(self, theta: Tensor, context: Tensor, keypoints: Tensor
                       ) -> dict[str, Tensor]:
        raise NotImplementedError

    def project(self, theta: Tensor, extras: dict[str, Tensor]) -> Tensor:
        raise NotImplementedError

    def extra_energy(self, extras: dict[str, Tensor]) -> Tensor:
        return self.extra_residuals(extras).pow(2).sum(-1)

    def extra_residuals(self, extras: dict[str, Tensor]) -> Tensor:
        first = next(iter(extras.values()))
        return first.new_zeros(first.shape[0], 0)

    def outputs(self, theta: Tensor, extras: dict[str, Tensor]) -> dict[str, Tensor]:
        raise NotImplementedError


def as_head(value: object, what: str) -> Head:
    """``value`` as a :class:`Head`, else ``ValueError``: ``what``, the value's type and
    that it is not a head (e.g. ``"model: cannot export a Linear, not a condflow head"``)."""
    if not isinstance(value, Head):
        raise ValueError(f"{what} {type(value).__name__}, not a condflow head "
                         "(condflow.heads.Head)")
    return value


class Head(nn.Module, ABC):
    """The interface every head implements (see the module docstring).

    Subclasses set ``encoder``, ``space`` and ``flow`` and implement :meth:`predict`,
    :meth:`fitting_adapter`; the encoder says what it reads (its ``input_kind``).
    Shapes: ``inputs`` whatever the encoder takes (named by :attr:`input_kind`); ``context``
    ``[B, C]``; features ``[B, n, d]``; predictions ``[B, n, ...]``.
    """

    #: A density over outputs: ``sample``/``log_prob``/``generate`` exist.
    probabilistic: ClassVar[bool] = True
    #: What ``mode`` returns, as pictures and tables name it.
    point_label: ClassVar[str] = "mode f(0; c)"
    #: The inputs' name in error messages (the argument of :meth:`context`).
    input_argument: ClassVar[str] = "inputs"
    #: Names of the exported fields of the mode and of each sample (prediction fields).
    mode_outputs: ClassVar[tuple[str, ...]]
    sample_outputs: ClassVar[tuple[str, ...]]
    #: Unit of every exported field and of ``log_prob``.
    output_units: dict[str, str]

    encoder: nn.Module
    space: OutputSpace
    flow: ConditionalFlow

    # -- conditioning ---------------------------------------------------------------------
    @property
    def input_kind(self) -> str:
        """What the encoder reads: ``"keypoints_2d"`` or ``"images"`` (:mod:`condflow.inputs`)."""
        return str(self.encoder.input_kind)

    @property
    def input_shape(self) -> tuple[int, ...]:
        """The shape of one input: keypoints ``(K, 3)`` or images ``(3, R, R)``."""
        if self.input_kind == "images":
            res = int(getattr(self.encoder, "input_res", getattr(self, "img_res", 224)))
            return (3, res, res)
        lifter = next((m for m in self.encoder.modules() if hasattr(m, "num_joints")), None)
        if lifter is None:
            raise ValueError(f"model: the encoder of a {type(self).__name__} reads keypoints "
                             "but says no num_joints")
        return (int(cast(Any, lifter).num_joints), 3)

    def input_normalization(self) -> dict[str, Any]:
        """How inputs must be prepared, in words (stored with exported graphs)."""
        return input_normalization(self.input_kind, self.input_shape)

    def example_inputs(self, batch_size: int = 2, generator: torch.Generator | None = None
                       ) -> Tensor:
        """Plausible random inputs ``[batch_size, *input_shape]`` (:func:`condflow.inputs.
        example_inputs`)."""
        return example_inputs(self.input_kind, self.input_shape, batch_size, generator)

    def context(self, inputs: Tensor) -> Tensor:
        """c = encoder(inputs): ``[B, ...] -> [B, C]``."""
        return self.encoder(check_module_dtype(self.input_argument, inputs, self))

    # -- from features to predictions -----------------------------------------------------
    @abstractmethod
    def predict(self, features: Tensor, context: Tensor, log_prob: Tensor | None = None
                ) -> Prediction:
        """The prediction of given features ``[B, n, d]`` for contexts ``[B, C]``."""

    def features(self, target: Tensor) -> Tensor:
        """Targets in the space's native representation ``[B, (n,) *native_shape]`` → the
        flow's features ``[B, (n,) d]``."""
        return self.space.from_native(target)

    # -- density --------------------------------------------------------------------------
    def log_prob(self, target: Tensor, context: Tensor) -> Tensor:
        """log p(target | c): ``[B, *native]`` → ``[B]``, ``[B, n, *native]`` → ``[B, n]``."""
        return self.flow.log_prob(self.features(target), context)

    @property
    def log_scale(self) -> Tensor:
        """Σ log σ of a fixed standardization of the features inside the flow (0 without
        one): log p(standardized x | c) = log p(x | c) + ``log_scale``."""
        return torch.zeros(())

    def generate(self, noise: Tensor, context: Tensor) -> Prediction:
        """f(z; c) for given noise ``[B, n, d]``, with its log-density."""
        x, log_prob = self.flow.generate(noise, context)
        return self.predict(x, context, log_prob)

    def sample(self, num_samples: int, context: Tensor,
               generator: torch.Generator | None = None) -> Prediction:
        """``num_samples`` predictions per input, with their log-densities: ``[B, n, ...]``."""
        x, log_prob = self.flow.sample_and_log_prob(num_samples, context, generator)
        return self.predict(x, context, log_prob)

    def sample_and_log_prob(self, num_samples: int, context: Tensor,
                            generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """Samples in the native representation ``[B, n, *native]`` and their log-densities
        ``[B, n]`` (no body or camera: the cheap path)."""
        x, log_prob = self.flow.sample_and_log_prob(num_samples, context, generator)
        return self.space.to_native(x), log_prob

    def mode(self, context: Tensor) -> Prediction:
        """The most likely output f(0; c) and log p(mode | c): every field ``[B, 1, ...]``."""
        x, log_prob = self.flow.mode_and_log_prob(context)
        return self.predict(x[:, None], context, log_prob[:, None])

    @property
    def volume_depends_on_context(self) -> bool:
        """Whether log p(mode | c) can differ between inputs (see ``ConditionalFlow``)."""
        return self.flow.volume_depends_on_context

    @property
    def latent_features(self) -> int:
        """d, the size of z (the last axis of the noise)."""
        return self.flow.features

    def forward(self, inputs: Tensor) -> Prediction:
        """The point prediction from raw inputs (the mode): every field ``[B, 1, ...]``."""
        return self.mode(self.context(inputs))

    # -- what consumers need --------------------------------------------------------------
    @abstractmethod
    def fitting_adapter(self, **kwargs: Any) -> HeadAdapter:
        """The adapter through which :mod:`condflow.fitting` fits this head to keypoints."""

    def export_prediction(self, context: Tensor, noise: Tensor | None = None) -> Prediction:
        """What an exported graph returns: the mode (``noise=None``) or f(noise; c), with
        every field of :attr:`mode_outputs`/:attr:`sample_outputs` set and no operation that
        ``torch.export`` cannot capture with a dynamic batch."""
        return self.mode(context) if noise is None else self.generate(noise, context)

    def capturable(self) -> contextlib.AbstractContextManager[None]:
        """A context in which :meth:`export_prediction` can be captured by ``torch.export``
        (default: nothing to change)."""
        return contextlib.nullcontext()


class RegressionHead(Head):
    """A deterministic baseline behind the same interface: the same encoder, an output
    regressed directly (:meth:`regress`); :meth:`mode` is that prediction (``log_prob``
    ``None``), everything that needs a density raises :class:`NotProbabilisticError`, and
    there is no ``flow`` attribute (check :attr:`probabilistic` first)."""

    probabilistic: ClassVar[bool] = False
    point_label: ClassVar[str] = "regression"

    @abstractmethod
    def regress(self, context: Tensor) -> Tensor:
        """The regressed features ``[B, C] -> [B, d]``."""

    def mode(self, context: Tensor) -> Prediction:
        """The regressed output: every field ``[B, 1, ...]`` (``log_prob`` None)."""
        return self.predict(self.regress(context)[:, None], context, None)

    def _refuse(self, what: str) -> NotProbabilisticError:
        return NotProbabilisticError(
            f"model: a {type(self).__name__} is a deterministic regression baseline and has "
            f"no {what}; train a flow (model.kind: flow) for it")

    def log_prob(self, target: Tensor, context: Tensor) -> Tensor:
        raise self._refuse("density")

    def generate(self, noise: Tensor, context: Tensor) -> Prediction:
        raise self._refuse("latent space")

    def sample(self, num_samples: int, context: Tensor,
               generator: torch.Generator | None = None) -> Prediction:
        raise self._refuse("samples")

    def sample_and_log_prob(self, num_samples: int, context: Tensor,
                            generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        raise self._refuse("samples")

    @property
    def volume_depends_on_context(self) -> bool:
        return False

    def fitting_adapter(self, **kwargs: Any) -> HeadAdapter:
        raise self._refuse("learned prior to fit with")

    def export_prediction(self, context: Tensor, noise: Tensor | None = None) -> Prediction:
        if noise is not None:
            raise self._refuse("sampler")
        return self.mode(context)

