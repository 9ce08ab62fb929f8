"""FrozenGlow: the compiled generative map equals the bijector's forward, and its written-out
vector–Jacobian product equals autograd's (float64, 1e-12), for every supported layer, on
rows of the contexts and for several cotangents at once; unsupported layers are refused by
name."""

import pytest
import torch

from condflow.bijectors import (
    AffineCoupling,
    Compose,
    CouplingNet,
    FixedAffine,
    GlowBlock,
    RandomPermutation,
)
from condflow.bijectors.frozen import FrozenGlow, _Matrix, frozen_generate
from condflow.fitting.optimize import jacobian
from condflow.flow import ConditionalGlow

D, C, B = 6, 5, 4


def randomized(module: torch.nn.Module) -> torch.nn.Module:
    """Every parameter and batch-norm statistic moved away from its initialization (so no
    layer is the identity and every ReLU mask is mixed), float64, eval mode."""
    module = module.double()
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=gen, dtype=p.dtype))
        for m in module.modules():
            if isinstance(m, torch.nn.BatchNorm1d):
                m.running_mean.normal_(0, 0.5, generator=gen)
                m.running_var.uniform_(0.5, 2.0, generator=gen)
    return module.eval().requires_grad_(False)


def net(**kw) -> CouplingNet:
    return CouplingNet(hidden_features=16, num_residual_blocks=2, **kw)


FLOWS = {
    "glow": lambda: ConditionalGlow(D, C, 3, coupling_net=net()).bijector,
    "nflows": lambda: ConditionalGlow(D, C, 3, coupling_net=net(), convention="nflows").bijector,
    "bounded_volume": lambda: ConditionalGlow(D, C, 2, coupling_net=net(), shift_bound=0.5,
                                              conditional_volume=True).bijector,
    "no_norm": lambda: ConditionalGlow(D, C, 2, coupling_net=net(batch_norm="none")).bijector,
    "no_blocks": lambda: ConditionalGlow(D, C, 2, coupling_net=CouplingNet(
        hidden_features=16, num_residual_blocks=0)).bijector,
    "unconditional": lambda: ConditionalGlow(D, 0, 2, coupling_net=net()).bijector,
    "composed": lambda: Compose([FixedAffine(torch.randn(D), torch.rand(D) + 0.5),
                                 GlowBlock(D, C, coupling_net=net()),
                                 RandomPermutation(D, seed=3),
                                 GlowBlock(D, C, coupling_net=net(), parity=1)]),
}


def inputs(context_features: int):
    g = torch.Generator().manual_seed(2)
    z = torch.randn(B, D, generator=g, dtype=torch.float64)
    context = (torch.randn(B, context_features, generator=g, dtype=torch.float64)
               if context_features else None)
    return z, context


@pytest.mark.parametrize("name", sorted(FLOWS))
def test_frozen_map_and_vjp_equal_the_bijector_and_autograd(name):
    bijector = randomized(FLOWS[name]())
    z, context = inputs(0 if name == "unconditional" else C)
    program = FrozenGlow(bijector, context)
    z_ref, z_new = z.clone().requires_grad_(True), z.clone().requires_grad_(True)
    x_ref, _ = bijector(z_ref, context)
    x = frozen_generate(program, z_new)
    assert x_ref.abs().max() > 1 and not torch.allclose(x_ref, z)  # not near the identity
    torch.testing.assert_close(x, x_ref, rtol=1e-12, atol=1e-12)
    cotangent = torch.randn(x.shape, generator=torch.Generator().manual_seed(3),
                            dtype=x.dtype)
    (g_ref,) = torch.autograd.grad(x_ref, z_ref, cotangent)
    (g,) = torch.autograd.grad(x, z_new, cotangent)
    torch.testing.assert_close(g, g_ref, rtol=1e-12, atol=1e-12)
    # Several cotangents in one backward pass (the Levenberg–Marquardt Jacobian).
    x_ref, _ = bijector(z_ref, context)
    torch.testing.assert_close(jacobian(frozen_generate(program, z_new), z_new),
                               jacobian(x_ref, z_ref), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("precision, within", [("bfloat16", 0.02), ("int8", 0.05)])
def test_reduced_precision_products_are_the_stored_weights(precision, within):
    """x Wᵀ and g W with the stored weights (int8: dequantized, Q ⊙ s), to the rounding of
    the products' bfloat16 inputs and outputs; the whole map near the float32 flow's."""
    g = torch.Generator().manual_seed(4)
    weight = torch.randn(32, 48, generator=g) * torch.rand(32, 1, generator=g)
    x, cot = torch.randn(3, 48, generator=g), torch.randn(2, 3, 32, generator=g)
    m = _Matrix(weight, precision)
    assert _Matrix(weight[:24], precision).precision == (None if precision == "int8"
                                                         else precision)
    stored = (m.weight.double() * m.scale.double()[:, None] if precision == "int8"
              else m.weight.double())
    if precision == "int8":
        assert m.weight.dtype == torch.int8 and (m.weight.abs().amax(1) == 127).all()
        assert (stored - weight.double()).abs().max() <= 0.5 * m.scale.max() + 1e-7
    bf = torch.bfloat16
    torch.testing.assert_close(m.apply(x).double(), x.to(bf).double() @ stored.T,
                               rtol=1e-2, atol=1e-2)
    torch.testing.assert_close(m.apply_t(cot).double(), (cot.double() * (
        m.scale.double() if precision == "int8" else 1)).to(bf).double() @ (
        m.weight.double() if precision == "int8" else stored), rtol=1e-2, atol=1e-2)
    bijector = randomized(ConditionalGlow(16, C, 3, coupling_net=net()).bijector).float()
    g = torch.Generator().manual_seed(5)
    z, context = torch.randn(B, 16, generator=g), torch.randn(B, C, generator=g)
    x_ref, _ = bijector(z, context)
    x_low = frozen_generate(FrozenGlow(bijector, context, precision), z)
    assert x_low.dtype == torch.float32
    assert 0 < (x_low - x_ref).norm() / x_ref.norm() < within


def test_frozen_rows_of_the_contexts():
    bijector = randomized(FLOWS["bounded_volume"]())
    z, context = inputs(C)
    program = FrozenGlow(bijector, context)
    index = torch.tensor([3, 1, 1])
    x_ref, _ = bijector(z[index], context[index])
    torch.testing.assert_close(frozen_generate(program, z[index], index), x_ref,
                               rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match=r"z: expected 3 rows \(one per context row\), got 4"):
        frozen_generate(program, z, index)
    with pytest.raises(ValueError, match=r"z: expected \[b, d\]"):
        frozen_generate(program, z[:, None], None)


def test_frozen_refuses_what_it_does_not_support():
    _, context = inputs(C)
    with pytest.raises(ValueError, match=r"bijector\.bijectors\.0\.bijectors\.0\.net\.blocks"
                                         r"\.0\.norm0: FrozenGlow supports batch norm"):
        FrozenGlow(ConditionalGlow(D, C, 2, coupling_net=net(batch_norm="layer")).bijector
                   .eval(), context)
    with pytest.raises(ValueError, match=r"bijector\.bijectors\.0: FrozenGlow does not "
                                         r"support AffineCoupling"):
        FrozenGlow(Compose([AffineCoupling(D, C)]).eval(), context)
    with pytest.raises(ValueError, match="bijector: FrozenGlow needs eval mode"):
        FrozenGlow(FLOWS["glow"](), context)
    with pytest.raises(ValueError, match="context: .* is conditional and needs a context"):
        FrozenGlow(FLOWS["glow"]().eval(), None)
    with pytest.raises(ValueError, match=r"precision: expected None or one of \('bfloat16', "
                                         r"'int8'\), got 'float16'"):
        FrozenGlow(FLOWS["glow"]().eval(), context, "float16")
