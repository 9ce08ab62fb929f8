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
    """:class:`LiftingLoss` for a joint-space head (or its regression baseline) on batches of
    inputs (under the key ``inputs``: e.g. ``keypoints_2d [B, K, 3]`` or ``img``) and
    ``joints_3d [B, J, 3]`` (mm, root at the origin), with optional ``has_joints_3d [B]``."""

    def __init__(self, model: Head, weights: LiftingLoss, inputs: str = "keypoints_2d") -> None:
        super().__init__()
        self.model = model
        self.weights = weights
        self.inputs = inputs

    def forward(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        gt = batch["joints_3d"]
        out: dict[str, Tensor] = {}
        model = self.model
        c = model.context(batch[self.inputs])
        # Examples without 3D ground truth (has_joints_3d = 0) do not count.
        has = batch.get("has_joints_3d")
        weight = None if has is None else (has > 0).to(gt.dtype)

        def mean(x: Tensor) -> Tensor:
            return x.mean() if weight is None else (x * weight).sum() / weight.sum().clamp_min(1)

        if model.probabilistic:
            # Per-dimension NLL of the standardized joints.
            log_prob = model.log_prob(gt, c) + model.log_scale
            out["nll"] = -mean(log_prob) / model.space.dim
        else:
            out["nll"] = gt.new_zeros(())
        mode = model.mode(c).joints_mm[:, 0]
        out["mode"] = mean(mpjpe(mode, gt)) / 1000.0
        out["loss"] = self.weights.nll * out["nll"] + self.weights.mode * out["mode"]
        return out
