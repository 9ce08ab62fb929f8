"""ConditionalGlow's options: unconditional flows, embedding nets, normalization, shift bound,
and the documentation of every constructor argument."""

import contextlib
import inspect
import io
import math

import pytest
import torch
from torch import nn

from condflow import ConditionalFlow, ConditionalGlow, CouplingNet
from condflow.bijectors import AdditiveCoupling, GlowBlock
from condflow.cli import main as cli_main

NET8, NET16 = CouplingNet(hidden_features=8), CouplingNet(hidden_features=16)


def _init(flow: nn.Module, x: torch.Tensor, c: torch.Tensor | None) -> nn.Module:
    flow.train()
    with torch.no_grad():
        flow.log_prob(x, c)
        gen = torch.Generator().manual_seed(1)
        for p in flow.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=gen))
    return flow.eval()


def test_unconditional_flow_calls_without_context_like_nflows():
    x = 1 + 2 * torch.randn(128, 3)
    flow = _init(ConditionalGlow(3, 0, num_blocks=2, coupling_net=NET16), x, None)
    lp = flow.log_prob(x[:7])
    assert lp.shape == (7,) and torch.isfinite(lp).all()
    samples, lps = flow.sample_and_log_prob(5, generator=torch.Generator().manual_seed(0))
    assert samples.shape == (5, 3) and lps.shape == (5,)
    assert torch.allclose(flow.log_prob(samples), lps, atol=1e-4)
    assert flow.sample(4).shape == (4, 3)
    mode = flow.mode()
    assert mode.shape == (3,)
    assert torch.allclose(flow.generate(torch.zeros(1, 3))[0][0], mode, atol=1e-6)
    z = flow.transform_to_noise(samples)
    assert torch.allclose(flow.generate(z)[0], samples, atol=1e-4)
    # the density is normalized: 1-d marginal check through a 2-d flow on a grid
    flow2 = _init(ConditionalGlow(2, 0, num_blocks=2, coupling_net=NET8), torch.randn(64, 2), None)
    g = torch.linspace(-8, 8, 321)
    grid = torch.stack(torch.meshgrid(g, g, indexing="ij"), -1).reshape(-1, 2)
    mass = flow2.log_prob(grid).exp().sum() * (g[1] - g[0]) ** 2
    assert abs(mass.item() - 1) < 5e-3
    with pytest.raises(ValueError, match=r"context: expected a tensor of shape \[B, 2\]"):
        ConditionalGlow(3, 2, num_blocks=1, coupling_net=NET8).log_prob(x)


def test_embedding_net_embeds_the_raw_context_inside_the_flow():
    embed = nn.Sequential(nn.Linear(6, 4), nn.Tanh())
    flow = ConditionalGlow(3, 4, num_blocks=2, coupling_net=NET16, embedding_net=embed)
    x, raw = torch.randn(32, 3), torch.randn(32, 6)
    flow = _init(flow, x, raw)
    assert any(p is embed[0].weight for p in flow.parameters())  # trained with the flow
    z, logdet = flow.bijector.inverse(x, embed(raw))
    by_hand = -0.5 * z.pow(2).sum(-1) - 1.5 * math.log(2 * math.pi) + logdet
    assert torch.allclose(flow.log_prob(x, raw), by_hand, atol=1e-6)
    assert torch.allclose(flow.mode(raw), flow.bijector(torch.zeros(32, 3), embed(raw))[0])
    assert flow.sample(5, raw).shape == (32, 5, 3)
    flow.log_prob(x, raw).sum().backward()
    assert embed[0].weight.grad.abs().sum() > 0
    bad = ConditionalGlow(3, 5, num_blocks=1, coupling_net=NET8, embedding_net=embed)
    with pytest.raises(ValueError, match=r"embedding_net\(context\): expected shape \[32, 5\]"):
        bad.log_prob(x, raw)
    with pytest.raises(ValueError, match="embedding_net: expected a torch.nn.Module"):
        ConditionalGlow(3, 4, embedding_net=lambda c: c)


@pytest.mark.parametrize("norm, batch_dependent", [
    (True, True), ("batch", True), ("layer", False), ("none", False), (False, False),
])
def test_train_mode_log_prob_depends_on_the_batch_only_with_batch_norm(norm, batch_dependent):
    net = CouplingNet(hidden_features=16, batch_norm=norm)
    flow = ConditionalGlow(4, 2, num_blocks=2, coupling_net=net)
    gen = torch.Generator().manual_seed(0)
    x, c = torch.randn(64, 4, generator=gen), torch.randn(64, 2, generator=gen)
    _init(flow, x, c).train()
    with torch.no_grad():
        small, large = flow.log_prob(x[:8], c[:8]), flow.log_prob(x, c)[:8]
    gap = (small - large).abs().max().item()
    if batch_dependent:
        assert gap > 1e-2
    else:
        assert gap < 1e-4  # float32 rounding of differently shaped matmuls only


def test_bad_norm_is_refused_by_name():
    with pytest.raises(ValueError, match=r"batch_norm: expected True, False or one of"):
        ConditionalGlow(4, 2, coupling_net=CouplingNet(batch_norm="group"))


def test_shift_bound_bounds_the_shift_and_keeps_the_flow_exact():
    layer = AdditiveCoupling(
        4, 2, coupling_net=CouplingNet(hidden_features=16, num_residual_blocks=1), shift_bound=0.5
    )
    with torch.no_grad():
        for p in layer.parameters():
            p.mul_(300.0)  # a net whose raw shifts are far beyond the bound
    layer.eval()
    z, c = 1e3 * torch.randn(256, 4), torch.randn(256, 2)
    x, logdet = layer(z, c)
    raw = layer.net(z[:, :2], c)
    assert raw.abs().max() > 10  # the bound is what keeps the shift small
    assert (x - z).abs().max() <= 0.5 and torch.equal(x[:, :2], z[:, :2])
    assert torch.allclose(layer.inverse(x, c)[0], z, atol=1e-3) and (logdet == 0).all()
    block = GlowBlock(4, 2, coupling_net=NET8, shift_bound=1.0)
    assert block.constant_logdet  # mode stays exact
    flow = ConditionalGlow(4, 2, num_blocks=2, coupling_net=NET8, shift_bound=1.0)
    flow.mode(c)
    for bad in (0.0, -1.0, float("inf"), True, "2"):
        with pytest.raises(ValueError, match="shift_bound: expected a positive number"):
            ConditionalGlow(4, 2, shift_bound=bad)


@pytest.mark.parametrize("cls", [ConditionalGlow, ConditionalFlow])
def test_help_documents_every_constructor_argument(cls):
    doc = inspect.getdoc(cls)
    for name in list(inspect.signature(cls.__init__).parameters)[1:]:
        assert f"\n    {name}:" in doc or f"\n    {name}," in doc, name


def test_fit_help_is_plain_text():
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
        cli_main(["fit", "--help"])
    text = out.getvalue()
    assert "keypoint file" in text and "fit.json" in text
    assert "``" not in text and ":func:" not in text and ":mod:" not in text
