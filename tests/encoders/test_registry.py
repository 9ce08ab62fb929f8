"""Encoders by name: the built-in ones, a user's own, and errors naming the key."""

from dataclasses import dataclass

import pytest
import torch
from torch import nn

from condflow import register_encoder
from condflow.encoders import MLPLifter, ResNetEncoder, SmallCNN
from condflow.encoders.registry import (
    ENCODERS,
    EncoderRequest,
    MLPLifterSettings,
    ResNetSettings,
    SmallCNNSettings,
    build_encoder,
)
from condflow.inputs import InputSpec

IMAGES = InputSpec("images", (3, 32, 32))
KEYPOINTS = InputSpec("keypoints_2d", (16, 3))


def test_built_in_names_build_their_encoders():
    cnn = build_encoder("small_cnn", SmallCNNSettings(context_features=24, width=4),
                        EncoderRequest(IMAGES))
    assert isinstance(cnn, SmallCNN) and cnn.out_features == 24 and cnn.input_kind == "images"
    assert cnn(torch.randn(2, 3, 32, 32)).shape == (2, 24)
    resnet = build_encoder("resnet18", ResNetSettings(), EncoderRequest(IMAGES))
    assert isinstance(resnet, ResNetEncoder) and resnet.out_features == 512
    lifter = build_encoder("mlp_lifter", MLPLifterSettings(hidden=8, blocks=1),
                           EncoderRequest(KEYPOINTS, out_features=5))
    assert isinstance(lifter, MLPLifter) and lifter.num_joints == 16 and lifter.out_features == 5


def test_a_regression_output_layer_follows_an_image_encoder():
    cnn = build_encoder("small_cnn", SmallCNNSettings(context_features=24, width=4),
                        EncoderRequest(IMAGES, out_features=7))
    assert cnn.out_features == 7 and cnn.input_kind == "images"
    assert cnn(torch.randn(2, 3, 32, 32)).shape == (2, 7)


def test_a_lifter_without_confidences_reads_the_same_keypoints():
    lifter = build_encoder("mlp_lifter", MLPLifterSettings(hidden=8, blocks=1,
                                                           use_confidence=False),
                           EncoderRequest(KEYPOINTS))
    kp = torch.randn(3, 16, 3)
    changed = kp.clone()
    changed[..., 2] = 7.0  # the confidences are not read
    lifter.eval()
    assert torch.equal(lifter(kp), lifter(changed)) and lifter.out_features == 8


@dataclass
class PoolSettings:
    scale: float = 1.0


class Pool(nn.Module):
    out_features = 3
    input_kind = "images"

    def __init__(self, scale: float) -> None:
        super().__init__()
        self.scale = scale

    def forward(self, images):
        return self.scale * images.mean(dim=(2, 3))


def test_a_registered_encoder_is_built_by_name(monkeypatch):
    monkeypatch.setattr(ENCODERS, "_entries", dict(ENCODERS._entries))  # undone after
    register_encoder("pool", PoolSettings, "images", lambda s, r: Pool(s.scale))
    with pytest.raises(ValueError, match="'pool' is already registered"):
        register_encoder("pool", PoolSettings, "images", lambda s, r: Pool(s.scale))
    pool = build_encoder("pool", PoolSettings(2.0), EncoderRequest(IMAGES))
    assert isinstance(pool, Pool) and pool.scale == 2.0


def test_unknown_names_and_wrong_inputs_raise_naming_the_key():
    with pytest.raises(ValueError, match=r"model.encoder.kind: expected a registered encoder "
                                         r"\('mlp_lifter', 'small_cnn'.*got 'resnet51'"):
        build_encoder("resnet51", ResNetSettings(), EncoderRequest(IMAGES))
    with pytest.raises(ValueError, match=r"model.encoder.kind: 'small_cnn' reads images, but "
                                         r"the data's input is keypoints_2d \[16, 3\]"):
        build_encoder("small_cnn", SmallCNNSettings(), EncoderRequest(KEYPOINTS))
    with pytest.raises(ValueError, match="factory: expected a callable"):
        register_encoder("mine", PoolSettings, "images", None)
    with pytest.raises(ValueError, match="settings: expected a dataclass type"):
        register_encoder("mine", dict, "images", lambda s, r: Pool(1.0))
    with pytest.raises(ValueError, match="reads: expected one of"):
        register_encoder("mine", PoolSettings, "audio", lambda s, r: Pool(1.0))
