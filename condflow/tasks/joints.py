"""The joints family: encoder → c → conditional Glow over the features of a joint space.

A joint space is any output space whose native representation is root-relative 3D joints
``[..., J, 3]`` in millimetres: the Human3.6M skeleton (2D→3D lifting from keypoints, or
3D joints from images) or a user's own (:func:`condflow.register_space`). Trained with
L_nll + L_mode (:class:`condflow.losses.lifting.LiftingObjective`) on the data's
``joints_3d``; the regression baseline (``model.kind: regression``) is the same encoder
with a direct output of the space's features, trained with L_mode alone, on the same data
and budget.
"""

from __future__ import annotations

from typing import Any, cast

import torch
from torch import Tensor
from torch.utils.data import Dataset, default_collate

from condflow.heads.base import Head
from condflow.heads.skeleton import SkeletonHead, SkeletonRegressionHead
from condflow.losses.lifting import LiftingLoss, LiftingObjective
from condflow.spaces.base import OutputSpace
from condflow.tasks.base import Task, to_device
from condflow.tasks.evaluation import Measurement, evaluate_head, lifting_table
from condflow.viz.skeleton import plot_lifting

__all__ = ["JointsTask"]


def _targets(model: Head, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
    return batch["joints_3d"], batch["joints_3d"]


def _roots(space: OutputSpace) -> list[int]:
    return [j for j, parent in enumerate(space.parents) if parent == -1]


class JointsTask(Task[Head]):
    name = "joints"
    loss_config = LiftingLoss
    needs = frozenset({"joints_3d"})
    fast_dev_run = ("eval.num_samples=[1, 5]", "eval.picture_examples=2")

    def build_model(self, train_data: Dataset | None = None) -> Head:
        m = self.cfg.model
        space = self.space()
        mean = std = None
        if train_data is not None:
            joints = self.split().train_joints_3d
            if joints is None:
                raise ValueError(f"data.source: {self.cfg.data.source!r} gives no training "
                                 "joints_3d for the normalization statistics")
            x = space.from_native(joints())
            mean, std = x.mean(0), x.std(0).clamp_min(1.0)
        if m.kind == "regression":
            return SkeletonRegressionHead(self.encoder(space.dim), space, mean, std)
        return SkeletonHead(
            self.encoder(),
            space,
            mean=mean,
            std=std,
            num_blocks=m.flow_blocks,
            coupling_net=m.coupling_net(),
            conditional_volume=m.conditional_volume,
            volume_hidden=m.volume_hidden,
        )

    def objective(self, model: Head) -> LiftingObjective:
        return LiftingObjective(model, self.cfg.loss, self.inputs.key)

    def measurement(self, model: Head) -> Measurement:
        """Joints aligned at the space's root; the coverage leaves the root out (it is at the
        origin in every sample)."""
        roots = _roots(model.space)
        joints = [j for j in range(len(model.space.parents)) if j not in roots]
        return Measurement(self.cfg.model.space.kind, self.inputs.key, _targets,
                           root_index=roots[0] if len(roots) == 1 else None,
                           region_joints=joints)

    def evaluate(self, model: Head, data: Dataset, device: torch.device) -> dict[str, Any]:
        """Mode and min-of-n MPJPE / PA-MPJPE (mm, aligned at the root), the test NLL (nats,
        joints in mm) and the uncertainty metrics (probabilistic models only): see
        :func:`~condflow.tasks.evaluation.evaluate_head`."""
        return evaluate_head(model, data, device, self.measurement(model), self.cfg.eval,
                             self.cfg.seed)

    def picture(self, model: Head, data: Dataset, path: str, device: torch.device) -> None:
        k = min(self.cfg.eval.picture_examples, len(cast(Any, data)))
        batch = to_device(default_collate([data[i] for i in range(k)]), device)
        plot_lifting(model, batch[self.inputs.key], batch["joints_3d"], path,
                     seed=self.cfg.seed)

    @staticmethod
    def table(metrics: dict[str, Any], num_samples: list[int]) -> str:
        return lifting_table(metrics, num_samples)
