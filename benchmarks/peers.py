"""The ProHMR-shaped Glow flow built from nflows parts and from zuko parts.

Both peers have condflow's architecture: ``num_blocks`` blocks of ActNorm → LU linear →
additive coupling (normalizing direction), coupling nets ``[z₁, c]`` → ``hidden`` → residual
blocks (BN → ReLU → Linear → BN → ReLU → Dropout → Linear) → output, the context entering at
the input layer only. Unlike condflow, both peers feed the context to the input layer once
per *sample* (the ``[B·n, d/2 + C]`` concatenation their coupling APIs require).

Documented mismatches (none changes the FLOP count by more than 0.01 %):

- nflows ``LULinear`` has a bias (d parameters per block) and no permutation matrix;
  zuko's ``LULinearTransform`` has neither; condflow's ``LULinear`` has a fixed permutation
  and stores ``L``/``U`` as full ``[d, d]`` tensors of which only the triangles are used
  (bench_flow.py's *effective* parameter count counts the used entries only).
- zuko has no ActNorm: the per-feature affine layer is zuko's ``MonotonicAffineTransform``
  (its log-scale is soft-clipped, same parameter count).
- zuko's LU layer is oriented so that sampling uses its matrix product and ``log_prob`` its
  triangular solves (zuko has no cached inverse; its solve broadcasts the ``[d, d]``
  factor to every sample); nflows' LU uses its eval-mode cache
  (``use_cache()``), so both of its directions are matrix products.
- Batch norm: nflows' residual block uses ``eps=1e-3``, condflow ``1e-5``.

Not a mismatch but zuko's design: its flows sample through the inverse transforms, and
``torch.distributions``' inverse has no fused ``call_and_ladj``, so ``sample_and_log_prob``
evaluates each coupling net twice (once for the value, once for the log-det); ``log_prob``
evaluates it once. bench_flow.py's FLOP counts count one evaluation.
"""

from __future__ import annotations

from functools import partial

import torch
import zuko
from nflows.distributions import StandardNormal
from nflows.flows import Flow as NflowsFlow
from nflows.nn.nets.resnet import ResidualBlock
from nflows.transforms import ActNorm, AdditiveCouplingTransform, CompositeTransform, LULinear
from torch import Tensor, nn
from zuko.transforms import (
    AdditiveTransform,
    CouplingTransform,
    DependentTransform,
    LULinearTransform,
    MonotonicAffineTransform,
)


class ConcatResidualNet(nn.Module):
    """``net(inputs, context)`` (nflows' call signature): ``[N, k]``, ``[N, C]`` → ``[N, m]``.

    ``[inputs, context]`` enter the input layer only (nflows' own ``ResidualNet`` adds the
    context in every block), followed by nflows' ``ResidualBlock``s with batch norm.
    """

    def __init__(self, in_features: int, out_features: int, context_features: int,
                 hidden: int, num_residual_blocks: int, dropout: float, batch_norm: bool) -> None:
        super().__init__()
        self.input = nn.Linear(in_features + context_features, hidden)
        self.blocks = nn.ModuleList(
            ResidualBlock(hidden, None, dropout_probability=dropout, use_batch_norm=batch_norm)
            for _ in range(num_residual_blocks)
        )
        self.output = nn.Linear(hidden, out_features)

    def forward(self, inputs: Tensor, context: Tensor) -> Tensor:
        h = self.input(torch.cat([inputs, context], dim=-1))
        lead = h.shape[:-1]
        h = h.reshape(-1, h.shape[-1])  # BatchNorm1d wants [N, H]
        for block in self.blocks:
            h = block(h)
        return self.output(h).reshape(*lead, -1)


def _halves_mask(features: int, parity: int) -> Tensor:
    """condflow's coupling split: parity 0 transforms the second half, parity 1 the first."""
    first = features // 2
    transformed = torch.arange(features) >= first
    if parity == 1:
        transformed = torch.arange(features) < features - first
    return transformed


# -- nflows -----------------------------------------------------------------------------------
class _LULinear(LULinear):
    """nflows' ``LULinear`` whose inverse also works on CUDA: nflows 0.14 builds the identity
    for its triangular solves on the CPU whatever the parameters' device."""

    def weight_inverse(self) -> Tensor:
        lower, upper = self._create_lower_upper()
        identity = torch.eye(self.features, dtype=lower.dtype, device=lower.device)
        lower_inverse = torch.linalg.solve_triangular(lower, identity, upper=False,
                                                      unitriangular=True)
        return torch.linalg.solve_triangular(upper, lower_inverse, upper=True)


class NflowsGlow(nn.Module):
    """The flow as ``nflows.flows.Flow``, with condflow's call API on ``[B, n, d]`` samples."""

    def __init__(self, features: int, context_features: int, num_blocks: int = 4,
                 hidden: int = 1024, num_residual_blocks: int = 2, dropout: float = 0.0,
                 batch_norm: bool = True) -> None:
        super().__init__()
        self.features = features
        layers = []
        for i in range(num_blocks):
            mask = _halves_mask(features, i % 2).int()
            net = partial(ConcatResidualNet, context_features=context_features, hidden=hidden,
                          num_residual_blocks=num_residual_blocks, dropout=dropout,
                          batch_norm=batch_norm)
            lu = _LULinear(features, identity_init=True)
            lu.use_cache()
            layers += [ActNorm(features), lu, AdditiveCouplingTransform(mask, net)]
        self.flow = NflowsFlow(CompositeTransform(layers), StandardNormal([features]))

    def log_prob(self, inputs: Tensor, context: Tensor) -> Tensor:
        b, n, d = inputs.shape
        flat = self.flow.log_prob(inputs.reshape(b * n, d), context.repeat_interleave(n, dim=0))
        return flat.reshape(b, n)

    def sample(self, num_samples: int, context: Tensor) -> Tensor:
        return self.flow.sample(num_samples, context)

    def sample_and_log_prob(self, num_samples: int, context: Tensor) -> tuple[Tensor, Tensor]:
        return self.flow.sample_and_log_prob(num_samples, context)

    def mode(self, context: Tensor) -> Tensor:
        zero = context.new_zeros(context.shape[0], self.features)
        return self.flow._transform.inverse(zero, context)[0]


# -- zuko -------------------------------------------------------------------------------------
class ZukoAdditiveCoupling(zuko.lazy.LazyTransform):
    """x_b + t(x_a, c) as a zuko lazy transform with a :class:`ConcatResidualNet` hyper net."""

    def __init__(self, features: int, context_features: int, parity: int, **net_kwargs) -> None:
        super().__init__()
        mask = ~_halves_mask(features, parity)  # zuko: True marks the identity split
        self.register_buffer("mask", mask)
        k = int(mask.sum())
        self.net = ConcatResidualNet(k, features - k, context_features, **net_kwargs)

    def meta(self, c: Tensor, x_a: Tensor) -> DependentTransform:
        c = c.expand(*x_a.shape[:-1], c.shape[-1])  # zuko's own couplings broadcast likewise
        return DependentTransform(AdditiveTransform(self.net(x_a, c)), 1)

    def forward(self, c: Tensor | None = None) -> CouplingTransform:
        return CouplingTransform(partial(self.meta, c), self.mask)


class ZukoGlow(nn.Module):
    """The flow as ``zuko.flows.Flow``, with condflow's call API on ``[B, n, d]`` samples."""

    def __init__(self, features: int, context_features: int, num_blocks: int = 4,
                 hidden: int = 1024, num_residual_blocks: int = 2, dropout: float = 0.0,
                 batch_norm: bool = True) -> None:
        super().__init__()
        self.features = features
        net_kwargs = dict(hidden=hidden, num_residual_blocks=num_residual_blocks,
                          dropout=dropout, batch_norm=batch_norm)
        zeros, eye = torch.zeros(features), torch.eye(features)
        layers = []
        for i in range(num_blocks):
            actnorm = zuko.lazy.UnconditionalTransform(
                lambda shift, scale: DependentTransform(MonotonicAffineTransform(shift, scale), 1),
                zeros.clone(), zeros.clone())
            lu = zuko.lazy.UnconditionalTransform(LULinearTransform, eye.clone()).inv
            layers += [actnorm, lu, ZukoAdditiveCoupling(features, context_features, i % 2,
                                                         **net_kwargs)]
        base = zuko.lazy.UnconditionalDistribution(
            zuko.distributions.DiagNormal, zeros.clone(), torch.ones(features), buffer=True)
        self.flow = zuko.flows.Flow(layers, base)

    def log_prob(self, inputs: Tensor, context: Tensor) -> Tensor:
        # zuko puts sample dims first: x [n, B, d] with a [B, C] context.
        return self.flow(context).log_prob(inputs.transpose(0, 1)).transpose(0, 1)

    def sample(self, num_samples: int, context: Tensor) -> Tensor:
        return self.flow(context).rsample((num_samples,)).transpose(0, 1)

    def sample_and_log_prob(self, num_samples: int, context: Tensor) -> tuple[Tensor, Tensor]:
        x, lp = self.flow(context).rsample_and_log_prob((num_samples,))
        return x.transpose(0, 1), lp.transpose(0, 1)

    def mode(self, context: Tensor) -> Tensor:
        transform = self.flow(context).transform
        return transform.inv(context.new_zeros(context.shape[0], self.features))
