"""The lifting objective: λ_nll L_nll + λ_mode L_mode for a skeleton head (L_mode alone for
the deterministic regression baseline), as :class:`condflow.tasks.lifting.LiftingTask`
trains it."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from condflow._checks import NonNegativeFloat
from condflow.heads.base import Head
from condflow.losses.objective import Objective
from condflow.metrics import mpjpe

__all__ = ["LiftingLoss", "LiftingObjective"]


@dataclass
class LiftingLoss:
    """λ_nll · L_nll (per-dimension NLL of standardized joints) + λ_mode · L_mode (mean
    per-joint error of the mode, metres)."""

    nll: NonNegativeFloat = 1.0
    mode: NonNegativeFloat = 10.0


class LiftingObjective(Objective):
    """:class:`LiftingLoss` for a skeleton head (or its regression baseline) on batches of
    ``keypoints_2d [B, J, 3]`` and ``joints_3d [B, 17, 3]`` (mm, root at the origin)."""

    def __init__(self, model: Head, weights: LiftingLoss) -> None:
        super().__init__()
        self.model = model
        self.weights = weights

    def forward(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        gt = batch["joints_3d"]
        out: dict[str, Tensor] = {}
        model = self.model
        c = model.context(batch["keypoints_2d"])
        if model.probabilistic:
            # Per-dimension NLL of the standardized joints.
            log_prob = model.log_prob(gt, c) + model.log_scale
            out["nll"] = -log_prob.mean() / model.space.dim
        else:
            out["nll"] = gt.new_zeros(())
        mode = model.mode(c).joints_mm[:, 0]
        out["mode"] = mpjpe(mode, gt).mean() / 1000.0
        out["loss"] = self.weights.nll * out["nll"] + self.weights.mode * out["mode"]
        return out
