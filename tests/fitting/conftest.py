"""Small heads and keypoint problems shared by the fitting tests."""

import pytest
import torch

from condflow.bijectors import CouplingNet
from condflow.encoders.mlp_lifter import MLPLifter
from condflow.heads.skeleton import SkeletonHead
from condflow.spaces.skeleton import H36M_17, H36M_17_TO_16, SkeletonSpace

SPACE = SkeletonSpace(H36M_17, drop_root=True)

# A standing Human3.6M-17 skeleton in the camera frame (x right, y down), millimetres.
STANDING_MM = torch.tensor([
    [0, 0, 0], [-120, 0, 0], [-120, 450, 0], [-120, 880, 50], [120, 0, 0], [120, 450, 0],
    [120, 880, 50], [0, -230, 0], [0, -480, 0], [0, -580, -80], [0, -680, 0], [170, -450, 0],
    [300, -200, 0], [350, 50, -50], [-170, -450, 0], [-300, -200, 0], [-350, 50, -50],
], dtype=torch.float64)


def make_skeleton_head(dtype: torch.dtype = torch.float64, seed: int = 0) -> SkeletonHead:
    """An untrained lifting head whose flow is centred on a standing skeleton (std 40 mm)."""
    torch.manual_seed(seed)
    encoder = MLPLifter(16, 3, hidden=32, num_residual_blocks=1, dropout=0.0)
    mean = SPACE.from_joints(STANDING_MM).float()
    head = SkeletonHead(encoder, SPACE, mean=mean, std=torch.full((48,), 40.0), num_blocks=2,
                        coupling_net=CouplingNet(hidden_features=32, num_residual_blocks=1))
    return head.to(dtype).eval()


def project(joints_mm: torch.Tensor, transl: torch.Tensor, focal: float = 2.0) -> torch.Tensor:
    """Pinhole projection of joints ``[B, 17, 3]`` (mm) at ``transl [B, 3]`` (m) to the 16
    lifting keypoints ``[B, 16, 3]`` with confidence 1."""
    p = joints_mm[:, list(H36M_17_TO_16)] / 1000.0 + transl[:, None]
    uv = focal * p[..., :2] / p[..., 2:]
    return torch.cat([uv, torch.ones_like(uv[..., :1])], -1)


def skeleton_problem(head: SkeletonHead, batch: int = 4, seed: int = 1, noise: float = 0.003):
    """Contexts ``[B, 32]`` and keypoints ``[B, 16, 3]`` of skeletons near (not at) the modes."""
    g = torch.Generator().manual_seed(seed)
    dtype = next(head.parameters()).dtype
    transl = torch.tensor([0.1, -0.2, 5.0], dtype=dtype).repeat(batch, 1)
    transl[:, 2] += torch.rand(batch, generator=g, dtype=dtype)
    with torch.no_grad():
        kp_in = project(STANDING_MM.to(dtype).expand(batch, 17, 3), transl)
        context = head.context(kp_in)
        z = torch.randn(batch, 48, generator=g, dtype=dtype)
        joints = head.space.to_joints(head.flow.generate(z, context)[0])
    kp = project(joints, transl)
    kp[..., :2] += noise * torch.randn(batch, 16, 2, generator=g, dtype=dtype)
    return context, kp, joints


@pytest.fixture(scope="module")
def skeleton_head() -> SkeletonHead:
    return make_skeleton_head()


@pytest.fixture
def make_problem():
    return skeleton_problem


@pytest.fixture
def new_skeleton_head():
    return make_skeleton_head


@pytest.fixture(scope="session")
def smpl_head():
    """A tiny untrained ProHMR head (float64) over the synthetic body model, its ActNorms
    initialized on generated poses (as the first training step does), so that f(0; c) is
    near the mean pose rather than near the degenerate 6D vector 0."""
    from condflow.body.model import BodyModel
    from condflow.body.poses import PoseGenerator
    from condflow.encoders.small_cnn import SmallCNN
    from condflow.heads.prohmr import ProHMRHead

    torch.manual_seed(0)
    net = CouplingNet(hidden_features=16, num_residual_blocks=1)
    head = ProHMRHead(SmallCNN(3, 16, width=4), BodyModel(), num_blocks=2, coupling_net=net,
                      point_hidden=16, img_res=64).double()
    poses = PoseGenerator(seed=0).sample(256)
    pose_6d = head.space.from_axis_angle(poses.global_orient, poses.body_pose).double()
    head.train()
    with torch.no_grad():
        head.flow.log_prob(pose_6d, torch.randn(256, 16, dtype=torch.float64))
    return head.eval()


def smpl_problem(head, batch: int = 2, seed: int = 3, noise: float = 0.005,
                 z_scale: float = 0.3):
    """Contexts ``[B, 16]`` and keypoints ``[B, 24, 3]`` of bodies near the modes."""
    g = torch.Generator().manual_seed(seed)
    context = torch.randn(batch, 16, generator=g, dtype=torch.float64)
    with torch.no_grad():
        z = z_scale * torch.randn(batch, 1, 144, generator=g, dtype=torch.float64)
        kp2d = head.generate(z, context).keypoints_2d[:, 0]
    kp2d = kp2d + noise * torch.randn(kp2d.shape, generator=g, dtype=torch.float64)
    return context, torch.cat([kp2d, torch.ones_like(kp2d[..., :1])], -1)


@pytest.fixture
def make_smpl_problem():
    return smpl_problem
