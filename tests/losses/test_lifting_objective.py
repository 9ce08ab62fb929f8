"""The joint-space objective: examples without 3D ground truth (``has_joints_3d = 0``) do not
count, and without the flag every example does."""

import torch

from condflow.bijectors import CouplingNet
from condflow.encoders import MLPLifter
from condflow.heads.skeleton import SkeletonHead
from condflow.losses.lifting import LiftingLoss, LiftingObjective
from condflow.spaces.skeleton import H36M_17, SkeletonSpace


def test_examples_without_3d_ground_truth_do_not_count():
    torch.manual_seed(0)
    lifter = MLPLifter(num_joints=16, in_channels=3, hidden=16, num_residual_blocks=1,
                       dropout=0.0, batch_norm="none")
    head = SkeletonHead(lifter, SkeletonSpace(H36M_17, drop_root=True), num_blocks=1,
                        coupling_net=CouplingNet(hidden_features=8, num_residual_blocks=1,
                                                 batch_norm="none")).eval()
    objective = LiftingObjective(head, LiftingLoss(nll=1.0, mode=10.0))
    keypoints = torch.rand(3, 16, 3)
    joints = 100 * torch.randn(3, 17, 3)
    joints[:, 0] = 0
    garbage = joints.clone()
    garbage[2] = 1e4  # the third example has no 3D: its joints are never read as truth
    flags = torch.tensor([1.0, 1.0, 0.0])
    masked = objective({"keypoints_2d": keypoints, "joints_3d": garbage, "has_joints_3d": flags})
    first_two = objective({"keypoints_2d": keypoints[:2], "joints_3d": joints[:2]})
    for key in ("nll", "mode", "loss"):
        torch.testing.assert_close(masked[key], first_two[key], rtol=1e-5, atol=1e-6)
    every = objective({"keypoints_2d": keypoints, "joints_3d": joints})
    assert not torch.allclose(every["loss"], first_two["loss"])  # the flag changes the loss
