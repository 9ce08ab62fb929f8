"""MLPLifter: Martinez et al. structure, input forms, occlusion masking, regression head."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from condflow.encoders.mlp_lifter import MLPLifter


def test_structure_and_output_sizes():
    lifter = MLPLifter(num_joints=16, hidden=64, num_residual_blocks=3)
    linears = [m for m in lifter.modules() if isinstance(m, nn.Linear)]
    norms = [m for m in lifter.modules() if isinstance(m, nn.BatchNorm1d)]
    assert len(linears) == 1 + 2 * 3 and len(norms) == 1 + 2 * 3
    assert linears[0].in_features == 32
    assert lifter.out_features == 64
    assert lifter(torch.randn(5, 16, 2)).shape == (5, 64)

    regressor = MLPLifter(num_joints=16, hidden=64, out_features=16 * 3)
    assert regressor.out_features == 48
    assert regressor(torch.randn(5, 16, 2)).shape == (5, 48)


def test_flat_and_joint_inputs_agree():
    lifter = MLPLifter(num_joints=17, in_channels=3, hidden=32).eval()
    x = torch.randn(4, 17, 3)
    with torch.no_grad():
        assert torch.equal(lifter(x), lifter(x.reshape(4, 51)))


def test_occluded_joint_coordinates_cannot_leak():
    lifter = MLPLifter(num_joints=16, in_channels=3, hidden=32).eval()
    x = torch.randn(3, 16, 3)
    x[..., 2] = 1.0
    x[:, 5, 2] = 0.0  # joint 5 occluded
    garbage = x.clone()
    garbage[:, 5, :2] = torch.tensor([1e6, float("nan")])
    with torch.no_grad():
        out, out_garbage = lifter(x), lifter(garbage)
        assert torch.isfinite(out_garbage).all()
        assert torch.equal(out, out_garbage)
        visible_moved = x.clone()
        visible_moved[:, 4, :2] += 1.0
        assert not torch.allclose(out, lifter(visible_moved))


def test_residual_skip():
    """With each block's inner branch forced to zero, the blocks are the identity."""
    lifter = MLPLifter(num_joints=4, hidden=16, num_residual_blocks=2, dropout=0.0).eval()
    for block in lifter.blocks:
        last_bn = block.layers[1][1]
        nn.init.zeros_(last_bn.weight)
        nn.init.zeros_(last_bn.bias)
    x = torch.randn(6, 4, 2)
    with torch.no_grad():
        assert torch.allclose(lifter(x), lifter.input_layer(x.flatten(1)))


def test_dropout_is_configurable_and_gradients_flow():
    x = torch.randn(8, 16, 2)
    no_drop = MLPLifter(hidden=32, dropout=0.0).train()
    assert torch.equal(no_drop(x), no_drop(x))
    drop = MLPLifter(hidden=32, dropout=0.5).train()
    assert not torch.equal(drop(x), drop(x))
    out = drop(x)
    out.square().mean().backward()
    grad = drop.input_layer[0].weight.grad
    assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0


def test_bad_arguments():
    with pytest.raises(ValueError, match="in_channels"):
        MLPLifter(in_channels=4)
    with pytest.raises(ValueError, match="dropout"):
        MLPLifter(dropout=1.0)
    with pytest.raises(ValueError, match="num_residual_blocks"):
        MLPLifter(num_residual_blocks=-1)
    lifter = MLPLifter(num_joints=16)
    with pytest.raises(ValueError, match=r"keypoints: expected shape \[B, 16, 2\]"):
        lifter(torch.randn(2, 17, 2))
    with pytest.raises(ValueError, match=r"keypoints: expected shape \[B, 32\]"):
        lifter(torch.randn(2, 34))


@pytest.mark.parametrize(("norm", "batch_dependent"), [
    (True, True), ("batch", True), ("layer", False), ("none", False), (False, False),
])
def test_train_mode_output_depends_on_the_batch_only_with_batch_norm(norm, batch_dependent):
    lifter = MLPLifter(num_joints=4, hidden=16, dropout=0.0, batch_norm=norm).train()
    x = torch.randn(8, 4, 2)
    with torch.no_grad():
        alone, in_batch = lifter(x[:2]), lifter(x)[:2]
    assert torch.allclose(alone, in_batch, atol=1e-6) != batch_dependent
    kinds = {type(m) for m in lifter.modules()}
    assert (nn.BatchNorm1d in kinds) == (norm in (True, "batch"))
    assert (nn.LayerNorm in kinds) == (norm == "layer")


def test_bad_norm_is_refused_by_name():
    with pytest.raises(ValueError, match=r"batch_norm: expected True, False or one of"):
        MLPLifter(batch_norm="group")
