"""The Glow block of ProHMR: ActNorm → LU linear → additive coupling (optionally preceded
by a context-dependent elementwise affine map)."""

from __future__ import annotations

from typing import cast

from condflow.bijectors.actnorm import ActNorm
from condflow.bijectors.base import Compose
from condflow.bijectors.conditional import ConditionalAffine
from condflow.bijectors.coupling import AdditiveCoupling
from condflow.bijectors.lu import LULinear, NflowsLULinear
from condflow.bijectors.nets import CouplingNet

__all__ = ["GlowBlock"]


class GlowBlock(Compose):
    """One flow step with a z-independent Jacobian.

    Read in the normalizing direction x → z (as in Glow and ProHMR) the block is
    ActNorm → LU linear → additive coupling, so ActNorm's data-dependent initialization sees
    the block's input data. In the generative direction z → x (``forward``) the order is
    reversed: coupling, then LU linear, then ActNorm.

    ``convention="nflows"`` builds the block of ProHMR's nflows fork instead: ActNorm and LU
    linear parametrized in the normalizing direction (:class:`NflowsLULinear`, with a bias)
    and even/odd coupling masks; the coupling itself is the same map up to the sign of the
    net's output (nflows adds ``t`` in the normalizing direction, we add it generatively).
    Other arguments as in :class:`~condflow.flow.ConditionalGlow` (``seed`` seeds the LU
    linear map).

    With ``conditional_volume`` a :class:`ConditionalAffine` (x = exp(s(c)) ⊙ y + b(c),
    identity at initialization, net width ``volume_hidden``) runs first in the normalizing
    direction (last in ``forward``): the log-det then depends on c but still not on z, so the
    mode stays exact while the volume follows the input. Without it (the default) the block
    is ProHMR's, with the same parameters and ``state_dict`` keys.
    """

    def __init__(
        self,
        features: int,
        context_features: int,
        *,
        coupling_net: CouplingNet = CouplingNet(),
        parity: int = 0,
        seed: int = 0,
        convention: str = "condflow",
        shift_bound: float | None = None,
        conditional_volume: bool = False,
        volume_hidden: int = 128,
    ) -> None:
        if convention not in ("condflow", "nflows"):
            raise ValueError(f"convention: expected 'condflow' or 'nflows', got {convention!r}")
        nflows = convention == "nflows"
        coupling = AdditiveCoupling(
            features,
            context_features,
            coupling_net=coupling_net,
            parity=parity,
            split="alternate" if nflows else "halves",
            shift_bound=shift_bound,
        )
        linear = NflowsLULinear(features) if nflows else LULinear(features, seed=seed)
        actnorm = ActNorm(features, parametrization="normalizing" if nflows else "generative")
        parts = [coupling, linear, actnorm]
        if conditional_volume:
            parts.append(ConditionalAffine(features, context_features, volume_hidden))
        super().__init__(parts)

    # The parts' types are known by construction: __init__ builds them in this order.
    @property
    def coupling(self) -> AdditiveCoupling:
        return cast(AdditiveCoupling, self.bijectors[0])

    @property
    def linear(self) -> LULinear | NflowsLULinear:
        return cast("LULinear | NflowsLULinear", self.bijectors[1])

    @property
    def actnorm(self) -> ActNorm:
        return cast(ActNorm, self.bijectors[2])

    @property
    def volume(self) -> ConditionalAffine | None:
        """The context-dependent affine map, or ``None`` (ProHMR's block)."""
        return cast(ConditionalAffine, self.bijectors[3]) if len(self.bijectors) > 3 else None
