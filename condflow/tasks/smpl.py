"""The SMPL family (ProHMR): encoder → c → conditional Glow over the SMPL pose in 6D, with a
point head for shape and camera.

Any encoder: an image CNN (mesh recovery) or the MLP lifter on 2D keypoints (probabilistic
SMPL from detections). Trained with ProHMR's objective
(:class:`condflow.losses.mesh.MeshObjective`: L_nll, L_exp, L_mode, L_orth and an
adversarial prior) on the data's SMPL parameters and 2D/3D keypoints; the 2D keypoints are
projected with the data's camera (``model.space.focal_length`` overrides its focal length).
``loss.use_mode_loss: false`` drops L_mode (the paper's Table 5 ablation).
``model.kind: regression`` is the deterministic baseline (the paper's Table 1 comparison):
the same encoder regressing the pose directly (:class:`ProHMRRegressionHead`), trained with
the same terms minus those that need a density (L_nll, L_exp) on the same data and budget.
"""

from __future__ import annotations

from collections.abc import Sized
from typing import Any, cast

import torch
from torch import Tensor
from torch.utils.data import Dataset

from condflow.body.model import BodyModel
from condflow.data.image_datasets import mean_smpl_body
from condflow.data.sources import SMPL_KEYS
from condflow.heads.base import Head, Prediction
from condflow.heads.prohmr import MeshHead, ProHMRHead, ProHMRPrediction, ProHMRRegressionHead
from condflow.losses.mesh import MeshLoss, MeshObjective, gt_rotmat
from condflow.metrics import j14_joints as j14
from condflow.metrics import mpjpe, pa_mpjpe
from condflow.tasks.base import Task, to_device
from condflow.tasks.evaluation import Measurement, evaluate_head, mesh_table
from condflow.viz.mesh import plot_mesh_predictions

__all__ = ["SMPLTask"]

#: Both mesh heads (flow and regression): SMPL keypoints and the crop size.
_MeshHead = ProHMRHead | ProHMRRegressionHead


def _targets(model: Head, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
    """The true rotation matrices ``[B, 24, 3, 3]`` and J14 joints ``[B, 14, 3]`` (mm)."""
    rotmat = gt_rotmat(batch)
    return rotmat, j14(cast(_MeshHead, model).keypoints(rotmat, batch["betas"])[1])


def _j14(prediction: Prediction) -> Tensor:
    """The J14 joints ``[B, n, 14, 3]`` (mm, mid-hip at the origin) of a mesh prediction."""
    return j14(cast(ProHMRPrediction, prediction).eval_joints)


class SMPLTask(Task[MeshHead]):
    name = "smpl"
    loss_config = MeshLoss
    needs = SMPL_KEYS | {"keypoints_2d"}
    fast_dev_run = (
        "loss.mocap_size=64",
        "eval.num_samples=[2]",
        "eval.batch_size=8",
        "eval.picture_examples=1",
        "eval.picture_samples=1",
    )

    def __init__(self, cfg: Any) -> None:
        super().__init__(cfg)
        self._mean: tuple[Tensor, Tensor] | None = None

    # -- model and objective --------------------------------------------------------------
    def camera(self) -> tuple[int, float]:
        """``(img_res, focal_px)`` of the head's projection: the data's camera, with
        ``model.space.focal_length`` (px at the data's crop size) replacing its focal."""
        if self.source.camera is None:
            raise ValueError(f"data.source: {self.cfg.data.source!r} has no camera for the "
                             "2D keypoints of an SMPL space")
        res, focal = self.source.camera(self.cfg.data)
        override = self.cfg.model.space.focal_length
        return res, focal if override is None else override

    def build_model(self, train_data: Dataset | None = None) -> MeshHead:
        m, space = self.cfg.model, self.cfg.model.space
        encoder = self.encoder()
        res, focal = self.camera()
        # The regression baseline's pose MLP has the coupling nets' shape (same budget).
        shared: dict[str, Any] = {
            "pose_net" if m.kind == "regression" else "coupling_net": m.coupling_net(),
            "point_hidden": space.point_hidden,
            "img_res": res,
            "focal_length": focal,
        }
        body = BodyModel(getattr(self.cfg.data, "body_model", None))
        if m.kind == "regression":
            return ProHMRRegressionHead(encoder, body, **shared)
        return ProHMRHead(
            encoder,
            body,
            num_blocks=m.flow_blocks,
            **shared,
            flow_convention=space.flow_convention,
            conditional_volume=m.conditional_volume,
            volume_hidden=m.volume_hidden,
        )

    def objective(self, model: MeshHead) -> MeshObjective:
        return MeshObjective(model, self.cfg.loss, self.cfg.seed, self.inputs.key)

    # -- evaluation -----------------------------------------------------------------------
    def mean_pose(self) -> tuple[Tensor, Tensor]:
        """Mean training body pose ``[23, 3, 3]`` (per-joint chordal mean) and shape ``[10]``,
        over the training examples with SMPL ground truth."""
        if self._mean is None:
            smpl = self.split().train_smpl
            if smpl is None:
                raise ValueError(f"data.source: {self.cfg.data.source!r} gives no training "
                                 "SMPL parameters for the mean-pose baseline")
            self._mean = mean_smpl_body(*smpl())
        return self._mean

    def evaluate(self, model: MeshHead, data: Dataset, device: torch.device) -> dict[str, Any]:
        """Mode and min-of-n MPJPE / PA-MPJPE (mm) on the 14 LSP joints, the test NLL (nats,
        6D pose features) and the uncertainty metrics
        (:func:`~condflow.tasks.evaluation.evaluate_head`; the regression baseline,
        ``model.kind: regression``, gets the deterministic metrics only), plus the terms of
        :meth:`extra_terms`."""
        measurement = Measurement(self.cfg.model.space.kind, self.inputs.key, _targets, _j14,
                                  root_index=None, extra_terms=self.extra_terms)
        return evaluate_head(model, data, device, measurement, self.cfg.eval, self.cfg.seed)

    def extra_terms(self, model: Head, batch: dict[str, Tensor], mode: Prediction,
                    target: Tensor, gt: Tensor) -> dict[str, Tensor]:
        """Per example ``[B]``: the mode's pose with the ground-truth shape
        (``mode_gt_shape/*``, separating pose from shape errors), the mean-pose baseline
        (``mean_pose/*``: mean training body pose and shape, ground-truth global orientation,
        the best case for it) and the mode's 2D keypoint error (``mode/keypoints_2d_px``:
        pixels of the crop, visible keypoints)."""
        head, mode = cast(_MeshHead, model), cast(ProHMRPrediction, mode)
        b = gt.shape[0]
        pose_only = j14(head.keypoints(mode.rotmat[:, 0], batch["betas"])[1])
        mean_body, mean_betas = (t.to(gt.device) for t in self.mean_pose())
        base_rot = torch.cat([target[:, :1], mean_body.expand(b, 23, 3, 3)], 1)
        base = j14(head.keypoints(base_rot, mean_betas.expand(b, 10))[1])
        kp = batch["keypoints_2d"]
        err = (mode.keypoints_2d[:, 0] - kp[..., :2]).norm(dim=-1) * (head.img_res / 2)
        visible = kp[..., 2] > 0
        return {
            "mode_gt_shape/mpjpe": mpjpe(pose_only, gt, None),
            "mode_gt_shape/pa_mpjpe": pa_mpjpe(pose_only, gt),
            "mean_pose/mpjpe": mpjpe(base, gt, None),
            "mean_pose/pa_mpjpe": pa_mpjpe(base, gt),
            "mode/keypoints_2d_px": (err * visible).sum(1) / visible.sum(1).clamp_min(1),
        }

    def picture(self, model: MeshHead, data: Dataset, path: str, device: torch.device) -> None:
        e = self.cfg.eval
        size = len(cast(Sized, data))  # the datasets of sources are map-style, sized
        items = [data[i] for i in range(min(e.picture_examples, size))]
        batch = to_device(torch.utils.data.default_collate(items), device)
        plot_mesh_predictions(
            model, batch[self.inputs.key], path, num_samples=e.picture_samples,
            seed=self.cfg.seed, gt_rotmat=gt_rotmat(batch), gt_betas=batch["betas"],
        )

    @staticmethod
    def table(metrics: dict[str, Any], num_samples: list[int]) -> str:
        return mesh_table(metrics, num_samples)
