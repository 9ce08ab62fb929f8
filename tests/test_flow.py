"""ConditionalFlow / ConditionalGlow: density, mode, sampling paths, interop, validation."""

import io
import math
import warnings

import pytest
import torch
from torch.autograd.functional import jacobian

from condflow import ConditionalFlow, ConditionalGlow, CouplingNet, ModeNotAvailableError
from condflow.bijectors import ActNorm, AffineCoupling, Compose, FromNflows, LULinear, ToNflows

D, C = 6, 4


def make_glow(features=D, context=C, dtype=torch.float32, **kw) -> ConditionalGlow:
    kw = {"num_blocks": 3, "coupling_net": CouplingNet(hidden_features=32), **kw}
    flow = ConditionalGlow(features, context, **kw)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        flow.train()
        flow.log_prob(2 + 3 * torch.randn(256, features), torch.randn(256, context))
        for p in flow.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=gen))
    return flow.eval().to(dtype)


def test_shapes_and_dtypes_of_every_call():
    for dtype in (torch.float32, torch.float64):
        flow = make_glow(dtype=dtype)
        c = torch.randn(5, C, dtype=dtype)
        x = torch.randn(5, D, dtype=dtype)
        assert flow.log_prob(x, c).shape == (5,) and flow.log_prob(x, c).dtype == dtype
        assert flow.log_prob(x[:, None].expand(5, 3, D), c).shape == (5, 3)
        assert flow.transform_to_noise(x, c).shape == (5, D)
        s = flow.sample(7, c)
        assert s.shape == (5, 7, D) and s.dtype == dtype
        s, lp = flow.sample_and_log_prob(2, c)
        assert s.shape == (5, 2, D) and lp.shape == (5, 2)
        assert flow.mode(c).shape == (5, D) and flow.mode(c).dtype == dtype


def test_whole_flow_logdet_matches_autograd_jacobian():
    flow = make_glow(dtype=torch.float64)
    c = torch.randn(2, C, dtype=torch.float64)
    x = torch.randn(2, D, dtype=torch.float64)
    for i in range(2):
        ci = c[i : i + 1]
        jac = jacobian(lambda v, ci=ci: flow.transform_to_noise(v[None], ci)[0], x[i])
        z = flow.transform_to_noise(x[i : i + 1], ci)[0]
        expected = -0.5 * z.pow(2).sum() - 0.5 * D * math.log(2 * math.pi)
        expected = expected + torch.linalg.slogdet(jac)[1]
        assert torch.allclose(flow.log_prob(x[i : i + 1], ci)[0], expected, atol=1e-9)


def test_sample_log_prob_agrees_with_log_prob():
    flow = make_glow()
    c = torch.randn(3, C)
    s, lp = flow.sample_and_log_prob(11, c)
    assert torch.allclose(lp, flow.log_prob(s, c), atol=1e-4)


def test_density_integrates_to_one_in_2d():
    flow = make_glow(features=2, context=1, dtype=torch.float64)
    c = torch.tensor([[0.7]], dtype=torch.float64)
    mode = flow.mode(c)[0]
    # A grid centred on the mode wide enough to hold essentially all the mass.
    spread = flow.sample(4000, c)[0].std(0).max().item()
    t = torch.linspace(-9 * spread, 9 * spread, 401, dtype=torch.float64)
    gx, gy = torch.meshgrid(t + mode[0], t + mode[1], indexing="ij")
    pts = torch.stack([gx, gy], -1).reshape(1, -1, 2)
    density = flow.log_prob(pts, c).exp()
    cell = (t[1] - t[0]) ** 2
    assert abs(density.sum().item() * cell.item() - 1.0) < 1e-3


def test_density_integrates_to_one_in_1d():
    bij = Compose([LULinear(1, seed=0), ActNorm(1)])
    with torch.no_grad():
        bij.bijectors[1].shift.fill_(1.5)
        bij.bijectors[1].log_scale.fill_(math.log(0.4))
    flow = ConditionalFlow(bij, features=1, context_features=1).double().eval()
    t = torch.linspace(-6, 9, 30001, dtype=torch.float64)[None, :, None]
    density = flow.log_prob(t, torch.zeros(1, 1, dtype=torch.float64)).exp()
    assert abs(torch.trapezoid(density[0], t[0, :, 0]).item() - 1.0) < 1e-6


def test_mode_is_argmax_of_density():
    flow = make_glow(dtype=torch.float64)  # float32 log-densities are too flat to resolve 1e-4
    for p in flow.parameters():
        p.requires_grad_(False)
    c = torch.randn(2, C, dtype=torch.float64)
    mode = flow.mode(c)
    for start in range(3):
        gen = torch.Generator().manual_seed(start)
        x = mode + 2.0 * torch.randn(2, D, generator=gen, dtype=torch.float64)
        x = x.clone().requires_grad_(True)
        opt = torch.optim.LBFGS([x], lr=1, max_iter=200, line_search_fn="strong_wolfe")

        def closure(opt=opt, x=x):
            opt.zero_grad()
            loss = -flow.log_prob(x, c).sum()
            loss.backward()
            return loss

        opt.step(closure)
        assert (x.detach() - mode).abs().max() < 1e-4
    lp_mode = flow.log_prob(mode, c)
    lp_samples = flow.log_prob(flow.sample(500, c), c)
    assert (lp_samples <= lp_mode[:, None] + 1e-5).all()


def test_mode_refuses_when_logdet_depends_on_z():
    flow = ConditionalFlow(AffineCoupling(D, C, coupling_net=CouplingNet(hidden_features=8)), D, C)
    with pytest.raises(ModeNotAvailableError, match="independent of z"):
        flow.mode(torch.randn(2, C))


def test_gradients_reach_context_and_parameters():
    flow = make_glow().train()
    c = torch.randn(8, C, requires_grad=True)
    loss = -flow.log_prob(torch.randn(8, D), c).mean() + flow.mode(c).pow(2).mean()
    loss = loss + flow.sample(3, c).pow(2).mean()
    loss.backward()
    assert c.grad is not None and c.grad.abs().sum() > 0
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in flow.parameters())
    assert sum(p.grad.abs().sum() for p in flow.parameters()) > 0


def test_shared_context_path_equals_naive_path():
    flow = make_glow()
    c = torch.randn(4, C)
    x = torch.randn(4, 9, D)
    shared = flow.log_prob(x, c)
    naive = flow.log_prob(x.reshape(36, D), c.repeat_interleave(9, dim=0)).reshape(4, 9)
    assert torch.allclose(shared, naive, atol=1e-5)
    noise = torch.randn(4, 9, D)
    xs, lps = flow.generate(noise, c)
    xn, lpn = flow.generate(noise.reshape(36, D), c.repeat_interleave(9, dim=0))
    assert torch.allclose(xs.reshape(36, D), xn, atol=1e-5)
    assert torch.allclose(lps.reshape(36), lpn, atol=1e-5)


def test_chunked_sampling_equals_one_batch():
    flow = make_glow()
    c = torch.randn(3, C)
    big = flow.sample_and_log_prob(4096, c, generator=torch.Generator().manual_seed(5))
    flow.max_rows = 1000  # forces chunks of 333 samples per context
    chunked = flow.sample_and_log_prob(4096, c, generator=torch.Generator().manual_seed(5))
    assert torch.allclose(big[0], chunked[0], rtol=1e-5, atol=1e-5)
    assert torch.allclose(big[1], chunked[1], rtol=1e-5, atol=1e-4)


def test_state_dict_round_trip_gives_identical_outputs():
    flow = make_glow()
    buf = io.BytesIO()
    torch.save(flow.state_dict(), buf)
    buf.seek(0)
    loaded = ConditionalGlow(D, C, num_blocks=3, coupling_net=CouplingNet(hidden_features=32))
    loaded.load_state_dict(torch.load(buf, weights_only=True))
    loaded.eval()
    c, x = torch.randn(4, C), torch.randn(4, D)
    assert torch.equal(flow.log_prob(x, c), loaded.log_prob(x, c))
    assert torch.equal(flow.mode(c), loaded.mode(c))
    # A loaded model in training mode must not re-run ActNorm's data-dependent init.
    loaded.train()
    before = [b.actnorm.shift.clone() for b in loaded.bijector.bijectors]
    loaded.log_prob(100 + torch.randn(16, D), torch.randn(16, C))
    assert all(
        torch.equal(b, a.actnorm.shift)
        for b, a in zip(before, loaded.bijector.bijectors, strict=True)
    )


def test_compiled_flow_matches_eager():
    flow = make_glow()
    c, x = torch.randn(4, C), torch.randn(4, 5, D)
    noise = torch.randn(4, 5, D)
    with torch.no_grad():
        eager_lp, eager_gen = flow.log_prob(x, c), flow.generate(noise, c)
        # fullgraph=True: any graph break (e.g. a host sync on a tensor value) fails the test.
        compiled_lp = torch.compile(flow.log_prob, fullgraph=True)(x, c)
        compiled_gen = torch.compile(flow.generate, fullgraph=True)(noise, c)
    assert torch.allclose(eager_lp, compiled_lp, atol=1e-4)
    assert torch.allclose(eager_gen[0], compiled_gen[0], atol=1e-5)
    assert torch.allclose(eager_gen[1], compiled_gen[1], atol=1e-4)


def test_nflows_interop_both_directions():
    from nflows.distributions import StandardNormal
    from nflows.flows import Flow
    from nflows.transforms import ActNorm as NfActNorm
    from nflows.transforms import CompositeTransform
    from nflows.transforms import LULinear as NfLULinear

    flow = make_glow()
    c, x = torch.randn(4, C), torch.randn(4, D)
    nf = Flow(ToNflows(flow.bijector), StandardNormal([D])).eval()
    assert torch.allclose(nf.log_prob(x, context=c), flow.log_prob(x, c), atol=1e-5)
    # condflow bijector inside nflows' own CompositeTransform, next to nflows transforms.
    mixed = CompositeTransform([NfActNorm(D), ToNflows(flow.bijector)]).eval()
    z, ld = mixed(x, context=c)
    x_back, ld_back = mixed.inverse(z, context=c)
    assert torch.allclose(x_back, x, atol=1e-5) and torch.allclose(ld, -ld_back, atol=1e-5)
    # nflows transforms inside a condflow flow, with [B, n, d] inputs.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lu = NfLULinear(D, identity_init=False)
        ours = ConditionalFlow(Compose([FromNflows(lu, constant_logdet=True), flow.bijector]), D, C)
        ours.eval()
        s, lp = ours.sample_and_log_prob(3, c)
        assert torch.allclose(lp, ours.log_prob(s, c), atol=1e-4)
        assert ours.mode(c).shape == (4, D)
    with pytest.raises(ModeNotAvailableError):
        ConditionalFlow(FromNflows(NfActNorm(D)), D, C).mode(c)


@pytest.mark.parametrize(
    "call, match",
    [
        (
            lambda f: f.log_prob(torch.randn(4, D + 1), torch.randn(4, C)),
            r"inputs: expected shape \[4, 6\]",
        ),
        (
            lambda f: f.log_prob(torch.randn(4, 2, 3, D), torch.randn(4, C)),
            "inputs: expected shape",
        ),
        (
            lambda f: f.log_prob(torch.randn(3, D), torch.randn(4, C)),
            r"inputs: expected shape \[4, 6\]",
        ),
        (
            lambda f: f.log_prob(torch.randn(4, D), torch.randn(4, C + 1)),
            r"context: expected shape \[B, 4\]",
        ),
        (
            lambda f: f.log_prob(torch.full((4, D), math.nan), torch.randn(4, C)),
            "inputs: contains NaN",
        ),
        (lambda f: f.sample(3, torch.full((2, C), math.inf)), "context: contains NaN or Inf"),
        (lambda f: f.sample(0, torch.randn(2, C)), "num_samples: expected an integer >= 1"),
        (lambda f: f.mode(torch.randn(C)), r"context: expected shape \[B, 4\]"),
        (lambda f: f.log_prob(torch.randn(4, D).double(), torch.randn(4, C)), "inputs: dtype"),
        (
            lambda f: f.log_prob(torch.ones(4, D, dtype=torch.long), torch.randn(4, C)),
            "floating-point",
        ),
    ],
)
def test_bad_input_raises_value_error_naming_argument(call, match):
    with pytest.raises(ValueError, match=match):
        call(make_glow())


def test_finite_checks_can_be_switched_off_and_restored():
    from condflow import set_finite_checks

    flow, bad = make_glow(), torch.full((4, D), math.nan)
    assert set_finite_checks(False) is True
    try:
        assert torch.isnan(flow.log_prob(bad, torch.randn(4, C))).all()
    finally:
        assert set_finite_checks(True) is False
    with pytest.raises(ValueError, match="inputs: contains NaN"):
        flow.log_prob(bad, torch.randn(4, C))
