"""LU-parametrized invertible linear maps: x = W z with W = P · L · (U + diag s), and
nflows' variant z = L · U · x + b (the layout of ProHMR's checkpoints)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from condflow.bijectors.base import Bijector, constant_logabsdet

__all__ = ["LULinear", "NflowsLULinear"]


class LULinear(Bijector):
    """Invertible linear map with log|det W| = Σ log|s|.

    ``P`` is a fixed permutation, ``L`` unit lower-triangular, ``U`` strictly upper-triangular
    and ``s = sign ⊙ exp(log_s)`` with a fixed sign. Initialized, as in Glow, from the LU
    decomposition of a random rotation (``seed``), so the map starts volume-preserving but
    mixing. ``W`` and ``W⁻¹`` are assembled once per call (never per sample) and cached in
    eval mode while no gradient to the parameters is needed. The cache is keyed on the
    parameters' version counters and checked against a copy of their values, since a write
    through ``.data`` does not bump the version (the check is O(d²), the assembly O(d³)).
    """

    permutation: Tensor
    sign_s: Tensor

    def __init__(self, features: int, seed: int | None = 0) -> None:
        super().__init__()
        self.features = features
        gen = torch.Generator().manual_seed(seed) if seed is not None else None
        q, _ = torch.linalg.qr(torch.randn(features, features, generator=gen, dtype=torch.float64))
        p, lower, upper = torch.linalg.lu(q)
        s = torch.diagonal(upper)
        self.register_buffer("permutation", p.float())
        self.register_buffer("sign_s", torch.sign(s).float())
        self.lower = nn.Parameter(torch.tril(lower, -1).float())
        self.upper = nn.Parameter(torch.triu(upper, 1).float())
        self.log_s = nn.Parameter(torch.log(s.abs()).float())
        self._cache: tuple[tuple, Tensor, Tensor, Tensor] | None = None

    def _assemble(self) -> tuple[Tensor, Tensor]:
        device = self.lower.device
        eye = torch.eye(self.features, dtype=self.lower.dtype, device=device)
        # W and W⁻¹ in the parameters' precision even under autocast: a bf16-rounded W
        # would no longer have the log-det Σ log|s|.
        with torch.autocast(device.type, enabled=False):
            lower = torch.tril(self.lower, -1) + eye
            upper = torch.triu(self.upper, 1) + torch.diag(self.sign_s * self.log_s.exp())
            weight = self.permutation @ lower @ upper
            # W⁻¹ = U⁻¹ L⁻¹ Pᵀ by two triangular solves (P is orthogonal).
            lower_inv = torch.linalg.solve_triangular(lower, eye, upper=False, unitriangular=True)
            upper_inv = torch.linalg.solve_triangular(upper, eye, upper=True)
            return weight, upper_inv @ lower_inv @ self.permutation.T

    def _factors(self) -> tuple[Tensor, ...]:
        """The parameters ``W`` is assembled from (the cache key)."""
        return (self.lower, self.upper, self.log_s)

    def weights(self) -> tuple[Tensor, Tensor]:
        """``(W, W⁻¹)``, each ``[d, d]``."""
        params = self._factors()
        cacheable = not self.training and not torch.compiler.is_compiling()
        if not cacheable or (torch.is_grad_enabled() and any(p.requires_grad for p in params)):
            self._cache = None
            return self._assemble()
        key = tuple((p._version, p.data_ptr(), p.dtype, p.device) for p in params)
        with torch.no_grad():
            values = torch.cat([p.reshape(-1) for p in params])
            if (
                self._cache is None
                or self._cache[0] != key
                or not torch.equal(self._cache[3], values)
            ):
                self._cache = (key, *self._assemble(), values)
        return self._cache[1], self._cache[2]

    def forward(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        weight, _ = self.weights()
        return z @ weight.T, constant_logabsdet(self.log_s.sum(), z)

    def inverse(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        _, weight_inv = self.weights()
        return x @ weight_inv.T, constant_logabsdet(-self.log_s.sum(), x)


class NflowsLULinear(LULinear):
    """nflows' ``LULinear``, parametrizing the normalizing direction: ``z = L U x + b``.

    ``L`` is unit lower-triangular, ``U`` upper-triangular with the positive diagonal
    ``softplus(unconstrained_diag) + eps``, ``b`` a bias; there is no permutation. This is
    the layer of ProHMR's flow (the nflows fork used by ProHMR), kept in its own
    parametrization so that imported weights are used unchanged: the generative direction
    is ``x = (L U)⁻¹ (z − b)``, log|det ∂x/∂z| = −Σ log diag U. ``lower``/``upper`` hold
    full ``[d, d]`` matrices of which only the strict triangles are used. Initialized, as in
    nflows, to the identity.
    """

    def __init__(self, features: int, eps: float = 1e-3) -> None:
        # LULinear's caching of the assembled matrices is shared; its parameters are not.
        Bijector.__init__(self)
        self.features = features
        self.eps = eps
        self.lower = nn.Parameter(torch.zeros(features, features))
        self.upper = nn.Parameter(torch.zeros(features, features))
        # softplus(c) + eps = 1 at initialization.
        init = float(torch.log(torch.expm1(torch.tensor(1.0 - eps, dtype=torch.float64))))
        self.unconstrained_diag = nn.Parameter(torch.full((features,), init))
        self.bias = nn.Parameter(torch.zeros(features))
        self._cache = None

    def _factors(self) -> tuple[Tensor, ...]:
        return (self.lower, self.upper, self.unconstrained_diag)

    def diagonal(self) -> Tensor:
        """The diagonal of ``U``: ``softplus(unconstrained_diag) + eps`` ``[d]``."""
        return F.softplus(self.unconstrained_diag) + self.eps

    def _assemble(self) -> tuple[Tensor, Tensor]:
        device = self.lower.device
        eye = torch.eye(self.features, dtype=self.lower.dtype, device=device)
        with torch.autocast(device.type, enabled=False):
            lower = torch.tril(self.lower, -1) + eye
            upper = torch.triu(self.upper, 1) + torch.diag(self.diagonal())
            lower_inv = torch.linalg.solve_triangular(lower, eye, upper=False, unitriangular=True)
            upper_inv = torch.linalg.solve_triangular(upper, eye, upper=True)
            # The generative W = (L U)⁻¹ and its inverse L U.
            return upper_inv @ lower_inv, lower @ upper

    def forward(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        weight, _ = self.weights()
        logdet = -torch.log(self.diagonal()).sum()
        return (z - self.bias) @ weight.T, constant_logabsdet(logdet, z)

    def inverse(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        _, weight_inv = self.weights()
        logdet = torch.log(self.diagonal()).sum()
        return x @ weight_inv.T + self.bias, constant_logabsdet(logdet, x)
