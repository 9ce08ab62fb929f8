"""Conditional normalizing flows p(x | c) with a standard-normal base."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from condflow._checks import check_module_dtype, check_positive_int, check_tensor
from condflow.bijectors.base import Bijector, Compose
from condflow.bijectors.glow import GlowBlock


class ModeNotAvailableError(RuntimeError):
    """Raised by :meth:`ConditionalFlow.mode` when a log-det depends on z."""


def standard_normal_log_prob(z: Tensor) -> Tensor:
    """log N(z; 0, I) summed over the last dim: ``[..., d] -> [...]``."""
    return -0.5 * z.pow(2).sum(-1) - 0.5 * z.shape[-1] * math.log(2 * math.pi)


class ConditionalFlow(nn.Module):
    """x = f(z; c) with z ~ N(0, I): exact ``log_prob``, batched ``sample`` and ``mode``.

    The call names and argument order follow nflows (``log_prob(inputs, context)``,
    ``sample(num_samples, context)``). Shapes: ``context`` ``[B, C]``; ``inputs``
    ``[B, d]`` (one per context) or ``[B, n, d]`` (n per context); samples ``[B, n, d]``.
    Outputs have the dtype of the inputs (or context); under ``torch.autocast`` only the
    matrix products run in lower precision, log-dets and the base density stay in it.

    Args:
        bijector: the map f, ``forward`` being z → x.
        features: d.
        context_features: C.
        max_rows: bound on B·n rows pushed through the bijector at once when sampling;
            larger draws are processed in chunks along n with the same result.
    """

    def __init__(
        self, bijector: Bijector, features: int, context_features: int, max_rows: int = 16384
    ) -> None:
        super().__init__()
        self.bijector = bijector
        self.features = check_positive_int("features", features)
        self.context_features = check_positive_int("context_features", context_features)
        self.max_rows = check_positive_int("max_rows", max_rows)

    # -- validation -----------------------------------------------------------------------
    def _check_context(self, context: object, rows_per_context: int = 1) -> Tensor:
        context = check_tensor("context", context, ("B", self.context_features))
        check_module_dtype("context", context, self)
        if self.training and context.shape[0] * rows_per_context == 1 and self._batch_norm():
            raise ValueError(
                "context: a batch of 1 row in training mode, but the flow has batch norm, "
                "which needs at least 2 rows per batch; call .eval() to evaluate single rows"
            )
        return context

    def _batch_norm(self) -> bool:
        return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in self.modules())

    def _check_inputs(self, inputs: object, context: object, name: str = "inputs") -> Tensor:
        d = self.features
        batch = check_tensor("context", context, ("B", self.context_features)).shape[0]
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
        context = self._check_context(context, inputs.shape[1] if stacked else 1)
        if inputs.dtype != context.dtype:
            raise ValueError(f"{name}: dtype {inputs.dtype} differs from context's {context.dtype}")
        return inputs

    # -- density --------------------------------------------------------------------------
    def transform_to_noise(self, inputs: Tensor, context: Tensor) -> Tensor:
        """z = f⁻¹(x; c): ``[B, d]`` or ``[B, n, d]`` → same shape."""
        inputs = self._check_inputs(inputs, context)
        return self.bijector.inverse(inputs, context)[0].to(inputs.dtype)

    def log_prob(self, inputs: Tensor, context: Tensor) -> Tensor:
        """log p(x | c): ``[B, d] -> [B]`` or ``[B, n, d] -> [B, n]``."""
        inputs = self._check_inputs(inputs, context)
        z, logdet = self.bijector.inverse(inputs, context)
        return standard_normal_log_prob(z.to(inputs.dtype)) + logdet

    # -- generation -----------------------------------------------------------------------
    def generate(self, noise: Tensor, context: Tensor) -> tuple[Tensor, Tensor]:
        """x = f(z; c) for given noise ``[B, d]`` or ``[B, n, d]``, with log p(x | c).

        This is the differentiable map used for optimization in latent space (fitting).
        """
        noise = self._check_inputs(noise, context, "noise")
        x, logdet = self.bijector(noise, context)
        return x.to(noise.dtype), standard_normal_log_prob(noise) - logdet

    def noise(
        self, num_samples: int, context: Tensor, generator: torch.Generator | None = None
    ) -> Tensor:
        """The standard-normal noise ``[B, n, d]`` that :meth:`sample` draws for ``context``
        ``[B, C]`` (same generator, same values): ``sample(n, c, g)`` equals
        ``generate(noise(n, c, g), c)[0]``.

        ``torch.compile(fullgraph=True)`` cannot trace a ``torch.Generator``; to compile
        sampling with one, draw the noise eagerly with this method and compile
        :meth:`generate` (``generator=None`` compiles as is).
        """
        check_positive_int("num_samples", num_samples)
        context = self._check_context(context, num_samples)
        shape = (context.shape[0], num_samples, self.features)
        return torch.randn(shape, generator=generator, dtype=context.dtype, device=context.device)

    def _generate_chunked(self, noise: Tensor, context: Tensor) -> tuple[Tensor, Tensor]:
        chunk = max(1, self.max_rows // max(1, noise.shape[0]))  # B = 0: one empty chunk
        outs = [self.bijector(part, context) for part in noise.split(chunk, dim=1)]
        x = torch.cat([o[0] for o in outs], dim=1).to(noise.dtype)
        logdet = torch.cat([o[1] for o in outs], dim=1)
        return x, standard_normal_log_prob(noise) - logdet

    def sample(
        self, num_samples: int, context: Tensor, generator: torch.Generator | None = None
    ) -> Tensor:
        """n samples per context in one batched pass: ``[B, C] -> [B, n, d]`` (B = 0 gives an
        empty tensor). Under ``torch.compile(fullgraph=True)`` pass no generator, or see
        :meth:`noise`."""
        noise = self.noise(num_samples, context, generator)
        return self._generate_chunked(noise, context)[0]

    def sample_and_log_prob(
        self, num_samples: int, context: Tensor, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor]:
        """Samples ``[B, n, d]`` and their log-densities ``[B, n]`` (with a generator under
        ``torch.compile(fullgraph=True)``: :meth:`noise` + :meth:`generate`)."""
        noise = self.noise(num_samples, context, generator)
        return self._generate_chunked(noise, context)

    def mode(self, context: Tensor) -> Tensor:
        """argmax_x p(x | c) = f(0; c): ``[B, C] -> [B, d]``.

        Exact only when log|det J| does not depend on z; otherwise raises
        :class:`ModeNotAvailableError` rather than returning a wrong answer.
        """
        if not self.bijector.constant_logdet:
            raise ModeNotAvailableError(
                "mode: f(0; c) is the density's argmax only when every bijector's log|det J| "
                "is independent of z; this flow contains one whose log-det depends on z "
                "(e.g. an affine coupling)"
            )
        context = self._check_context(context)
        zero = context.new_zeros(context.shape[0], self.features)
        return self.bijector(zero, context)[0].to(context.dtype)


class ConditionalGlow(ConditionalFlow):
    """ProHMR's flow: ``num_blocks`` Glow blocks (ActNorm → LU linear → additive coupling,
    in the normalizing direction) with alternating coupling halves.

    The coupling nets see ``[z₁, c]`` at their input layer only, then ``num_residual_blocks``
    residual blocks of width ``hidden_features``; their output layers start near zero, so the
    untrained flow is close to a fixed linear map. All Jacobians are constant in z, hence
    ``mode`` is exact. ``convention="nflows"`` builds the blocks of ProHMR's nflows fork
    (see :class:`~condflow.bijectors.GlowBlock`), for weights imported from ProHMR.
    """

    def __init__(
        self,
        features: int,
        context_features: int,
        num_blocks: int = 4,
        hidden_features: int = 1024,
        num_residual_blocks: int = 2,
        dropout: float = 0.0,
        batch_norm: bool = True,
        seed: int = 0,
        max_rows: int = 16384,
        convention: str = "condflow",
    ) -> None:
        check_positive_int("num_blocks", num_blocks)
        blocks = [
            GlowBlock(
                features,
                context_features,
                hidden_features,
                num_residual_blocks,
                dropout,
                batch_norm,
                parity=i % 2,
                seed=seed + i,
                convention=convention,
            )
            for i in range(num_blocks)
        ]
        # Block 0 is nearest the data in the normalizing direction, so it runs last in forward.
        super().__init__(Compose(blocks[::-1]), features, context_features, max_rows)
