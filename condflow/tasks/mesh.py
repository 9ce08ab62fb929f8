"""Mesh recovery (ProHMR): image encoder → c → conditional Glow over the SMPL pose, with a
point head for shape and camera.

Trained with ProHMR's objective (:class:`condflow.losses.mesh.MeshObjective`: L_nll, L_exp,
L_mode, L_orth and an adversarial prior); ``loss.use_mode_loss: false`` drops L_mode (the
paper's Table 5 ablation).
``model.kind: regression`` is the deterministic baseline (the paper's Table 1 comparison):
the same encoder regressing the pose directly (:class:`ProHMRRegressionHead`), trained with
the same terms minus those that need a density (L_nll, L_exp) on the same data and budget.
"""

from __future__ import annotations

from collections.abc import Sized
from dataclasses import dataclass, field
from typing import Any, Literal, cast

import torch
from torch import Tensor
from torch.utils.data import Dataset

from condflow._checks import (
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    Probability,
)
from condflow._norms import Norm
from condflow.bijectors import CouplingNet
from condflow.body.model import BodyModel
from condflow.config import Config
from condflow.data.augmentation_rounds import AugmentationRounds
from condflow.data.image_datasets import AugmentationConfig, ImageDataset, mean_smpl_body
from condflow.data.synthetic_images import SyntheticImageConfig, synthetic_image_set
from condflow.encoders.registry import ImageEncoderSettings, build_image_encoder
from condflow.heads.base import Head, Prediction
from condflow.heads.prohmr import MeshHead, ProHMRHead, ProHMRPrediction, ProHMRRegressionHead
from condflow.losses.mesh import MeshLoss, MeshObjective, gt_rotmat
from condflow.metrics import j14_joints as j14
from condflow.metrics import mpjpe, pa_mpjpe
from condflow.tasks.base import Task, to_device
from condflow.tasks.evaluation import Measurement, evaluate_head, mesh_table
from condflow.viz.mesh import plot_mesh_predictions


def _prohmr_augmentation() -> AugmentationConfig:
    return AugmentationConfig(scale_factor=0.3, rot_factor=30.0, rot_prob=0.6, flip_prob=0.5,
                              color_factor=0.2, trans_factor=0.02)


@dataclass
class MeshData:
    """Where images come from and how they are fed."""

    source: Literal["synthetic", "spin_npz"] = "synthetic"  # rendered set, or files below
    res: PositiveInt = 64  # crop side fed to the network (synthetic sets are rendered at it)
    train_size: PositiveInt = 10000  # synthetic: training images
    test_size: PositiveInt = 500  # synthetic: test images (seed + 1000, none 2D-only)
    synthetic: SyntheticImageConfig = field(default_factory=SyntheticImageConfig)  # size/seed/res
    body_model: str | None = None  # SMPL file/folder; None: $CONDFLOW_SMPL_PATH or synthetic
    train_npz: str | None = None  # spin_npz: training annotations (SPIN layout)
    train_img_dir: str | None = None  # spin_npz: folder the training imgnames are relative to
    test_npz: str | None = None  # spin_npz: test annotations (with SMPL ground truth)
    test_img_dir: str | None = None  # spin_npz: folder of the test images
    augmentation: AugmentationConfig = field(default_factory=_prohmr_augmentation)  # ProHMR's
    augmentation_rounds: PositiveInt = 100  # training set = each image this many times, fresh draws


@dataclass
class MeshModel:
    """Encoder, flow and point head."""

    kind: str = "flow"  # "flow" (ProHMR) or "regression" (the same CNN regressing the pose)
    encoder: str = "small_cnn"  # condflow.encoders.registry: "small_cnn" (CPU), "resnet18|34|50"
    pretrained: str | None = None  # ResNet: torchvision-layout weights file (never downloaded)
    context_features: PositiveInt = 256  # small_cnn: context size C (ResNets: 512 or 2048, fixed)
    cnn_width: PositiveInt = 32  # small_cnn: channels of the first stage
    flow_blocks: PositiveInt = 4  # Glow blocks (ProHMR: 4)
    flow_hidden: PositiveInt = 1024  # coupling-net width (ProHMR: 1024)
    flow_residual_blocks: NonNegativeInt = 2  # residual blocks per coupling net (ProHMR: 2)
    flow_dropout: Probability = 0.0  # dropout in the coupling nets
    # coupling nets (and the regression pose MLP): "batch" or true (ProHMR), "layer", "none"/false
    batch_norm: bool | Norm = True
    point_hidden: PositiveInt = 1024  # hidden width of the MLP h(c) → (β, camera)
    focal_length: PositiveFloat = 5000.0  # px at 224 px crops (ProHMR), scaled to data.res
    # "prohmr": layout of ProHMR's checkpoints (import-prohmr)
    flow_convention: Literal["condflow", "prohmr"] = "condflow"
    conditional_volume: bool = False  # per-block c-dependent scale (ProHMR: false)
    volume_hidden: PositiveInt = 128  # width of the conditional-volume nets


@dataclass
class MeshEval:
    """Min-of-n for ``num_samples`` (the paper's "min" is min-of-4096) and the uncertainty
    metrics of :mod:`condflow.tasks.evaluation` from the first ``uncertainty_samples``."""

    num_samples: list[PositiveInt] = field(default_factory=lambda: [1, 5, 10, 25, 100, 4096])
    batch_size: PositiveInt = 50  # images per evaluation batch
    uncertainty_samples: PositiveInt = 100  # samples giving the spread and the calibration
    sample_chunk: PositiveInt = 64  # samples per image drawn and scored at once
    picture_examples: NonNegativeInt = 4  # test images in the PNG
    picture_samples: NonNegativeInt = 3  # samples drawn per picture row


#: Both mesh heads (flow and regression): SMPL keypoints and the crop size.
_MeshHead = ProHMRHead | ProHMRRegressionHead


def _targets(model: Head, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
    """The true rotation matrices ``[B, 24, 3, 3]`` and J14 joints ``[B, 14, 3]`` (mm)."""
    rotmat = gt_rotmat(batch)
    return rotmat, j14(cast(_MeshHead, model).keypoints(rotmat, batch["betas"])[1])


def _j14(prediction: Prediction) -> Tensor:
    """The J14 joints ``[B, n, 14, 3]`` (mm, mid-hip at the origin) of a mesh prediction."""
    return j14(cast(ProHMRPrediction, prediction).eval_joints)


#: A mesh run's config, its sections typed.
MeshConfig = Config[MeshData, MeshModel, MeshLoss, MeshEval]


class MeshTask(Task[MeshHead]):
    cfg: MeshConfig
    name = "mesh"
    fast_dev_run = (
        "data.train_size=16",
        "data.test_size=8",
        "data.augmentation_rounds=1",
        "loss.mocap_size=64",
        "eval.num_samples=[2]",
        "eval.batch_size=8",
        "eval.picture_examples=1",
        "eval.picture_samples=1",
    )
    data_config = MeshData
    model_config = MeshModel
    loss_config = MeshLoss
    eval_config = MeshEval

    def __init__(self, cfg: MeshConfig) -> None:
        super().__init__(cfg)
        self._datasets: tuple[Dataset, Dataset] | None = None
        self._mean: tuple[Tensor, Tensor] | None = None

    # -- data -----------------------------------------------------------------------------
    def datasets(self) -> tuple[Dataset, Dataset]:
        if self._datasets is None:
            self._datasets = self._build_datasets()
        return self._datasets

    def _build_datasets(self) -> tuple[Dataset, Dataset]:
        d: MeshData = self.cfg.data
        if d.source == "synthetic":
            base = {**vars(d.synthetic), "res": d.res}
            train_set = synthetic_image_set(
                SyntheticImageConfig(**{**base, "size": d.train_size, "seed": self.cfg.seed}),
                d.body_model,
            )
            test_set = synthetic_image_set(
                SyntheticImageConfig(**{**base, "size": d.test_size, "seed": self.cfg.seed + 1000,
                                        "two_d_only": 0.0}),
                d.body_model,
            )
            paths = (train_set.npz, train_set.img_dir, test_set.npz, test_set.img_dir)
        elif d.source == "spin_npz":
            keys = ("train_npz", "train_img_dir", "test_npz", "test_img_dir")
            missing = [k for k in keys if getattr(d, k) is None]
            if missing:
                raise ValueError(f"data: source 'spin_npz' needs {missing}")
            paths = tuple(getattr(d, k) for k in keys)
        else:
            raise ValueError(f"data.source: expected 'synthetic' or 'spin_npz', got {d.source!r}")
        train = ImageDataset(paths[0], paths[1], layout="spin", train=True, res=d.res,
                             augmentation=d.augmentation, seed=self.cfg.seed)
        test = ImageDataset(paths[2], paths[3], layout="spin", train=False, res=d.res)
        return AugmentationRounds(train, d.augmentation_rounds), test

    # -- model and objective --------------------------------------------------------------
    def build_model(self, train_data: Dataset | None = None) -> MeshHead:
        m: MeshModel = self.cfg.model
        encoder = build_image_encoder(m.encoder, ImageEncoderSettings(
            context_features=m.context_features, width=m.cnn_width, pretrained=m.pretrained))
        res = self.cfg.data.res
        if m.kind not in ("flow", "regression"):
            raise ValueError(f"model.kind: expected 'flow' or 'regression', got {m.kind!r}")
        # The regression baseline's pose MLP has the coupling nets' shape (same budget).
        net = CouplingNet(hidden_features=m.flow_hidden, num_residual_blocks=m.flow_residual_blocks,
                          dropout=m.flow_dropout, batch_norm=m.batch_norm)
        shared: dict[str, Any] = {
            "point_hidden": m.point_hidden,
            "img_res": res,
            "focal_length": m.focal_length * res / 224.0,
        }
        body = BodyModel(self.cfg.data.body_model)
        if m.kind == "regression":
            return ProHMRRegressionHead(encoder, body, pose_net=net, **shared)
        return ProHMRHead(
            encoder,
            body,
            num_blocks=m.flow_blocks,
            coupling_net=net,
            **shared,
            flow_convention=m.flow_convention,
            conditional_volume=m.conditional_volume,
            volume_hidden=m.volume_hidden,
        )

    def objective(self, model: MeshHead) -> MeshObjective:
        return MeshObjective(model, self.cfg.loss, self.cfg.seed)

    # -- evaluation -----------------------------------------------------------------------
    def mean_pose(self) -> tuple[Tensor, Tensor]:
        """Mean training body pose ``[23, 3, 3]`` (per-joint chordal mean) and shape ``[10]``,
        over the training examples with SMPL ground truth."""
        if self._mean is None:
            train = self.datasets()[0]
            # Known by construction: _build_datasets wraps an ImageDataset.
            train = cast(ImageDataset,
                         train.dataset if isinstance(train, AugmentationRounds) else train)
            self._mean = mean_smpl_body(train)
        return self._mean

    def evaluate(self, model: MeshHead, data: Dataset, device: torch.device) -> dict[str, Any]:
        """Mode and min-of-n MPJPE / PA-MPJPE (mm) on the 14 LSP joints, the test NLL (nats,
        6D pose features) and the uncertainty metrics
        (:func:`~condflow.tasks.evaluation.evaluate_head`; the regression baseline,
        ``model.kind: regression``, gets the deterministic metrics only), plus the terms of
        :meth:`extra_terms`."""
        measurement = Measurement("mesh", "img", _targets, _j14, root_index=None,
                                  extra_terms=self.extra_terms)
        return evaluate_head(model, data, device, measurement, self.cfg.eval,
                             self.cfg.seed)

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
        e: MeshEval = self.cfg.eval
        size = len(cast(Sized, data))  # the datasets of datasets() are map-style, sized
        items = [data[i] for i in range(min(e.picture_examples, size))]
        batch = to_device(torch.utils.data.default_collate(items), device)
        plot_mesh_predictions(
            model, batch["img"], path, num_samples=e.picture_samples, seed=self.cfg.seed,
            gt_rotmat=gt_rotmat(batch), gt_betas=batch["betas"],
        )

    @staticmethod
    def table(metrics: dict[str, Any], num_samples: list[int]) -> str:
        return mesh_table(metrics, num_samples)


__all__ = ["MeshConfig", "MeshData", "MeshEval", "MeshModel", "MeshTask"]
