"""CouplingNet: one frozen settings object for every coupling net of a flow or head."""

import dataclasses

import pytest
import torch
from torch import nn

from condflow import ConditionalGlow, CouplingNet
from condflow.bijectors import AdditiveCoupling, AffineCoupling, GlowBlock


def test_settings_are_frozen_and_booleans_read_as_names():
    net = CouplingNet(hidden_features=32, num_residual_blocks=0, dropout=0.25, batch_norm=True)
    assert net.batch_norm == "batch" and net == CouplingNet(
        hidden_features=32, num_residual_blocks=0, dropout=0.25, batch_norm="batch"
    )
    assert CouplingNet(batch_norm=False).batch_norm == "none"
    assert CouplingNet() == CouplingNet(hidden_features=1024, num_residual_blocks=2)  # ProHMR's
    with pytest.raises(dataclasses.FrozenInstanceError):
        net.hidden_features = 8
    with pytest.raises(TypeError):
        CouplingNet(32)  # keyword-only: no guessing which number is which


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"hidden_features": 0}, r"hidden_features: expected an integer >= 1, got 0"),
    ({"hidden_features": 8.0}, r"hidden_features: expected an integer >= 1, got 8.0"),
    ({"num_residual_blocks": -1}, r"num_residual_blocks: expected an integer >= 0, got -1"),
    ({"num_residual_blocks": True}, r"num_residual_blocks: expected an integer >= 0, got True"),
    ({"dropout": 1.5}, r"dropout: expected a probability in \[0, 1\], got 1.5"),
    ({"dropout": float("nan")}, r"dropout: expected a probability in \[0, 1\], got nan"),
    ({"batch_norm": "group"}, r"batch_norm: expected True, False or one of \('batch', 'layer'"),
])
def test_bad_settings_are_refused_by_name(kwargs, message):
    with pytest.raises(ValueError, match=message):
        CouplingNet(**kwargs)


@pytest.mark.parametrize("build", [
    lambda bad: ConditionalGlow(4, 2, coupling_net=bad),
    lambda bad: GlowBlock(4, 2, coupling_net=bad),
    lambda bad: AdditiveCoupling(4, 2, coupling_net=bad),
    lambda bad: AffineCoupling(4, 2, coupling_net=bad),
])
def test_a_mapping_in_place_of_the_settings_is_refused_by_name(build):
    message = r"coupling_net: expected a condflow\.bijectors\.CouplingNet"
    with pytest.raises(ValueError, match=message):
        build({"hidden_features": 8})


def test_flow_settings_are_keyword_only():
    with pytest.raises(TypeError):
        ConditionalGlow(4, 2, 2, CouplingNet(hidden_features=8))


@pytest.mark.parametrize(("norm", "module"), [
    ("batch", nn.BatchNorm1d), ("layer", nn.LayerNorm), ("none", nn.Identity),
])
def test_one_settings_object_shapes_every_coupling_net(norm, module):
    net = CouplingNet(hidden_features=12, num_residual_blocks=3, dropout=0.5, batch_norm=norm)
    flow = ConditionalGlow(6, 2, num_blocks=3, coupling_net=net)
    couplings = [block.coupling.net for block in flow.bijector.bijectors]
    assert len(couplings) == 3
    for coupling in couplings:
        assert coupling.input_z.out_features == 12 and coupling.input_c.out_features == 12
        assert len(coupling.blocks) == 3 and coupling.output.in_features == 12
        for block in coupling.blocks:
            assert type(block.norm0) is module and type(block.norm1) is module
            assert block.dropout.p == 0.5
    with torch.no_grad():
        assert flow.eval().log_prob(torch.randn(5, 6), torch.randn(5, 2)).shape == (5,)
