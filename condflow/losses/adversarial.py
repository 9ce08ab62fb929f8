"""Adversarial pose-and-shape prior (HMR): a discriminator, least-squares GAN losses, and
:class:`AdversarialPrior`, the discriminator trained alongside a model as ProHMR does."""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from condflow._checks import check_trailing

__all__ = [
    "AdversarialPrior",
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


class AdversarialPrior:
    """A :class:`PoseShapeDiscriminator` with its own Adam optimizer, trained alongside a
    model: :meth:`score` gives the generator loss's scores of the model's bodies, and
    :meth:`step`, after each model step, trains the discriminator on a batch of ``real``
    bodies against the bodies last scored.

    Deliberately not an ``nn.Module``: an objective holding it keeps the discriminator out
    of its module tree, so the model's optimizer and its ``DistributedDataParallel`` wrapper
    never see it. Under ``torch.distributed`` the discriminator step runs through a
    ``DistributedDataParallel`` wrapper of its own, which averages the gradients over the
    processes, so every replica stays identical.

    Args:
        real_rotmat: ``[N, 23, 3, 3]`` body-joint rotations (no global orientation) of the
            "real" corpus; its device is the discriminator's.
        real_betas: ``[N, 10]`` their shapes.
        weight: multiplies the discriminator loss (ProHMR's adversarial weight).
        lr, weight_decay: the discriminator's Adam settings (ProHMR: 1e-4, 1e-4).
        seed: the initialization draws from ``seed + 500`` (the same on every process); the
            real batch of step ``t`` on process ``r`` from ``(seed, t, r)``.
    """

    def __init__(
        self,
        real_rotmat: Tensor,
        real_betas: Tensor,
        weight: float,
        lr: float = 1e-4,
        weight_decay: float = 1e-4,
        seed: int = 0,
    ) -> None:
        check_trailing("real_rotmat", real_rotmat, (23, 3, 3))
        check_trailing("real_betas", real_betas, (10,))
        if real_rotmat.dim() != 4 or real_betas.shape[0] != real_rotmat.shape[0]:
            raise ValueError(
                f"real_rotmat, real_betas: expected [N, 23, 3, 3] and [N, 10], got "
                f"{list(real_rotmat.shape)} and {list(real_betas.shape)}"
            )
        device = real_rotmat.device
        with torch.random.fork_rng(devices=[]):  # the same on every process
            torch.manual_seed(seed + 500)
            self.discriminator = PoseShapeDiscriminator().to(device)
        self.optimizer = torch.optim.Adam(
            self.discriminator.parameters(), lr=lr, weight_decay=weight_decay
        )
        self.real_rotmat, self.real_betas = real_rotmat, real_betas
        self.weight, self.seed = weight, seed
        self._trained: nn.Module = self.discriminator
        if dist.is_available() and dist.is_initialized():
            ids = [device.index] if device.type == "cuda" else None
            self._trained = DistributedDataParallel(self.discriminator, device_ids=ids)
        self._fake: tuple[Tensor, Tensor] | None = None

    def score(self, body_rotmat: Tensor, betas: Tensor) -> Tensor:
        """Scores ``[..., 25]`` of generated bodies ``[..., 23, 3, 3]`` and ``[..., 10]``,
        differentiable in the inputs only; the bodies (detached) are the fakes of the next
        :meth:`step`."""
        self._fake = (body_rotmat.detach().reshape(-1, 23, 3, 3), betas.detach().reshape(-1, 10))
        disc = self.discriminator
        params = {k: v.detach() for k, v in disc.named_parameters()}
        return torch.func.functional_call(disc, params, (body_rotmat, betas))

    def step(self, step: int) -> None:
        """One discriminator step: a random batch of real bodies against the bodies last
        scored (as many as those); nothing if none were scored since the last step."""
        if self._fake is None:
            return
        fake_rotmat, fake_betas = self._fake
        rank = dist.get_rank() if dist.is_available() and dist.is_initialized() else 0
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + 7919 * step + rank)
        idx = torch.randint(len(self.real_betas), (fake_betas.shape[0],), generator=gen)
        idx = idx.to(self.real_betas.device)
        discriminator_step(self._trained, self.optimizer, self.real_rotmat[idx],
                           self.real_betas[idx], fake_rotmat, fake_betas, self.weight)
        self._fake = None

    def state_dict(self) -> dict[str, Any]:
        """The discriminator's and its optimizer's state."""
        return {"discriminator": self.discriminator.state_dict(),
                "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.discriminator.load_state_dict(state["discriminator"])
        self.optimizer.load_state_dict(state["optimizer"])
