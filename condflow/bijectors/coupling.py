"""Coupling layers: one half of the features is transformed conditioned on the other half
and on the context."""

from __future__ import annotations

import torch
from torch import Tensor

from condflow.bijectors.base import Bijector
from condflow.bijectors.nets import ContextResidualNet, CouplingNet, check_coupling_net

__all__ = ["AdditiveCoupling", "AffineCoupling"]


class _Coupling(Bijector):
    """Splits ``[..., d]`` into a conditioning half and a transformed half.

    ``split="halves"``: ``parity=0`` keeps the first ``d // 2`` features and transforms the
    rest; ``parity=1`` the reverse. ``split="alternate"`` (nflows' ``mask[::2]``, as in
    ProHMR's flow): ``parity=0`` keeps the even-indexed features and transforms the odd
    ones; ``parity=1`` the reverse. Alternating parities transform every feature.
    ``coupling_net`` is the shape of the net (:class:`~condflow.bijectors.CouplingNet`).
    """

    #: outputs of the net per transformed feature (1: shift; 2: log-scale and shift)
    net_outputs_per_feature: int = 1
    # Registered only for split="alternate".
    identity_index: Tensor
    transformed_index: Tensor
    join_index: Tensor

    def __init__(
        self,
        features: int,
        context_features: int,
        *,
        coupling_net: CouplingNet = CouplingNet(),
        parity: int = 0,
        split: str = "halves",
    ) -> None:
        super().__init__()
        check_coupling_net("coupling_net", coupling_net)
        if features < 2:
            raise ValueError(
                f"features: a coupling layer needs at least 2 features, got {features}"
            )
        if split not in ("halves", "alternate"):
            raise ValueError(f"split: expected 'halves' or 'alternate', got {split!r}")
        self.features = features
        self.parity = parity
        self.split = split
        if split == "alternate":
            index = torch.arange(features)
            identity, transformed = index[index % 2 == parity], index[index % 2 != parity]
            # Derived from the arguments, so kept out of the state_dict.
            self.register_buffer("identity_index", identity, persistent=False)
            self.register_buffer("transformed_index", transformed, persistent=False)
            self.register_buffer(
                "join_index", torch.argsort(torch.cat([identity, transformed])), persistent=False
            )
            self.num_identity = len(identity)
        else:
            first = features // 2
            self.num_identity = first if parity == 0 else features - first
        self.num_transformed = features - self.num_identity
        self.net = ContextResidualNet(
            self.num_identity,
            self.net_outputs_per_feature * self.num_transformed,
            context_features,
            settings=coupling_net,
        )

    def _split(self, v: Tensor) -> tuple[Tensor, Tensor]:
        if self.split == "alternate":
            return v[..., self.identity_index], v[..., self.transformed_index]
        if self.parity == 0:
            return v[..., : self.num_identity], v[..., self.num_identity :]
        return v[..., self.num_transformed :], v[..., : self.num_transformed]

    def _join(self, identity: Tensor, transformed: Tensor) -> Tensor:
        if self.split == "alternate":
            return torch.cat([identity, transformed], dim=-1)[..., self.join_index]
        parts = (identity, transformed) if self.parity == 0 else (transformed, identity)
        return torch.cat(parts, dim=-1)


class AdditiveCoupling(_Coupling):
    """x₂ = z₂ + t(z₁, c), x₁ = z₁; log|det| = 0, so the Jacobian is constant in z.

    Args:
        features: d.
        context_features: C.
        coupling_net: the shape of the net t (:class:`~condflow.bijectors.CouplingNet`:
            width, residual blocks, dropout, normalization).
        parity: which half is transformed (0: second, 1: first).
        split: ``"halves"`` or ``"alternate"`` (even/odd features; see ``_Coupling``).
        shift_bound: if given, the shift is soft-clamped, ``t = b · tanh(t_net / b)`` with
            ``b = shift_bound`` (any t keeps log|det| = 0); ``None`` leaves it unbounded.
    """

    constant_logdet = True

    def __init__(
        self,
        features: int,
        context_features: int,
        *,
        coupling_net: CouplingNet = CouplingNet(),
        parity: int = 0,
        split: str = "halves",
        shift_bound: float | None = None,
    ) -> None:
        super().__init__(
            features, context_features, coupling_net=coupling_net, parity=parity, split=split
        )
        if shift_bound is not None and (
            isinstance(shift_bound, bool)
            or not isinstance(shift_bound, int | float)
            or not 0 < shift_bound < float("inf")
        ):
            raise ValueError(
                f"shift_bound: expected a positive number or None, got {shift_bound!r}"
            )
        self.shift_bound = None if shift_bound is None else float(shift_bound)

    def _shift(self, cond: Tensor, context: Tensor | None) -> Tensor:
        t = self.net(cond, context)
        if self.shift_bound is None:
            return t
        return self.shift_bound * torch.tanh(t / self.shift_bound)

    def forward(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        z1, z2 = self._split(z)
        return self._join(z1, z2 + self._shift(z1, context)), z.new_zeros(z.shape[:-1])

    def inverse(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        x1, x2 = self._split(x)
        return self._join(x1, x2 - self._shift(x1, context)), x.new_zeros(x.shape[:-1])


class AffineCoupling(_Coupling):
    """x₂ = z₂ ⊙ exp(s(z₁, c)) + t(z₁, c); log|det| = Σ s depends on z.

    The log-scale is soft-clamped to ``(-scale_bound, scale_bound)`` by a tanh for stability.
    Same arguments as :class:`AdditiveCoupling` plus ``scale_bound``.
    """

    constant_logdet = False
    logdet_depends_on_context = True
    net_outputs_per_feature = 2

    def __init__(
        self,
        features: int,
        context_features: int,
        *,
        coupling_net: CouplingNet = CouplingNet(),
        parity: int = 0,
        scale_bound: float = 3.0,
        split: str = "halves",
    ) -> None:
        super().__init__(
            features, context_features, coupling_net=coupling_net, parity=parity, split=split
        )
        self.scale_bound = scale_bound

    def _scale_shift(self, cond: Tensor, context: Tensor | None) -> tuple[Tensor, Tensor]:
        raw_scale, shift = self.net(cond, context).chunk(2, dim=-1)
        return self.scale_bound * torch.tanh(raw_scale / self.scale_bound), shift

    def forward(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        z1, z2 = self._split(z)
        log_scale, shift = self._scale_shift(z1, context)
        return self._join(z1, z2 * log_scale.exp() + shift), log_scale.sum(-1)

    def inverse(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        x1, x2 = self._split(x)
        log_scale, shift = self._scale_shift(x1, context)
        return self._join(x1, (x2 - shift) * torch.exp(-log_scale)), -log_scale.sum(-1)
