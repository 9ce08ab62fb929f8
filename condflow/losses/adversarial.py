"""Adversarial pose-and-shape prior (HMR): a discriminator and least-squares GAN losses."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from condflow._checks import check_trailing

__all__ = [
    "PoseShapeDiscriminator",
    "adversarial_discriminator_loss",
    "adversarial_generator_loss",
    "discriminator_step",
]


class PoseShapeDiscriminator(nn.Module):
    """HMR's factorised discriminator on SMPL body poses and shapes.

    * per joint: shared 1x1 convolutions 9 -> 32 -> 32 on each body joint's rotation matrix,
      then one linear output per joint (23 scores);
    * whole pose: the 23 x 32 per-joint features -> 1024 -> 1024 -> 1;
    * shape: betas 10 -> 10 -> 5 -> 1.

    Output ``[..., 25]``: the 23 joint scores, then the shape score, then the whole-pose score
    (ProHMR's order). Real samples should score 1 and generated ones 0.
    """

    def __init__(self, num_joints: int = 23, num_betas: int = 10, hidden: int = 32) -> None:
        super().__init__()
        self.num_joints = num_joints
        self.num_betas = num_betas
        # A 1x1 convolution over joints is a linear map shared by all joints.
        self.joint_features = nn.Sequential(
            nn.Linear(9, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU()
        )
        self.joint_out_weight = nn.Parameter(torch.empty(num_joints, hidden))
        self.joint_out_bias = nn.Parameter(torch.zeros(num_joints))
        self.pose_out = nn.Sequential(
            nn.Linear(num_joints * hidden, 1024),
            nn.ReLU(),
            nn.Linear(1024, 1024),
            nn.ReLU(),
            nn.Linear(1024, 1),
        )
        self.shape_out = nn.Sequential(
            nn.Linear(num_betas, 10), nn.ReLU(), nn.Linear(10, 5), nn.ReLU(), nn.Linear(5, 1)
        )
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Xavier-uniform weights and zero biases, as in HMR."""
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)
        bound = math.sqrt(6.0 / (self.joint_out_weight.shape[1] + 1))
        nn.init.uniform_(self.joint_out_weight, -bound, bound)
        nn.init.zeros_(self.joint_out_bias)

    def forward(self, body_rotmat: Tensor, betas: Tensor) -> Tensor:
        """Score body poses ``[..., 23, 3, 3]`` (no global orientation) and shapes ``[..., 10]``.

        Returns ``[..., 25]`` raw scores.
        """
        check_trailing("body_rotmat", body_rotmat, (self.num_joints, 3, 3), finite=False)
        check_trailing("betas", betas, (self.num_betas,), finite=False)
        if body_rotmat.shape[:-3] != betas.shape[:-1]:
            raise ValueError(
                f"body_rotmat, betas: leading dimensions differ, got {list(body_rotmat.shape)} "
                f"and {list(betas.shape)}"
            )
        feats = self.joint_features(body_rotmat.flatten(-2))  # [..., 23, hidden]
        joint_scores = (feats * self.joint_out_weight).sum(-1) + self.joint_out_bias
        pose_score = self.pose_out(feats.flatten(-2))
        shape_score = self.shape_out(betas)
        return torch.cat([joint_scores, shape_score, pose_score], dim=-1)


def adversarial_generator_loss(disc_out: Tensor) -> Tensor:
    """Least-squares generator loss ``mean((D(fake) - 1)^2)`` on scores ``[..., 25]``."""
    return ((disc_out - 1.0) ** 2).mean()


def adversarial_discriminator_loss(real_out: Tensor, fake_out: Tensor) -> Tensor:
    """Least-squares discriminator loss ``mean((D(real) - 1)^2) + mean(D(fake)^2)``."""
    return ((real_out - 1.0) ** 2).mean() + (fake_out**2).mean()


def discriminator_step(
    discriminator: nn.Module,
    optimizer: torch.optim.Optimizer,
    real_rotmat: Tensor,
    real_betas: Tensor,
    fake_rotmat: Tensor,
    fake_betas: Tensor,
    weight: float = 1.0,
) -> float:
    """One optimiser step of the discriminator; generated inputs are detached.

    Args:
        discriminator: e.g. a ``PoseShapeDiscriminator``.
        optimizer: optimiser over the discriminator's parameters.
        real_rotmat, real_betas: ``[..., 23, 3, 3]`` and ``[..., 10]`` from a pose/shape corpus.
        fake_rotmat, fake_betas: the same from the model being trained.
        weight: multiplies the loss (ProHMR's adversarial weight).

    Returns:
        The weighted discriminator loss as a float.
    """
    optimizer.zero_grad(set_to_none=True)
    real_out = discriminator(real_rotmat, real_betas)
    fake_out = discriminator(fake_rotmat.detach(), fake_betas.detach())
    loss = weight * adversarial_discriminator_loss(real_out, fake_out)
    loss.backward()
    optimizer.step()
    return float(loss.detach())
