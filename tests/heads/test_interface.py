"""Every head implements the Head interface the same way: typed predictions [B, n, ...], the
mode is exactly f(0; c) and the argmax of the density, sampling is the flow's (same noise,
chunked), regression heads refuse what needs a density, and what export, fitting and
predict need is there."""

import copy

import pytest
import torch

from condflow.bijectors import AffineCoupling, CouplingNet
from condflow.body.model import BodyModel
from condflow.encoders.mlp_lifter import MLPLifter
from condflow.encoders.small_cnn import SmallCNN
from condflow.flow import ConditionalFlow, ModeNotAvailableError
from condflow.heads import (
    Head,
    HeadAdapter,
    NotProbabilisticError,
    Prediction,
    ProHMRHead,
    ProHMRRegressionHead,
    SkeletonHead,
    SkeletonRegressionHead,
)
from condflow.spaces.base import OutputSpace
from condflow.spaces.skeleton import H36M_17, SkeletonSpace

B = 3
NET = CouplingNet(hidden_features=16, num_residual_blocks=1)
SPACE = SkeletonSpace(H36M_17, drop_root=True)


def perturbed(head: Head) -> Head:
    """Random non-trivial weights (the couplings' output layers start near zero)."""
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in head.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=gen))
    return head.eval()


def skeleton_flow() -> Head:
    torch.manual_seed(0)
    enc = MLPLifter(16, 3, hidden=32, num_residual_blocks=1)
    return perturbed(SkeletonHead(enc, SPACE, num_blocks=2, coupling_net=NET,
                                  mean=torch.randn(SPACE.dim), std=torch.rand(SPACE.dim) + 0.5))


def skeleton_regression() -> Head:
    torch.manual_seed(0)
    enc = MLPLifter(16, 3, hidden=32, num_residual_blocks=1, out_features=SPACE.dim)
    return perturbed(SkeletonRegressionHead(enc, SPACE, torch.randn(SPACE.dim),
                                            torch.rand(SPACE.dim) + 0.5))


def mesh_flow(body: BodyModel) -> Head:
    torch.manual_seed(0)
    return perturbed(ProHMRHead(SmallCNN(3, 16, width=4), body, num_blocks=2, coupling_net=NET,
                                point_hidden=16, img_res=32))


def mesh_regression(body: BodyModel) -> Head:
    torch.manual_seed(0)
    return perturbed(ProHMRRegressionHead(SmallCNN(3, 16, width=4), body, pose_net=NET,
                                          point_hidden=16, img_res=32))


@pytest.fixture(params=["skeleton", "skeleton_regression", "mesh", "mesh_regression"])
def head(request, body) -> Head:
    return {"skeleton": skeleton_flow, "skeleton_regression": skeleton_regression,
            "mesh": lambda: mesh_flow(body),
            "mesh_regression": lambda: mesh_regression(body)}[request.param]()


def context_of(head: Head) -> torch.Tensor:
    with torch.no_grad():
        x = head.example_inputs(B, torch.Generator().manual_seed(1))
        return head.context(x.to(next(head.parameters()).dtype))


def test_every_head_predicts_typed_fields_with_a_sample_axis(head):
    assert isinstance(head, Head) and isinstance(head.space, OutputSpace)
    c = context_of(head)
    with torch.no_grad():
        mode = head.mode(c)
        forward = head(head.example_inputs(B, torch.Generator().manual_seed(1)))
    assert isinstance(mode, Prediction) and mode.num_samples == 1
    for name, value in mode.outputs().items():
        assert value.shape[:2] == (B, 1), name
    joints = mode.joints_mm
    assert joints.shape == (B, 1, 17, 3) and torch.isfinite(joints).all()
    assert joints[:, :, 0].abs().max() < 1e-3  # root-relative: the root (pelvis) at 0
    for name, value in mode.outputs().items():
        assert torch.equal(value, getattr(forward, name)), name
    exported = head.export_prediction(c)
    assert set(head.mode_outputs) <= set(exported.outputs())
    assert set(head.mode_outputs) | set(head.sample_outputs) | {"log_prob"} \
        <= set(head.output_units)
    assert head.input_normalization()
    assert head.input_kind in ("keypoints_2d", "images")


def test_regression_heads_refuse_what_needs_a_density(head):
    if head.probabilistic:
        pytest.skip("a flow head")
    c = context_of(head)
    mode = head.mode(c)
    assert mode.log_prob is None and head.point_label == "regression"
    assert not head.volume_depends_on_context
    refused = [lambda: head.sample(2, c), lambda: head.sample_and_log_prob(2, c),
               lambda: head.generate(torch.zeros(B, 1, 4), c),
               lambda: head.log_prob(head.space.to_native(torch.zeros(B, head.space.dim)), c),
               head.fitting_adapter,
               lambda: head.export_prediction(c, torch.zeros(B, 1, 4))]
    for call in refused:
        with pytest.raises(NotProbabilisticError, match=type(head).__name__):
            call()


def test_the_mode_is_f_of_zero_and_the_argmax_of_the_density(head):
    if not head.probabilistic:
        pytest.skip("a regression head")
    # float64 (a copy: the body model is shared): the round trip z -> x -> z is exact to ~1e-10
    head = copy.deepcopy(head).double()
    c = context_of(head)
    d = head.latent_features
    with torch.no_grad():
        mode = head.mode(c)
        at_zero = head.generate(torch.zeros(B, 1, d, dtype=c.dtype), c)
        samples = head.sample(64, c, torch.Generator().manual_seed(2))
        # A mesh head scores its raw 6D features: rotation matrices drop their
        # non-orthonormal part, so they are another point of the 144-d density.
        log_p_mode = head.log_prob(getattr(mode, "pose_6d", mode.native)[:, 0], c)
    for name, value in mode.outputs().items():
        torch.testing.assert_close(value, getattr(at_zero, name), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(log_p_mode, mode.log_prob[:, 0], rtol=1e-8, atol=1e-8)
    assert (mode.log_prob >= samples.log_prob - 1e-4).all()
    assert samples.num_samples == 64


def test_sampling_is_the_flows_chunked_sampling_with_the_same_noise(head):
    if not head.probabilistic:
        pytest.skip("a regression head")
    c = context_of(head)
    with torch.no_grad():
        noise = head.flow.noise(5, c, torch.Generator().manual_seed(3))
        expected = head.generate(noise, c)
        head.flow.max_rows = 4  # B·n = 15 rows: four chunks
        got = head.sample(5, c, torch.Generator().manual_seed(3))
        native, log_prob = head.sample_and_log_prob(5, c, torch.Generator().manual_seed(3))
    # float32 rounding only: chunks change the shapes of the matrix products.
    for name, value in expected.outputs().items():
        torch.testing.assert_close(getattr(got, name), value, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(log_prob, expected.log_prob, rtol=1e-4, atol=1e-4)
    assert native.shape == (B, 5, *head.space.native_shape)


def test_a_head_whose_log_det_depends_on_z_refuses_the_mode():
    head = skeleton_flow()
    c = context_of(head)
    d, features = head.latent_features, head.flow.context_features
    head.flow = ConditionalFlow(AffineCoupling(d, features), d, features)
    with pytest.raises(ModeNotAvailableError):
        head.mode(c)
    assert head.sample(2, c).joints.shape == (B, 2, 17, 3)


def test_fitting_adapters_project_the_heads_outputs(head):
    if not head.probabilistic:
        pytest.skip("a regression head")
    c = context_of(head)
    adapter = head.fitting_adapter()
    assert isinstance(adapter, HeadAdapter) and adapter.dim == head.latent_features
    with torch.no_grad():
        theta = head.flow.mode(c)
        keypoints = torch.rand(B, adapter.num_keypoints, 3)
        extras = adapter.initial_extras(theta, c, keypoints)
        projected = adapter.project(theta, extras)
        outputs = adapter.outputs(theta, extras)
    assert projected.shape == (B, adapter.num_keypoints, 2) and torch.isfinite(projected).all()
    torch.testing.assert_close(outputs["joints_mm"], head.mode(c).joints_mm[:, 0],
                               rtol=1e-5, atol=1e-3)


def test_an_encoder_without_a_context_size_is_named():
    enc = MLPLifter(16, 3, hidden=32, num_residual_blocks=1)
    enc.out_features = 0  # would otherwise build an unconditional flow that ignores it
    with pytest.raises(ValueError, match=r"encoder\.out_features: expected an integer >= 1, "
                                         r"got 0"):
        SkeletonHead(enc, SPACE, coupling_net=NET)
    with pytest.raises(ValueError, match=r"encoder\.out_features"):
        ProHMRHead(enc, BodyModel(), coupling_net=NET)
