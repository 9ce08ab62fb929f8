"""2D→3D lifting: MLP lifter → c → conditional Glow over root-relative 3D joints.

Trained with L_nll + L_mode (:class:`condflow.losses.lifting.LiftingObjective`); the
regression baseline (``model.kind: regression``) is the same lifter with a direct 3D output
trained with L_mode alone, on the same data and budget.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, cast

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from condflow._checks import NonNegativeInt, PositiveInt, Probability
from condflow._norms import Norm
from condflow.bijectors import CouplingNet
from condflow.body.model import BodyModel
from condflow.config import Config
from condflow.data.h36m import h36m_lifting_tensors
from condflow.data.synthetic_lifting import (
    LiftingSetConfig,
    TensorDictDataset,
    cached_lifting_set,
)
from condflow.encoders.mlp_lifter import MLPLifter
from condflow.heads.base import Head
from condflow.heads.skeleton import SkeletonHead, SkeletonRegressionHead
from condflow.losses.lifting import LiftingLoss, LiftingObjective
from condflow.spaces.skeleton import H36M_17, SkeletonSpace
from condflow.tasks.base import Task, to_device
from condflow.tasks.evaluation import Measurement, evaluate_head, lifting_table
from condflow.viz.skeleton import plot_lifting

__all__ = ["LiftingConfig", "LiftingData", "LiftingEval", "LiftingModel", "LiftingTask"]


@dataclass
class LiftingData:
    """Where lifting data comes from."""

    source: Literal["synthetic", "h36m"] = "synthetic"
    train_size: PositiveInt = 50000  # synthetic: training examples
    test_size: PositiveInt = 2000  # synthetic: test examples (drawn with seed + 1000)
    synthetic: LiftingSetConfig = field(default_factory=LiftingSetConfig)  # size/seed ignored
    body_model: str | None = None  # SMPL file/folder; None: $CONDFLOW_SMPL_PATH or synthetic
    h36m_3d: str | None = None  # h36m: data_3d_h36m.npz
    h36m_2d: str | None = None  # h36m: data_2d_h36m_<detector>.npz
    h36m_cameras: str | None = None  # h36m: camera file (see condflow.data.h36m)
    h36m_stride: PositiveInt = 1  # h36m: keep every k-th frame
    h36m_train_subjects: list[str] = field(default_factory=lambda: ["S1", "S5", "S6", "S7", "S8"])
    h36m_test_subjects: list[str] = field(default_factory=lambda: ["S9", "S11"])


@dataclass
class LiftingModel:
    """The lifter (encoder) and the flow over the skeleton."""

    kind: Literal["flow", "regression"] = "flow"  # probabilistic, or the deterministic baseline
    use_confidence: bool = True  # feed (x, y, confidence) rather than (x, y)
    lifter_hidden: PositiveInt = 1024
    lifter_blocks: NonNegativeInt = 2
    lifter_dropout: Probability = 0.0  # dropout noise in c widens the density a flow learns
    flow_blocks: PositiveInt = 4
    flow_hidden: PositiveInt = 256  # CPU default; the paper-sized flow uses 1024 (paper.yaml)
    flow_residual_blocks: NonNegativeInt = 2
    flow_dropout: Probability = 0.0
    # lifter and coupling nets: "batch" or true (batch norm), "layer" (LayerNorm) or "none"/false
    batch_norm: bool | Norm = True
    conditional_volume: bool = False  # per-block c-dependent scale: log p(mode | c) per input
    volume_hidden: int = 128  # width of the conditional-volume nets


@dataclass
class LiftingEval:
    """Min-of-n for ``num_samples`` (the paper's "min" is min-of-4096), and the uncertainty
    metrics of :mod:`condflow.tasks.evaluation` from the first ``uncertainty_samples``."""

    num_samples: list[PositiveInt] = field(default_factory=lambda: [1, 5, 10, 25, 100, 4096])
    batch_size: PositiveInt = 250
    picture_examples: NonNegativeInt = 4
    uncertainty_samples: PositiveInt = 100  # samples giving the spread and the calibration
    sample_chunk: PositiveInt = 64  # samples per example drawn and scored at once


def _targets(model: Head, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
    return batch["joints_3d"], batch["joints_3d"]


#: The 17 root-relative joints; the root is at the origin in every sample, so the coverage
#: leaves it out.
_MEASUREMENT = Measurement("lifting", "keypoints_2d", _targets, root_index=0,
                           region_joints=range(1, 17))


#: A lifting run's config, its sections typed.
LiftingConfig = Config[LiftingData, LiftingModel, LiftingLoss, LiftingEval]


class LiftingTask(Task[Head]):
    cfg: LiftingConfig
    name = "lifting"
    fast_dev_run = (
        "data.train_size=256",
        "data.test_size=32",
        "eval.num_samples=[1, 5]",
        "eval.picture_examples=2",
    )
    data_config = LiftingData
    model_config = LiftingModel
    loss_config = LiftingLoss
    eval_config = LiftingEval

    def datasets(self) -> tuple[Dataset, Dataset]:
        d: LiftingData = self.cfg.data
        if d.source == "synthetic":
            body = BodyModel(d.body_model)

            def make(size: int, seed: int) -> TensorDictDataset:
                gen = LiftingSetConfig(**{**vars(d.synthetic), "size": size, "seed": seed})
                return TensorDictDataset(cached_lifting_set(gen, body))

            return make(d.train_size, self.cfg.seed), make(d.test_size, self.cfg.seed + 1000)
        if d.source == "h36m":
            return self._h36m()
        raise ValueError(f"data.source: expected 'synthetic' or 'h36m', got {d.source!r}")

    def _h36m(self) -> tuple[Dataset, Dataset]:
        d: LiftingData = self.cfg.data
        poses_3d, keypoints_2d, cameras = d.h36m_3d, d.h36m_2d, d.h36m_cameras
        if poses_3d is None or keypoints_2d is None or cameras is None:
            missing = [k for k in ("h36m_3d", "h36m_2d", "h36m_cameras") if getattr(d, k) is None]
            raise ValueError(f"data: source 'h36m' needs {missing}")

        def split(subjects: list[str]) -> TensorDictDataset:
            return TensorDictDataset(h36m_lifting_tensors(
                poses_3d, keypoints_2d, cameras, subjects=tuple(subjects),
                stride=d.h36m_stride))

        return split(d.h36m_train_subjects), split(d.h36m_test_subjects)

    def build_model(self, train_data: Dataset | None = None) -> Head:
        m: LiftingModel = self.cfg.model
        space = SkeletonSpace(H36M_17, drop_root=True)  # targets: 16 non-root joints, d = 48
        mean = std = None
        if train_data is not None:
            # Known by construction: datasets() makes TensorDictDatasets.
            x = space.from_joints(cast(TensorDictDataset, train_data).tensors["joints_3d"])
            mean, std = x.mean(0), x.std(0).clamp_min(1.0)
        regression = m.kind == "regression"
        if m.kind not in ("flow", "regression"):
            raise ValueError(f"model.kind: expected 'flow' or 'regression', got {m.kind!r}")
        lifter = MLPLifter(
            num_joints=16,
            in_channels=3 if m.use_confidence else 2,
            hidden=m.lifter_hidden,
            num_residual_blocks=m.lifter_blocks,
            dropout=m.lifter_dropout,
            out_features=space.dim if regression else None,
            batch_norm=m.batch_norm,
        )
        encoder: nn.Module = lifter
        if not m.use_confidence:
            encoder = _LifterWithoutConfidence(_DropConfidence(), lifter)
            encoder.out_features = lifter.out_features
        if regression:
            return SkeletonRegressionHead(encoder, space, mean, std)
        return SkeletonHead(
            encoder,
            space,
            mean=mean,
            std=std,
            num_blocks=m.flow_blocks,
            coupling_net=CouplingNet(
                hidden_features=m.flow_hidden,
                num_residual_blocks=m.flow_residual_blocks,
                dropout=m.flow_dropout,
                batch_norm=m.batch_norm,
            ),
            conditional_volume=m.conditional_volume,
            volume_hidden=m.volume_hidden,
        )

    def objective(self, model: Head) -> LiftingObjective:
        return LiftingObjective(model, self.cfg.loss)

    def evaluate(self, model: Head, data: Dataset, device: torch.device) -> dict[str, Any]:
        """Mode and min-of-n MPJPE / PA-MPJPE (mm, aligned at the root), the test NLL (nats,
        joints in mm) and the uncertainty metrics (probabilistic models only): see
        :func:`~condflow.tasks.evaluation.evaluate_head`."""
        return evaluate_head(model, data, device, _MEASUREMENT, self.cfg.eval,
                             self.cfg.seed)

    def picture(self, model: Head, data: Dataset, path: str, device: torch.device) -> None:
        k = self.cfg.eval.picture_examples
        tensors = cast(TensorDictDataset, data).tensors  # datasets() makes TensorDictDatasets
        batch = to_device({key: v[:k] for key, v in tensors.items()}, device)
        plot_lifting(model, batch["keypoints_2d"], batch["joints_3d"], path, seed=self.cfg.seed)

    @staticmethod
    def table(metrics: dict[str, Any], num_samples: list[int]) -> str:
        return lifting_table(metrics, num_samples)


class _DropConfidence(nn.Module):
    def forward(self, keypoints: Tensor) -> Tensor:
        return keypoints[..., :2]


class _LifterWithoutConfidence(nn.Sequential):
    """``_DropConfidence`` then a lifter of ``[B, J, 2]``, stating the lifter's C."""

    out_features: int
