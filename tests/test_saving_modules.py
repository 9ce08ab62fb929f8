"""condflow.save / load of modules built by hand (no task config): flows, bijectors, heads."""

import pytest
import torch
from torch import nn

from condflow import ConditionalFlow, ConditionalGlow, CouplingNet, load, save
from condflow._recipe import Recorded
from condflow.bijectors import Compose, FixedAffine, LULinear, RandomPermutation
from condflow.checkpoint import state_checksum
from condflow.encoders.mlp_lifter import MLPLifter
from condflow.heads.skeleton import SkeletonHead
from condflow.saving import load_with_config
from condflow.spaces.skeleton import SkeletonSpace

NET8, NET16 = CouplingNet(hidden_features=8), CouplingNet(hidden_features=16)


def _trained(flow: nn.Module, x: torch.Tensor, c: torch.Tensor | None) -> nn.Module:
    """ActNorm initialized and every parameter moved, so that defaults cannot pass."""
    flow.train()
    with torch.no_grad():
        flow.log_prob(x, c)
        gen = torch.Generator().manual_seed(3)
        for p in flow.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=gen))
    return flow.eval()


def test_conditional_glow_round_trip(tmp_path):
    net = CouplingNet(hidden_features=16, batch_norm="layer")
    flow = ConditionalGlow(5, 3, num_blocks=2, coupling_net=net, seed=4, shift_bound=2.0,
                           max_rows=128)
    x, c = torch.randn(64, 5), torch.randn(64, 3)
    flow = _trained(flow, x, c)
    path = save(flow, tmp_path / "flow.pt")
    payload = torch.load(path, weights_only=True)  # plain data, no code
    assert payload["recipe"]["class"] == "condflow.flow:ConditionalGlow"
    assert payload["recipe"]["args"]["shift_bound"] == 2.0
    again = load(path)
    assert type(again) is ConditionalGlow and not again.training
    assert again.max_rows == 128 and again.bijector.bijectors[0].coupling.shift_bound == 2.0
    assert torch.equal(again.log_prob(x, c), flow.log_prob(x, c))
    assert torch.equal(again.mode(c), flow.mode(c))


def test_composed_flow_and_unconditional_flow_round_trip(tmp_path):
    bij = Compose([LULinear(4, seed=2), RandomPermutation(4, seed=1),
                   FixedAffine(torch.arange(4.0), torch.full((4,), 2.0))])
    flow = ConditionalFlow(bij, 4, 0)
    x = torch.randn(16, 4)
    flow = _trained(flow, x, None)
    again = load(save(flow, tmp_path / "f.pt"))
    assert torch.equal(again.log_prob(x), flow.log_prob(x))
    glow = _trained(ConditionalGlow(4, 0, num_blocks=2, coupling_net=NET8), x, None)
    again = load(save(glow, tmp_path / "g.pt"))
    assert torch.equal(again.log_prob(x), glow.log_prob(x))


def test_head_built_by_hand_round_trip(tmp_path):
    space = SkeletonSpace()
    encoder = MLPLifter(num_joints=16, in_channels=3, hidden=32, num_residual_blocks=1)
    head = SkeletonHead(encoder, space, num_blocks=2, coupling_net=NET16,
                        mean=torch.randn(space.dim), std=torch.rand(space.dim) + 0.5)
    kp = torch.rand(8, 16, 3)
    with torch.no_grad():
        gen = torch.Generator().manual_seed(0)
        for p in head.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=gen))
    head.eval()
    again = load(save(head, tmp_path / "head.pt"))
    assert type(again) is SkeletonHead and again.space.layout == head.space.layout
    assert torch.equal(again.mode(again.context(kp)).joints, head.mode(head.context(kp)).joints)
    with pytest.raises(ValueError, match="saved without a config"):
        load_with_config(tmp_path / "head.pt")


def test_embedding_net_is_saved_when_recorded(tmp_path):
    class Embed(Recorded, nn.Module):
        def __init__(self, raw: int, out: int) -> None:
            super().__init__()
            self.linear = nn.Linear(raw, out)

        def forward(self, c: torch.Tensor) -> torch.Tensor:
            return self.linear(c).tanh()

    flow = ConditionalGlow(3, 4, num_blocks=1, coupling_net=NET8, embedding_net=Embed(6, 4))
    x, c = torch.randn(10, 3), torch.randn(10, 6)
    flow = _trained(flow, x, c)
    again = load(save(flow, tmp_path / "e.pt"))
    assert torch.equal(again.log_prob(x, c), flow.log_prob(x, c))


def test_unrecordable_module_names_the_argument(tmp_path):
    flow = ConditionalGlow(3, 4, num_blocks=1, coupling_net=NET8, embedding_net=nn.Linear(6, 4))
    with pytest.raises(ValueError, match=r"model\.embedding_net: a Linear cannot be recorded"):
        save(flow, tmp_path / "x.pt")
    assert not (tmp_path / "x.pt").exists()
    with pytest.raises(ValueError, match="does not record"):
        save(nn.Linear(2, 2), tmp_path / "y.pt")


def test_unknown_class_in_file_is_refused_without_import(tmp_path):
    flow = ConditionalGlow(2, 1, num_blocks=1, coupling_net=NET8)
    path = save(flow, tmp_path / "f.pt")
    payload = torch.load(path, weights_only=True)
    payload["recipe"]["class"] = "os:system"
    torch.save(payload, tmp_path / "edited.pt")
    with pytest.raises(ValueError, match="checksum does not match"):  # an edited file
        load(tmp_path / "edited.pt")

    def sealed(name: str) -> str:  # resealed, as a crafted file would be
        payload["checksum"] = state_checksum(payload["model"], payload["recipe"])
        torch.save(payload, tmp_path / name)
        return str(tmp_path / name)

    with pytest.raises(ValueError, match="unknown class 'os:system'"):
        load(sealed("bad.pt"))
    payload["recipe"]["class"] = "condflow.flow:ConditionalGlow"
    payload["recipe"]["args"]["features"] = 3
    sealed("shape.pt")
    with pytest.raises(ValueError, match="do not fit"):
        load(tmp_path / "shape.pt")
