"""Conditional normalizing flows p(x | c) with a standard-normal base."""

from __future__ import annotations

import itertools
import math

import torch
from torch import Tensor, nn

from condflow._checks import check_module_dtype, check_positive_int, check_tensor, is_int_at_least
from condflow._recipe import Recorded
from condflow.bijectors.base import Bijector, Compose
from condflow.bijectors.glow import GlowBlock
from condflow.bijectors.nets import CouplingNet

__all__ = [
    "ConditionalFlow",
    "ConditionalGlow",
    "ModeNotAvailableError",
    "standard_normal_log_prob",
]


class ModeNotAvailableError(RuntimeError):
    """Raised by :meth:`ConditionalFlow.mode` when a log-det depends on z."""


def standard_normal_log_prob(z: Tensor) -> Tensor:
    """log N(z; 0, I) summed over the last dim: ``[..., d] -> [...]``."""
    return -0.5 * z.pow(2).sum(-1) - 0.5 * z.shape[-1] * math.log(2 * math.pi)


class ConditionalFlow(Recorded, nn.Module):
    """x = f(z; c) with z ~ N(0, I): exact ``log_prob``, batched ``sample`` and ``mode``.

    The call names and argument order follow nflows (``log_prob(inputs, context)``,
    ``sample(num_samples, context)``, ``embedding_net``). Shapes: ``context`` ``[B, C]``
    (with an ``embedding_net``: ``[B, ...]``, whatever it takes); ``inputs`` ``[B, d]`` (one
    per context) or ``[B, n, d]`` (n per context); samples ``[B, n, d]``. Outputs have the
    dtype of the inputs (or context); under ``torch.autocast`` only the matrix products run
    in lower precision, log-dets and the base density stay in it.

    An unconditional flow (``context_features=0``) is called without a context, as in
    nflows: ``log_prob(inputs [N, d]) -> [N]``, ``sample(n) -> [n, d]``, ``mode() -> [d]``,
    ``generate(noise [N, d])``.

    Args:
        bijector: the map f, ``forward`` being z → x.
        features: d.
        context_features: C, the size of the context the bijector sees (the output of
            ``embedding_net`` if given); 0 for an unconditional flow.
        max_rows: bound on B·n rows pushed through the bijector at once when sampling;
            larger draws are processed in chunks along n with the same result.
        embedding_net: module mapping the raw context ``[B, ...]`` to ``[B, C]``, trained
            with the flow; ``None`` passes the context on as it is.
    """

    def __init__(
        self,
        bijector: Bijector,
        features: int,
        context_features: int,
        max_rows: int = 16384,
        embedding_net: nn.Module | None = None,
    ) -> None:
        super().__init__()
        self.bijector = bijector
        self.features = check_positive_int("features", features)
        if not is_int_at_least(context_features, 0):
            raise ValueError(
                f"context_features: expected an int >= 0 (0: unconditional), got "
                f"{context_features!r}"
            )
        self.context_features = context_features
        self.max_rows = check_positive_int("max_rows", max_rows)
        if embedding_net is not None and not isinstance(embedding_net, nn.Module):
            raise ValueError(
                f"embedding_net: expected a torch.nn.Module or None, got "
                f"{type(embedding_net).__name__}"
            )
        if embedding_net is not None and context_features == 0:
            raise ValueError("embedding_net: an unconditional flow (context_features=0) has none")
        self.embedding_net = embedding_net

    # -- validation -----------------------------------------------------------------------
    def _check_context(self, context: object, like: Tensor | None = None) -> Tensor:
        """The context the bijector sees, ``[B, C]``: ``context``, embedded if the flow has an
        ``embedding_net``. An unconditional flow called without one gets an empty context
        ``[N, 0]``, N the leading size of ``like`` (the inputs or noise; 1 without)."""
        if context is None and self.context_features == 0:
            if like is None:
                tensors = itertools.chain(self.parameters(), self.buffers())
                ref = next((t for t in tensors if t.is_floating_point()), None)
                return torch.zeros(1, 0) if ref is None else ref.new_zeros(1, 0)
            check_tensor("inputs", like, finite=False)
            return like.new_zeros(like.shape[0] if like.dim() else 1, 0)
        if context is None:
            raise ValueError(
                f"context: expected a tensor of shape [B, {self.context_features}] (the flow "
                "is conditional), got None"
            )
        if self.embedding_net is None:
            context = check_tensor("context", context, ("B", self.context_features))
            check_module_dtype("context", context, self)
            return context
        context = check_tensor("context", context)
        check_module_dtype("context", context, self)
        embedded = self.embedding_net(context)
        check_tensor("embedding_net(context)", embedded, (context.shape[0], self.context_features))
        return embedded

    def _check_rows(self, rows: int) -> None:
        """Batch norm in training mode needs at least 2 rows per batch."""
        if self.training and rows == 1 and self._batch_norm():
            raise ValueError(
                "context: a batch of 1 row in training mode, but the flow has batch norm, "
                "which needs at least 2 rows per batch; call .eval() to evaluate single rows"
            )

    def _batch_norm(self) -> bool:
        return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in self.modules())

    def _check_inputs(self, inputs: object, context: Tensor, name: str = "inputs") -> Tensor:
        """``inputs`` ``[B, d]`` or ``[B, n, d]`` against the bijector's context ``[B, C]``."""
        d, batch = self.features, context.shape[0]
        stacked = isinstance(inputs, Tensor) and inputs.dim() == 3
        if (
            batch == 1
            and isinstance(inputs, Tensor)
            and inputs.dim() in (2, 3)
            and inputs.shape[-1] == d
            and inputs.shape[0] > 1
        ):  # one context for a batch: the context is the odd one
            raise ValueError(
                f"context: 1 row for the {inputs.shape[0]} rows of {name}; expected one context "
                f"row per row of {name}, [{inputs.shape[0]}, {self.context_features}] "
                f"(e.g. context.expand({inputs.shape[0]}, -1))"
            )
        check_tensor(name, inputs, (batch, "n", d) if stacked else (batch, d))
        assert isinstance(inputs, Tensor)
        check_module_dtype(name, inputs, self)
        self._check_rows(batch * (inputs.shape[1] if stacked else 1))
        if inputs.dtype != context.dtype:
            raise ValueError(f"{name}: dtype {inputs.dtype} differs from context's {context.dtype}")
        return inputs

    def embed(self, context: Tensor | None) -> Tensor:
        """The context ``[B, C]`` the bijector sees: ``context`` checked, through the
        ``embedding_net`` if the flow has one (``[1, 0]`` for an unconditional flow without
        one)."""
        return self._check_context(context)

    # -- density --------------------------------------------------------------------------
    def transform_to_noise(self, inputs: Tensor, context: Tensor | None = None) -> Tensor:
        """z = f⁻¹(x; c): ``[B, d]`` or ``[B, n, d]`` → same shape."""
        context = self._check_context(context, inputs)
        inputs = self._check_inputs(inputs, context)
        return self.bijector.inverse(inputs, context)[0].to(inputs.dtype)

    def log_prob(self, inputs: Tensor, context: Tensor | None = None) -> Tensor:
        """log p(x | c): ``[B, d] -> [B]`` or ``[B, n, d] -> [B, n]``."""
        context = self._check_context(context, inputs)
        inputs = self._check_inputs(inputs, context)
        z, logdet = self.bijector.inverse(inputs, context)
        return standard_normal_log_prob(z.to(inputs.dtype)) + logdet

    # -- generation -----------------------------------------------------------------------
    def generate(self, noise: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """x = f(z; c) for given noise ``[B, d]`` or ``[B, n, d]``, with log p(x | c).

        This is the differentiable map used for optimization in latent space (fitting).
        """
        context = self._check_context(context, noise)
        noise = self._check_inputs(noise, context, "noise")
        x, logdet = self.bijector(noise, context)
        return x.to(noise.dtype), standard_normal_log_prob(noise) - logdet

    def noise(
        self,
        num_samples: int,
        context: Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """The standard-normal noise ``[B, n, d]`` (``[n, d]`` unconditional, without context)
        that :meth:`sample` draws for ``context`` (same generator, same values):
        ``sample(n, c, g)`` equals ``generate(noise(n, c, g), c)[0]``.

        ``torch.compile(fullgraph=True)`` cannot trace a ``torch.Generator``; to compile
        sampling with one, draw the noise eagerly with this method and compile
        :meth:`generate` (``generator=None`` compiles as is).
        """
        noise = self._draw(num_samples, self._check_context(context), generator)
        return noise[0] if context is None else noise

    def _draw(self, num_samples: int, context: Tensor, generator: torch.Generator | None) -> Tensor:
        check_positive_int("num_samples", num_samples)
        self._check_rows(context.shape[0] * num_samples)
        shape = (context.shape[0], num_samples, self.features)
        return torch.randn(shape, generator=generator, dtype=context.dtype, device=context.device)

    def _generate_chunked(self, noise: Tensor, context: Tensor) -> tuple[Tensor, Tensor]:
        chunk = max(1, self.max_rows // max(1, noise.shape[0]))  # B = 0: one empty chunk
        outs = [self.bijector(part, context) for part in noise.split(chunk, dim=1)]
        x = torch.cat([o[0] for o in outs], dim=1).to(noise.dtype)
        logdet = torch.cat([o[1] for o in outs], dim=1)
        return x, standard_normal_log_prob(noise) - logdet

    def sample(
        self, num_samples: int, context: Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """n samples per context in one batched pass: ``[B, C] -> [B, n, d]`` (``[n, d]``
        for an unconditional flow called without context; B = 0 gives an empty tensor).
        Under ``torch.compile(fullgraph=True)`` pass no generator, or see :meth:`noise`."""
        return self.sample_and_log_prob(num_samples, context, generator)[0]

    def sample_and_log_prob(
        self, num_samples: int, context: Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Samples ``[B, n, d]`` and their log-densities ``[B, n]`` (``[n, d]`` and ``[n]``
        for an unconditional flow called without context; with a generator under
        ``torch.compile(fullgraph=True)``: :meth:`noise` + :meth:`generate`)."""
        c = self._check_context(context)
        x, log_prob = self._generate_chunked(self._draw(num_samples, c, generator), c)
        return (x[0], log_prob[0]) if context is None else (x, log_prob)

    def mode(self, context: Tensor | None = None) -> Tensor:
        """argmax_x p(x | c) = f(0; c): ``[B, C] -> [B, d]`` (``[d]`` for an unconditional
        flow called without context).

        Exact only when log|det J| does not depend on z; otherwise raises
        :class:`ModeNotAvailableError` rather than returning a wrong answer.
        """
        return self.mode_and_log_prob(context)[0]

    def mode_and_log_prob(self, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """The mode f(0; c) ``[B, d]`` and its log-density log p(mode | c) ``[B]`` (``[d]``
        and a scalar for an unconditional flow called without context).

        The log-density at the mode measures the density's volume: it is the same number
        for every input unless a bijector's log-det depends on c
        (:attr:`volume_depends_on_context`), e.g. with ``ConditionalGlow(...,
        conditional_volume=True)``; then a higher value means a more concentrated density.
        """
        if not self.bijector.constant_logdet:
            raise ModeNotAvailableError(
                "mode: f(0; c) is the density's argmax only when every bijector's log|det J| "
                "is independent of z; this flow contains one whose log-det depends on z "
                "(e.g. an affine coupling)"
            )
        c = self._check_context(context)
        self._check_rows(c.shape[0])
        zero = c.new_zeros(c.shape[0], self.features)
        x, logdet = self.bijector(zero, c)
        x, log_p = x.to(c.dtype), standard_normal_log_prob(zero) - logdet
        return (x[0], log_p[0]) if context is None else (x, log_p)

    @property
    def volume_depends_on_context(self) -> bool:
        """Whether log p(mode | c) (the log-det of the map) can differ between inputs."""
        return bool(self.bijector.logdet_depends_on_context)


class ConditionalGlow(ConditionalFlow):
    """ProHMR's flow: ``num_blocks`` Glow blocks (ActNorm → LU linear → additive coupling,
    in the normalizing direction) with alternating coupling halves.

    The coupling nets see ``[z₁, c]`` at their input layer only, then residual blocks (their
    number, width, dropout and normalization are one :class:`~condflow.bijectors.CouplingNet`);
    their output layers start near zero, so the untrained flow is close to a fixed linear map.
    All Jacobians are constant in z, hence ``mode`` is exact. The defaults are ProHMR's.

    Args:
        features: d, the size of x and z (at least 2: each coupling transforms one half).
        context_features: C, the size of the context the coupling nets see (the output of
            ``embedding_net`` if given); 0 for an unconditional flow.
        num_blocks: number of Glow blocks.
        coupling_net: the coupling nets' settings, shared by every block
            (:class:`~condflow.bijectors.CouplingNet`: ``hidden_features``,
            ``num_residual_blocks``, ``dropout``, ``batch_norm``). Its ``batch_norm="batch"``
            (ProHMR's) makes the train-mode ``log_prob`` of an example depend on the rest of its
            batch (in eval mode it does not); ``"layer"`` (LayerNorm, per row) and ``"none"``
            are batch-independent in both modes.
        seed: seed of the LU linear maps' random initial rotations (block i uses
            ``seed + i``), so equal seeds give equal initial flows.
        max_rows: bound on B·n rows pushed through the flow at once when sampling.
        embedding_net: module embedding the raw context ``[B, ...]`` into ``[B, C]``, trained
            with the flow (nflows' argument); ``None`` uses the context as given.
        shift_bound: if given, each coupling's shift is soft-clamped to
            ``(-shift_bound, shift_bound)`` by ``b · tanh(t / b)`` (still volume-preserving,
            so ``mode`` stays exact). It bounds how far the shift nets' linear extrapolation
            can throw tail samples; ``None`` (ProHMR's) leaves shifts unbounded. In units of
            the flow's inputs after ActNorm, i.e. roughly standard deviations.
        convention: ``"condflow"``, or ``"nflows"`` for the blocks of ProHMR's nflows fork
            (see :class:`~condflow.bijectors.GlowBlock`), for weights imported from ProHMR.
        conditional_volume: add a context-dependent elementwise affine map to every block
            (see :class:`~condflow.bijectors.GlowBlock`): the log-det then depends on c (not
            on z), so the mode stays exact and log p(mode | c) follows the input.
        volume_hidden: width of the nets giving that map's scale and shift from c.
    """

    def __init__(
        self,
        features: int,
        context_features: int,
        num_blocks: int = 4,
        *,
        coupling_net: CouplingNet = CouplingNet(),
        seed: int = 0,
        max_rows: int = 16384,
        embedding_net: nn.Module | None = None,
        shift_bound: float | None = None,
        convention: str = "condflow",
        conditional_volume: bool = False,
        volume_hidden: int = 128,
    ) -> None:
        check_positive_int("num_blocks", num_blocks)
        blocks = [
            GlowBlock(
                features,
                context_features,
                coupling_net=coupling_net,
                parity=i % 2,
                seed=seed + i,
                shift_bound=shift_bound,
                convention=convention,
                conditional_volume=conditional_volume,
                volume_hidden=volume_hidden,
            )
            for i in range(num_blocks)
        ]
        # Block 0 is nearest the data in the normalizing direction, so it runs last in forward.
        super().__init__(
            Compose(blocks[::-1]), features, context_features, max_rows, embedding_net
        )
