"""SmallCNN: shapes, gradients, argument checks."""

from __future__ import annotations

import pytest
import torch

from condflow.encoders.small_cnn import SmallCNN


@pytest.mark.parametrize("size", [64, 96, 128])
def test_output_shape(size):
    net = SmallCNN(out_features=128, width=8)
    assert net.out_features == 128
    assert net(torch.randn(3, 3, size, size)).shape == (3, 128)


def test_five_stride2_stages_and_small():
    net = SmallCNN()
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 5 and all(c.stride == (2, 2) for c in convs)
    assert sum(p.numel() for p in net.parameters()) < 2_000_000


def test_gradient_reaches_first_layer_and_eval_is_deterministic():
    net = SmallCNN(in_channels=1, out_features=16, width=8)
    x = torch.randn(4, 1, 64, 64)
    net(x).square().sum().backward()
    first = net.stages[0].weight.grad
    assert first is not None and first.abs().sum() > 0
    net.eval()
    with torch.no_grad():
        assert torch.equal(net(x), net(x))
        # Each example is encoded independently in eval mode.
        assert torch.allclose(net(x)[:1], net(x[:1]), atol=1e-6)


def test_bad_arguments():
    with pytest.raises(ValueError, match="out_features"):
        SmallCNN(out_features=0)
    with pytest.raises(ValueError, match=r"images: expected shape \[B, 3, \*, \*\]"):
        SmallCNN()(torch.randn(2, 1, 64, 64))
