"""ProHMR head: shapes, mode, densities, gradients, state."""

import pytest
import torch

from condflow.bijectors import CouplingNet
from condflow.body.camera import project_to_crop
from condflow.body.model import BodyModel
from condflow.encoders.small_cnn import SmallCNN
from condflow.heads.prohmr import ProHMRHead


def make_head(body: BodyModel, img_res: int = 32, **kw) -> ProHMRHead:
    torch.manual_seed(0)
    enc = SmallCNN(3, 16, width=4)
    net = CouplingNet(hidden_features=16, num_residual_blocks=1)
    return ProHMRHead(enc, body, num_blocks=2, coupling_net=net, point_hidden=16, img_res=img_res,
                      **kw)


def test_shapes_of_mode_sample_and_log_prob(body):
    head = make_head(body).eval()
    images = torch.randn(3, 3, 32, 32)
    c = head.context(images)
    mode = head.mode(c, vertices=True)
    samples = head.sample(5, c)
    assert mode.pose_6d.shape == (3, 1, 144) and mode.rotmat.shape == (3, 1, 24, 3, 3)
    assert mode.betas.shape == (3, 1, 10) and mode.cam.shape == (3, 1, 3)
    assert mode.joints.shape == (3, 1, 24, 3) and mode.eval_joints.shape == (3, 1, 17, 3)
    assert mode.keypoints_3d.shape == (3, 1, 24, 3) and mode.keypoints_2d.shape == (3, 1, 24, 2)
    assert mode.vertices.shape == (3, 1, body.num_vertices, 3) and mode.log_prob.shape == (3, 1)
    assert samples.pose_6d.shape == (3, 5, 144) and samples.keypoints_2d.shape == (3, 5, 24, 2)
    assert samples.vertices is None and samples[1:3].rotmat.shape == (3, 2, 24, 3, 3)
    # β and camera come from the point head: one per image, shared by its samples.
    assert torch.equal(samples.betas[:, 0], samples.betas[:, 4])
    # log_prob takes 6D features or rotation matrices (of orthonormal 6D: the same point).
    lp6 = head.log_prob(mode.rotmat[:, 0, :, :, :2].reshape(3, 144), c)
    assert torch.allclose(head.log_prob(mode.rotmat[:, 0], c), lp6)
    assert head.log_prob(samples.rotmat, c).shape == (3, 5)
    # Vertices agree with the keypoint path.
    assert torch.allclose(head.body.regress_eval_joints(mode.vertices[:, 0]),
                          mode.eval_joints[:, 0], atol=1e-5)
    with pytest.raises(ValueError, match="pose: expected 6D poses"):
        head.log_prob(torch.zeros(3, 143), c)
    with pytest.raises(ValueError, match="num_samples"):
        head.sample(0, c)


def test_mode_is_f_of_zero_and_most_likely(body):
    head = make_head(body).eval()
    c = head.context(torch.randn(4, 3, 32, 32))
    mode = head.mode(c)
    assert torch.equal(mode.pose_6d[:, 0], head.flow.mode(c))
    assert torch.allclose(mode.log_prob[:, 0], head.log_prob(mode.pose_6d[:, 0], c), atol=1e-3)
    samples = head.sample(64, c, generator=torch.Generator().manual_seed(1))
    assert (mode.log_prob >= samples.log_prob - 1e-4).all()
    assert torch.equal(head(torch.zeros(1, 3, 32, 32)).pose_6d,
                       head.mode(head.context(torch.zeros(1, 3, 32, 32))).pose_6d)


def test_keypoints_2d_follow_the_camera_and_do_not_depend_on_the_crop_size(body):
    small, large = make_head(body, img_res=32).eval(), make_head(body, img_res=224).eval()
    large.load_state_dict(small.state_dict())
    assert large.focal_length == 5000.0 and small.focal_length == pytest.approx(5000 * 32 / 224)
    c = small.context(torch.randn(2, 3, 32, 32))
    a, b = small.mode(c), large.mode(c)
    assert torch.allclose(a.keypoints_2d, b.keypoints_2d, atol=1e-5)
    expected = project_to_crop(a.keypoints_3d, a.cam, 5000.0, 224)
    assert torch.allclose(a.keypoints_2d, expected, atol=1e-5)
    # A larger weak-perspective scale spreads the keypoints: s doubles, spread doubles.
    cam2 = a.cam * torch.tensor([2.0, 1.0, 1.0])
    spread = project_to_crop(a.keypoints_3d, cam2, 5000.0, 224).std(-2)
    assert torch.allclose(spread, 2 * a.keypoints_2d.std(-2), rtol=0.02)


def test_gradients_reach_encoder_flow_and_point_head(body, random_rotmat):
    head = make_head(body).train()
    images = torch.randn(4, 3, 32, 32)
    c = head.context(images)
    rotmat, _ = random_rotmat(4)
    pred = head.sample(2, c)
    loss = pred.keypoints_2d.abs().mean() - head.log_prob(rotmat, c).mean() * 1e-3
    loss.backward()
    for name in ("encoder", "flow", "point_head"):
        grads = [p.grad for p in getattr(head, name).parameters() if p.requires_grad]
        assert any(g is not None and g.abs().sum() > 0 for g in grads), name


def test_body_model_stays_out_of_the_state_dict(body):
    head = make_head(body)
    keys = head.state_dict().keys()
    assert not [k for k in keys if k.startswith(("body.", "keypoints."))]
    assert any(k.startswith("flow.") for k in keys) and "point_head.init_cam" in keys
