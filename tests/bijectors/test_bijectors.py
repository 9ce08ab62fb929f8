"""Per-bijector properties: invertibility, exact log-det, z- and c-independence flags,
caching, per-context nets evaluated once per context."""

import pytest
import torch
from torch.autograd.functional import jacobian

from condflow.bijectors import (
    ActNorm,
    AdditiveCoupling,
    AffineCoupling,
    Compose,
    ConditionalAffine,
    CouplingNet,
    FixedAffine,
    GlowBlock,
    Inverse,
    LULinear,
    NflowsLULinear,
    Permutation,
    RandomPermutation,
    ReversePermutation,
)

D, C = 6, 3


def perturb(module: torch.nn.Module, scale: float = 0.1) -> torch.nn.Module:
    """Move every parameter away from its (near-identity) initialization."""
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(scale * torch.randn(p.shape, generator=gen, dtype=p.dtype))
    return module.eval()


def make_all():
    kw = dict(coupling_net=CouplingNet(hidden_features=16, num_residual_blocks=1))
    net = CouplingNet(hidden_features=16)
    return {
        "actnorm": ActNorm(D),
        "lu": LULinear(D, seed=3),
        "additive0": AdditiveCoupling(D, C, parity=0, **kw),
        "additive1": AdditiveCoupling(D, C, parity=1, **kw),
        "additive_bounded": AdditiveCoupling(D, C, shift_bound=0.05, **kw),
        "affine": AffineCoupling(D, C, **kw),
        "fixed_affine": FixedAffine(torch.randn(D), torch.rand(D) + 0.5),
        "reverse": ReversePermutation(D),
        "random_perm": RandomPermutation(D, seed=2),
        "glow": GlowBlock(D, C, coupling_net=net),
        "glow_layer_norm": GlowBlock(
            D, C, coupling_net=CouplingNet(hidden_features=16, batch_norm="layer")
        ),
        "inverse_glow": Inverse(GlowBlock(D, C, coupling_net=net, parity=1)),
        # the conventions of ProHMR's nflows fork (condflow.interop.prohmr)
        "actnorm_normalizing": ActNorm(D, parametrization="normalizing"),
        "nflows_lu": NflowsLULinear(D),
        "additive_alternate1": AdditiveCoupling(D, C, parity=1, split="alternate", **kw),
        "glow_nflows": GlowBlock(D, C, coupling_net=net, convention="nflows"),
        "conditional_affine": ConditionalAffine(D, C, hidden_features=8),
        "volume_glow": GlowBlock(D, C, coupling_net=net, conditional_volume=True,
                                 volume_hidden=8),
    }


BIJECTORS = sorted(make_all())


@pytest.fixture(params=BIJECTORS)
def bijector(request):
    return perturb(make_all()[request.param])


def test_invertible_float32_including_six_sigma(bijector):
    z = torch.randn(64, D)
    z[:4] = 6.0 * torch.sign(torch.randn(4, D))
    c = torch.randn(64, C)
    with torch.no_grad():
        x, ld_f = bijector(z, c)
        z_back, ld_i = bijector.inverse(x, c)
    assert (z_back - z).abs().max() < 1e-5
    assert torch.allclose(ld_f, -ld_i, atol=1e-5)
    assert ld_f.shape == (64,)


def test_logdet_matches_autograd_jacobian(bijector):
    bijector = bijector.double()
    c = torch.randn(3, C, dtype=torch.float64)
    z = torch.randn(3, D, dtype=torch.float64)
    _, logdet = bijector(z, c)
    for i in range(3):
        ci = c[i : i + 1]
        jac = jacobian(lambda v, ci=ci: bijector(v[None], ci)[0][0], z[i])
        assert torch.allclose(logdet[i], torch.linalg.slogdet(jac)[1], atol=1e-9)
        jac_inv = jacobian(lambda v, ci=ci: bijector.inverse(v[None], ci)[0][0], z[i])
        assert torch.allclose(
            bijector.inverse(z[i : i + 1], c[i : i + 1])[1][0],
            torch.linalg.slogdet(jac_inv)[1],
            atol=1e-9,
        )


def test_constant_logdet_flag_is_truthful(bijector):
    c = torch.randn(1, C).expand(50, C)
    _, logdet = bijector(3 * torch.randn(50, D), c)
    varies = (logdet - logdet[0]).abs().max() > 1e-6
    assert bool(varies) == (not bijector.constant_logdet)


def test_context_flag_is_truthful(bijector):
    z = torch.randn(1, D).expand(50, D)
    _, logdet = bijector(z, 3 * torch.randn(50, C))
    varies = (logdet - logdet[0]).abs().max() > 1e-6
    assert bool(varies) == bijector.logdet_depends_on_context


def test_sample_dimension_broadcasts_context(bijector):
    z, c = torch.randn(4, 7, D), torch.randn(4, C)
    x, logdet = bijector(z, c)
    naive_x, naive_ld = bijector(z.reshape(28, D), c.repeat_interleave(7, dim=0))
    assert x.shape == (4, 7, D) and logdet.shape == (4, 7)
    assert torch.allclose(x.reshape(28, D), naive_x, atol=1e-6)
    assert torch.allclose(logdet.reshape(28), naive_ld, atol=1e-6)


def test_compose_orders_and_flags():
    affine = AffineCoupling(D, C, coupling_net=CouplingNet(hidden_features=8))
    a, b = perturb(LULinear(D, seed=1)), perturb(affine)
    comp = Compose([a, b])
    z, c = torch.randn(5, D), torch.randn(5, C)
    x, ld = comp(z, c)
    x_ref, ld_a = a(z, c)
    x_ref, ld_b = b(x_ref, c)
    assert torch.allclose(x, x_ref) and torch.allclose(ld, ld_a + ld_b)
    assert not comp.constant_logdet and Compose([a]).constant_logdet


def test_permutation_rejects_non_permutation():
    with pytest.raises(ValueError, match="permutation"):
        Permutation(torch.tensor([0, 0, 1]))


@pytest.mark.parametrize("parametrization", ["generative", "normalizing"])
def test_actnorm_data_dependent_init_normalizes_first_batch(parametrization):
    norm = ActNorm(D, parametrization=parametrization).train()
    x = 3.0 + 2.0 * torch.randn(512, D)
    z, _ = norm.inverse(x)
    assert torch.allclose(z.mean(0), torch.zeros(D), atol=1e-4)
    assert torch.allclose(z.std(0, unbiased=False), torch.ones(D), atol=1e-3)
    assert bool(norm.initialized)
    before = norm.shift.detach().clone()
    norm.inverse(torch.randn(16, D) * 10)
    assert torch.equal(norm.shift.detach(), before)  # only the first batch initializes


def test_actnorm_initialized_state_survives_state_dict():
    trained = ActNorm(D).train()
    trained.inverse(5 + torch.randn(32, D))
    fresh = ActNorm(D).train()
    fresh.load_state_dict(trained.state_dict())
    fresh.inverse(torch.randn(32, D) - 100)  # would re-initialize if the state were lost
    assert torch.equal(fresh.shift, trained.shift)


def test_lu_weight_cached_in_eval_and_refreshed_on_change():
    lu = LULinear(D, seed=0).eval()
    with torch.no_grad():
        w1, _ = lu.weights()
        w2, _ = lu.weights()
        assert w1 is w2
        lu.log_s.add_(0.5)
        w3, w3_inv = lu.weights()
    assert w3 is not w1
    assert torch.allclose(w3 @ w3_inv, torch.eye(D), atol=1e-5)
    assert torch.allclose(torch.linalg.slogdet(w3)[1], lu.log_s.sum(), atol=1e-5)
    lu.train()
    assert lu.weights()[0].requires_grad  # training path rebuilds with gradients


@pytest.mark.parametrize("features", [5, 6])
def test_alternate_split_transforms_odd_features_at_parity_0_and_even_at_1(features):
    """nflows' mask[::2] = -1 (ProHMR's flow): parity 0 keeps the even-indexed features."""
    for parity, kept in ((0, slice(0, None, 2)), (1, slice(1, None, 2))):
        net = CouplingNet(hidden_features=8, num_residual_blocks=1)
        coupling = perturb(AdditiveCoupling(features, C, coupling_net=net, parity=parity,
                                            split="alternate"))
        z, c = torch.randn(4, features), torch.randn(4, C)
        with torch.no_grad():
            x, _ = coupling(z, c)
        assert torch.equal(x[:, kept], z[:, kept])
        changed = torch.ones(features, dtype=torch.bool)
        changed[kept] = False
        assert bool((x[:, changed] != z[:, changed]).all())
def _flow(conditional_volume: bool):
    from condflow import ConditionalGlow

    flow = ConditionalGlow(D, C, num_blocks=3, coupling_net=CouplingNet(hidden_features=16),
                           conditional_volume=conditional_volume, volume_hidden=8)
    return perturb(flow, 0.2)


def test_conditional_affine_starts_as_identity():
    z, c = torch.randn(5, 3, D), torch.randn(5, C)
    x, logdet = ConditionalAffine(D, C)(z, c)
    assert torch.equal(x, z) and torch.equal(logdet, torch.zeros(5, 3))


def test_conditional_volume_mode_is_the_argmax_and_its_density_varies():
    flow = _flow(True).double()
    c = torch.randn(6, C, dtype=torch.float64)
    mode, mode_log_prob = flow.mode_and_log_prob(c)
    assert flow.volume_depends_on_context
    assert torch.allclose(mode_log_prob, flow.log_prob(mode, c), atol=1e-9)
    gen = torch.Generator().manual_seed(0)
    for scale in (1e-3, 1e-1, 1.0):
        near = mode[:, None] + scale * torch.randn(6, 200, D, generator=gen, dtype=c.dtype)
        assert bool((flow.log_prob(near, c) < mode_log_prob[:, None]).all())
    # The volume is per input: log p(mode | c) spreads over contexts by more than rounding.
    assert mode_log_prob.std() > 0.1


def test_prohmr_blocks_have_one_volume_for_every_input():
    flow = _flow(False)
    _, mode_log_prob = flow.mode_and_log_prob(3 * torch.randn(20, C))
    assert not flow.volume_depends_on_context
    assert (mode_log_prob - mode_log_prob[0]).abs().max() < 1e-4


def test_conditional_volume_net_runs_once_per_context():
    flow = _flow(True)
    seen: list[tuple[int, ...]] = []
    nets = [m.net for m in flow.modules() if isinstance(m, ConditionalAffine)]
    for net in nets:
        net.register_forward_hook(lambda mod, inp, out: seen.append(tuple(inp[0].shape)))
    c = torch.randn(4, C)
    flow.sample(50, c)
    assert seen == [(4, C)] * len(nets)  # one [B, C] evaluation per net, not B·n rows
    seen.clear()
    flow.log_prob(torch.randn(4, 50, D), c)
    assert seen == [(4, C)] * len(nets)
