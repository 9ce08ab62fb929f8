"""Image encoders by name: the built-in ones, a user's own, and errors naming the key."""

import pytest
import torch
from torch import nn

from condflow.encoders import ResNetEncoder, SmallCNN
from condflow.encoders.registry import (
    IMAGE_ENCODERS,
    ImageEncoderSettings,
    build_image_encoder,
    register_image_encoder,
)


def test_built_in_names_build_their_encoders():
    cnn = build_image_encoder("small_cnn", ImageEncoderSettings(context_features=24, width=4))
    assert isinstance(cnn, SmallCNN) and cnn.out_features == 24
    assert cnn(torch.randn(2, 3, 32, 32)).shape == (2, 24)
    resnet = build_image_encoder("resnet18", ImageEncoderSettings())
    assert isinstance(resnet, ResNetEncoder) and resnet.out_features == 512


def test_a_registered_encoder_is_built_by_the_mesh_task(monkeypatch):
    from condflow.tasks import load_config
    from condflow.tasks.mesh import MeshTask

    class Pool(nn.Module):
        out_features = 3

        def forward(self, images):
            return images.mean(dim=(2, 3))

    monkeypatch.setitem(IMAGE_ENCODERS, "pool", lambda s: Pool())  # undone after the test
    with pytest.raises(ValueError, match="'pool' is already registered"):
        register_image_encoder("pool", lambda s: Pool())
    cfg = load_config({"task": "mesh", "data": {"res": 32},
                       "model": {"encoder": "pool", "flow_blocks": 1, "flow_hidden": 8,
                                 "point_hidden": 8}})
    model = MeshTask(cfg).build_model()
    assert isinstance(model.encoder, Pool)


def test_unknown_names_raise_naming_the_key():
    with pytest.raises(ValueError, match=r"model.encoder: expected one of 'small_cnn'.*'resnet"):
        build_image_encoder("resnet51", ImageEncoderSettings())
    with pytest.raises(ValueError, match="factory: expected a callable"):
        register_image_encoder("mine", None)
