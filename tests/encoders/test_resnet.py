"""ResNet: exact torchvision state_dict layout, checkpoint loading, encoder output."""

from __future__ import annotations

import pytest
import torch

from condflow.encoders.resnet import (
    ResNet,
    ResNetEncoder,
    load_torchvision_state_dict,
    resnet18,
    resnet34,
    resnet50,
)

BLOCKS = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3), 50: (3, 4, 6, 3)}


def torchvision_layout(depth: int) -> list[tuple[str, tuple[int, ...]]]:
    """(name, shape) of every state_dict entry of torchvision's resnet<depth>, in order."""

    def conv(name, c_out, c_in, k):
        return [(f"{name}.weight", (c_out, c_in, k, k))]

    def bn(name, c):
        return [
            (f"{name}.weight", (c,)),
            (f"{name}.bias", (c,)),
            (f"{name}.running_mean", (c,)),
            (f"{name}.running_var", (c,)),
            (f"{name}.num_batches_tracked", ()),
        ]

    bottleneck = depth == 50
    expansion = 4 if bottleneck else 1
    entries = conv("conv1", 64, 3, 7) + bn("bn1", 64)
    inplanes = 64
    widths = zip((64, 128, 256, 512), BLOCKS[depth], strict=True)
    for layer, (planes, count) in enumerate(widths, start=1):
        for b in range(count):
            p = f"layer{layer}.{b}"
            stride = 2 if b == 0 and layer > 1 else 1
            if bottleneck:
                entries += conv(f"{p}.conv1", planes, inplanes, 1) + bn(f"{p}.bn1", planes)
                entries += conv(f"{p}.conv2", planes, planes, 3) + bn(f"{p}.bn2", planes)
                entries += conv(f"{p}.conv3", planes * 4, planes, 1) + bn(f"{p}.bn3", planes * 4)
            else:
                entries += conv(f"{p}.conv1", planes, inplanes, 3) + bn(f"{p}.bn1", planes)
                entries += conv(f"{p}.conv2", planes, planes, 3) + bn(f"{p}.bn2", planes)
            if b == 0 and (stride != 1 or inplanes != planes * expansion):
                entries += conv(f"{p}.downsample.0", planes * expansion, inplanes, 1)
                entries += bn(f"{p}.downsample.1", planes * expansion)
            inplanes = planes * expansion
    entries += [("fc.weight", (1000, 512 * expansion)), ("fc.bias", (1000,))]
    return entries


def random_checkpoint(depth: int, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for name, shape in torchvision_layout(depth):
        if name.endswith("num_batches_tracked"):
            sd[name] = torch.randint(0, 1000, shape, generator=g)
        elif name.endswith("running_var"):
            sd[name] = torch.rand(shape, generator=g) + 0.5
        else:
            sd[name] = 0.05 * torch.randn(shape, generator=g)
    return sd


@pytest.mark.parametrize(
    ("factory", "depth", "entries", "params"),
    [
        (resnet18, 18, 122, 11_689_512),
        (resnet34, 34, 218, 21_797_672),
        (resnet50, 50, 320, 25_557_032),
    ],
)
def test_state_dict_matches_torchvision(factory, depth, entries, params):
    model = factory()
    sd = model.state_dict()
    expected = torchvision_layout(depth)
    assert len(expected) == entries
    assert [(k, tuple(v.shape)) for k, v in sd.items()] == expected
    assert sum(p.numel() for p in model.parameters()) == params


def test_checkpoint_round_trip(tmp_path):
    ckpt = random_checkpoint(50)
    path = tmp_path / "resnet50.pth"
    torch.save(ckpt, path)
    model = resnet50(pretrained_path=path)
    loaded = model.state_dict()
    assert loaded.keys() == ckpt.keys()
    for k, v in ckpt.items():
        assert torch.equal(loaded[k], v), k


def test_encoder_ignores_fc_and_matches_classifier_features(tmp_path):
    ckpt = random_checkpoint(18, seed=1)
    path = tmp_path / "resnet18.pth"
    torch.save(ckpt, path)
    encoder = ResNetEncoder(depth=18, pretrained_path=path).eval()
    classifier = resnet18(pretrained_path=str(path)).eval()
    assert encoder.fc is None
    assert list(encoder.state_dict()) == [k for k in ckpt if not k.startswith("fc.")]
    images = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        c = encoder(images)
        assert torch.allclose(c, classifier.features(images))
        logits = classifier(images)
    assert torch.allclose(logits, c @ ckpt["fc.weight"].T + ckpt["fc.bias"], atol=1e-5)


def test_old_checkpoint_without_num_batches_tracked_loads():
    ckpt = {k: v for k, v in random_checkpoint(18).items() if "num_batches_tracked" not in k}
    model = resnet18()
    load_torchvision_state_dict(model, ckpt)
    assert torch.equal(
        model.layer2[0].downsample[1].running_var, ckpt["layer2.0.downsample.1.running_var"]
    )


def test_wrong_shape_is_a_clear_error(tmp_path):
    ckpt = random_checkpoint(18)
    ckpt["layer1.0.conv1.weight"] = torch.zeros(64, 64, 1, 1)
    path = tmp_path / "bad.pth"
    torch.save(ckpt, path)
    with pytest.raises(ValueError, match=r"layer1\.0\.conv1\.weight.*\[64, 64, 1, 1\]"):
        resnet18(pretrained_path=path)
    # A resnet50 checkpoint is not a resnet18 checkpoint.
    with pytest.raises(ValueError, match="missing keys"):
        load_torchvision_state_dict(resnet18(), random_checkpoint(50))


def test_missing_and_unexpected_keys(tmp_path):
    ckpt = random_checkpoint(18)
    del ckpt["layer4.1.bn2.weight"]
    with pytest.raises(ValueError, match=r"missing keys \['layer4\.1\.bn2\.weight'\]"):
        load_torchvision_state_dict(resnet18(), ckpt)
    ckpt = random_checkpoint(18)
    ckpt["module.extra"] = torch.zeros(1)
    with pytest.raises(ValueError, match="unexpected keys.*module.extra"):
        load_torchvision_state_dict(resnet18(), ckpt)
    with pytest.raises(FileNotFoundError, match="pretrained_path"):
        ResNetEncoder(depth=18, pretrained_path=tmp_path / "nope.pth")


@pytest.mark.parametrize(("depth", "features"), [(18, 512), (50, 2048)])
def test_encoder_output_and_gradient(depth, features):
    encoder = ResNetEncoder(depth=depth)
    assert encoder.out_features == features
    images = torch.randn(2, 3, 64, 64)
    c = encoder(images)
    assert c.shape == (2, features)
    c.square().mean().backward()
    assert encoder.conv1.weight.grad is not None
    assert encoder.conv1.weight.grad.abs().sum() > 0


def test_bad_arguments():
    with pytest.raises(ValueError, match="depth"):
        ResNet(depth=101)
    with pytest.raises(ValueError, match=r"images: expected shape \[B, 3, \*, \*\]"):
        ResNetEncoder(depth=18)(torch.randn(1, 1, 32, 32))
