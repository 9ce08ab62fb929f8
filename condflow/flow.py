"""Conditional normalizing flows p(x | c) with a standard-normal base."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from condflow._checks import check_positive_int, check_tensor
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
    def _check_context(self, context: object) -> Tensor:
        return check_tensor("context", context, ("B", self.context_features))

    def _check_inputs(self, inputs: object, context: Tensor) -> Tensor:
        d, batch = self.features, context.shape[0]
        if isinstance(inputs, Tensor) and inputs.dim() == 3:
            check_tensor("inputs", inputs, (batch, "n", d))
        else:
            check_tensor("inputs", inputs, (batch, d))
        if inputs.dtype != context.dtype:
            raise ValueError(f"inputs: dtype {inputs.dtype} differs from context's {context.dtype}")
        return inputs

    # -- density --------------------------------------------------------------------------
    def transform_to_noise(self, inputs: Tensor, context: Tensor) -> Tensor:
        """z = f⁻¹(x; c): ``[B, d]`` or ``[B, n, d]`` → same shape."""
        context = self._check_context(context)
        inputs = self._check_inputs(inputs, context)
        return self.bijector.inverse(inputs, context)[0].to(inputs.dtype)

    def log_prob(self, inputs: Tensor, context: Tensor) -> Tensor:
        """log p(x | c): ``[B, d] -> [B]`` or ``[B, n, d] -> [B, n]``."""
        context = self._check_context(context)
        inputs = self._check_inputs(inputs, context)
        z, logdet = self.bijector.inverse(inputs, context)
        return standard_normal_log_prob(z.to(inputs.dtype)) + logdet

    # -- generation -----------------------------------------------------------------------
    def generate(self, noise: Tensor, context: Tensor) -> tuple[Tensor, Tensor]:
        """x = f(z; c) for given noise ``[B, d]`` or ``[B, n, d]``, with log p(x | c).

        This is the differentiable map used for optimization in latent space (fitting).
        """
        context = self._check_context(context)
        noise = self._check_inputs(noise, context)
        x, logdet = self.bijector(noise, context)
        return x.to(noise.dtype), standard_normal_log_prob(noise) - logdet

    def _draw(self, num_samples: int, context: Tensor, generator: torch.Generator | None) -> Tensor:
        context = self._check_context(context)
        check_positive_int("num_samples", num_samples)
        shape = (context.shape[0], num_samples, self.features)
        return torch.randn(shape, generator=generator, dtype=context.dtype, device=context.device)

    def _generate_chunked(self, noise: Tensor, context: Tensor) -> tuple[Tensor, Tensor]:
        chunk = max(1, self.max_rows // noise.shape[0])
        outs = [self.bijector(part, context) for part in noise.split(chunk, dim=1)]
        x = torch.cat([o[0] for o in outs], dim=1).to(noise.dtype)
        logdet = torch.cat([o[1] for o in outs], dim=1)
        return x, standard_normal_log_prob(noise) - logdet

    def sample(
        self, num_samples: int, context: Tensor, generator: torch.Generator | None = None
    ) -> Tensor:
        """n samples per context in one batched pass: ``[B, C] -> [B, n, d]``."""
        noise = self._draw(num_samples, context, generator)
        return self._generate_chunked(noise, context)[0]

    def sample_and_log_prob(
        self, num_samples: int, context: Tensor, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor]:
        """Samples ``[B, n, d]`` and their log-densities ``[B, n]``."""
        noise = self._draw(num_samples, context, generator)
        return self._generate_chunked(noise, context)

    def mode(self, context: Tensor) -> Tensor:
        """argmax_x p(x | c) = f(0; c): ``[B, C] -> [B, d]``.

        Exact only when log|det J| does not depend on z; otherwise raises
        :class:`ModeNotAvailableError` rather than returning a wrong answer.
        """
        return self.mode_and_log_prob(context)[0]

    def mode_and_log_prob(self, context: Tensor) -> tuple[Tensor, Tensor]:
        """The mode f(0; c) ``[B, d]`` and its log-density log p(mode | c) ``[B]``.

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
        context = self._check_context(context)
        zero = context.new_zeros(context.shape[0], self.features)
        x, logdet = self.bijector(zero, context)
        return x.to(context.dtype), standard_normal_log_prob(zero) - logdet

    @property
    def volume_depends_on_context(self) -> bool:
        """Whether log p(mode | c) (the log-det of the map) can differ between inputs."""
        return bool(self.bijector.logdet_depends_on_context)


class ConditionalGlow(ConditionalFlow):
    """ProHMR's flow: ``num_blocks`` Glow blocks (ActNorm → LU linear → additive coupling,
    in the normalizing direction) with alternating coupling halves.

    The coupling nets see ``[z₁, c]`` at their input layer only, then ``num_residual_blocks``
    residual blocks of width ``hidden_features``; their output layers start near zero, so the
    untrained flow is close to a fixed linear map. All Jacobians are constant in z, hence
    ``mode`` is exact. ``conditional_volume`` adds a context-dependent elementwise affine map
    to every block (see :class:`~condflow.bijectors.GlowBlock`): the log-det then depends on
    c (not on z), so the mode stays exact and log p(mode | c) follows the input.
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
        conditional_volume: bool = False,
        volume_hidden: int = 128,
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
                conditional_volume=conditional_volume,
                volume_hidden=volume_hidden,
            )
            for i in range(num_blocks)
        ]
        # Block 0 is nearest the data in the normalizing direction, so it runs last in forward.
        super().__init__(Compose(blocks[::-1]), features, context_features, max_rows)
