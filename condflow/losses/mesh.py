"""ProHMR's objective for a mesh head, as trained by :class:`condflow.tasks.mesh.MeshTask`.

L = λ_nll L_nll + λ_exp L_exp + λ_mode L_mode + λ_orth L_orth + an adversarial prior, whose
discriminator (and its optimizer) lives in the objective and is updated after every step
from "real" poses of the pose generator versus the head's outputs (the terms:
:mod:`condflow.losses.prohmr`). ``use_mode_loss: false`` drops L_mode (the paper's Table 5
ablation); a deterministic head (``probabilistic`` false) gets the terms that need no
density.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch
from torch import Tensor

from condflow._checks import NonNegativeFloat, NonNegativeInt, PositiveFloat, PositiveInt
from condflow.body.keypoints import KEYPOINT_PELVIS
from condflow.body.poses import PoseGenerator
from condflow.heads.prohmr import MeshHead, ProHMRPrediction
from condflow.losses.adversarial import AdversarialPrior
from condflow.losses.objective import Objective
from condflow.losses.prohmr import (
    BodyPrediction,
    ProHMRLossWeights,
    SupervisionBatch,
    SupervisionWeights,
    prohmr_loss,
)
from condflow.spaces.rotations import axis_angle_to_matrix

__all__ = ["MeshLoss", "MeshObjective", "gt_rotmat"]



def _supervised(pred: ProHMRPrediction) -> BodyPrediction:
    """The fields of a mesh head's prediction that the ProHMR losses supervise."""
    return BodyPrediction(keypoints_2d=pred.keypoints_2d, keypoints_3d=pred.keypoints_3d,
                          rotmat=pred.rotmat, betas=pred.betas)

@dataclass
class MeshLoss(ProHMRLossWeights):
    """ProHMR's weights (:class:`ProHMRLossWeights`, defaults: ProHMR's published values)
    and how the objective is computed."""

    use_mode_loss: bool = True  # false: drop L_mode (Table 5 ablation)
    num_samples: NonNegativeInt = 1  # samples per image for L_exp, besides the mode (ProHMR: 1)
    param_noise: NonNegativeFloat = 0.005  # std of noise on ground-truth 6D poses in L_nll (ProHMR)
    keypoint_loss: Literal["l1", "l2"] = "l1"  # penalty of 2D/3D keypoint errors (ProHMR: l1)
    disc_lr: PositiveFloat = 1e-4  # discriminator's Adam learning rate (ProHMR)
    disc_weight_decay: NonNegativeFloat = 1e-4  # discriminator's weight decay (ProHMR)
    mocap_size: PositiveInt = 20000  # "real" poses drawn once from the pose generator for the prior
    #: Keys of older configs and checkpoints, read as their new names.
    renamed_keys: ClassVar[dict[str, str]] = {"kind": "keypoint_loss"}


def gt_rotmat(batch: dict[str, Tensor]) -> Tensor:
    """Ground-truth rotations ``[B, 24, 3, 3]`` from ``global_orient [B, 3]`` and
    ``body_pose [B, 23, 3]`` (axis-angle)."""
    return axis_angle_to_matrix(torch.cat([batch["global_orient"][:, None], batch["body_pose"]], 1))


class MeshObjective(Objective):
    """ProHMR's objective for a :class:`ProHMRHead`, with the adversarial prior's
    discriminator and optimizer as extra state (updated in :meth:`after_step`)."""

    def __init__(self, model: MeshHead, loss: MeshLoss, seed: int = 0, inputs: str = "img"
                 ) -> None:
        super().__init__()
        self.model = model
        self.cfg = loss
        self.inputs = inputs
        if loss.num_samples < 0:
            raise ValueError(f"loss.num_samples: expected >= 0, got {loss.num_samples}")
        if loss.keypoint_loss not in ("l1", "l2"):
            raise ValueError(
                f"loss.keypoint_loss: expected 'l1' or 'l2', got {loss.keypoint_loss!r}"
            )
        mode = loss.mode if loss.use_mode_loss else SupervisionWeights(0.0, 0.0, 0.0, 0.0)
        self.weights = ProHMRLossWeights(
            nll=loss.nll, orth=loss.orth, adversarial=loss.adversarial, mode=mode, exp=loss.exp
        )
        self.prior: AdversarialPrior | None = None
        if loss.adversarial > 0:
            device = next(model.parameters()).device
            real = PoseGenerator(seed + 500, random_orient=False).sample(loss.mocap_size)
            self.prior = AdversarialPrior(
                axis_angle_to_matrix(real.body_pose).to(device), real.betas.to(device),
                weight=loss.adversarial, lr=loss.disc_lr, weight_decay=loss.disc_weight_decay,
                seed=seed,
            )

    def forward(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        model, cfg = self.model, self.cfg
        inputs = batch[self.inputs]
        b = inputs.shape[0]
        c = model.context(inputs)
        rotmat = gt_rotmat(batch)
        has_smpl = batch["has_smpl"] > 0
        # L_nll on the examples with a ground-truth pose only (they also initialize ActNorm).
        probabilistic = model.probabilistic
        log_prob = c.new_zeros(b) if probabilistic else None
        if log_prob is not None and bool(has_smpl.any()):  # i.e. probabilistic
            x = model.space.from_rotmat(rotmat[has_smpl])
            if model.training and cfg.param_noise > 0:
                x = x + cfg.param_noise * torch.randn_like(x)
            rows = has_smpl.nonzero()[:, 0]
            log_prob = log_prob.index_put((rows,), model.log_prob(x, c[rows]))
        # The mode (z = 0) and random samples in one pass.
        if probabilistic:
            noise = torch.cat([c.new_zeros(b, 1, model.space.dim),
                               torch.randn(b, cfg.num_samples, model.space.dim, dtype=c.dtype,
                                           device=c.device)], 1)
            pred = model.generate(noise, c)
        else:
            pred = model.mode(c)
        disc_out = None
        if self.prior is not None:
            disc_out = self.prior.score(pred.rotmat[:, :, 1:], pred.betas)
        truth = SupervisionBatch(
            keypoints_2d=batch["keypoints_2d"],
            keypoints_3d=batch["keypoints_3d"],
            rotmat=rotmat,
            betas=batch["betas"],
            has_3d=batch["has_3d"],
            has_smpl=batch["has_smpl"],
        )
        terms = prohmr_loss(
            truth,
            _supervised(pred[0]),
            _supervised(pred[1:]) if probabilistic and cfg.num_samples > 0 else None,
            log_prob=log_prob,
            pose_6d=pred.pose_6d.reshape(b, -1, 24, 6),
            disc_out=disc_out,
            weights=self.weights,
            pelvis_ids=KEYPOINT_PELVIS,
            kind=cfg.keypoint_loss,
        )
        out = {"loss": terms.pop("total")}
        out.update({k: v.detach() for k, v in terms.items()})
        return out

    def after_step(self, step: int) -> None:
        """One discriminator step: mocap poses (real) against this step's predictions."""
        if self.prior is not None:
            self.prior.step(step)

    def extra_state(self) -> dict[str, Any]:
        return {} if self.prior is None else self.prior.state_dict()

    def load_extra_state(self, state: dict[str, Any]) -> None:
        if self.prior is None:
            return
        if "discriminator" not in state:
            raise ValueError("checkpoint: has no discriminator state, but loss.adversarial > 0")
        self.prior.load_state_dict(state)
