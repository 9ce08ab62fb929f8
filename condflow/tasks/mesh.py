"""Mesh recovery (ProHMR): image encoder → c → conditional Glow over the SMPL pose, with a
point head for shape and camera.

Trained with ProHMR's objective L = λ_nll L_nll + λ_exp L_exp + λ_mode L_mode + λ_orth L_orth
+ an adversarial prior, whose discriminator (and its optimizer) lives in the objective and is
updated after every step from "real" poses of the pose generator versus the flow's outputs.
``loss.use_mode_loss: false`` drops L_mode (the paper's Table 5 ablation).
``model.kind: regression`` is the deterministic baseline (the paper's Table 1 comparison):
the same encoder regressing the pose directly (:class:`ProHMRRegressionHead`), trained with
the same terms minus those that need a density (L_nll, L_exp) on the same data and budget.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from condflow._checks import (
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    Probability,
)
from condflow._progress import progress
from condflow.body.keypoints import KEYPOINT_PELVIS
from condflow.body.model import BodyModel
from condflow.body.poses import PoseGenerator
from condflow.data.image_datasets import AugmentationConfig, ImageDataset
from condflow.data.synthetic_images import SyntheticImageConfig, synthetic_image_set
from condflow.encoders.resnet import ResNetEncoder
from condflow.encoders.small_cnn import SmallCNN
from condflow.heads.prohmr import ProHMRHead, ProHMRRegressionHead
from condflow.losses.adversarial import PoseShapeDiscriminator, adversarial_discriminator_loss
from condflow.losses.prohmr import (
    ProHMRLossWeights,
    SupervisionBatch,
    SupervisionWeights,
    prohmr_loss,
)
from condflow.metrics import j14_joints as j14
from condflow.metrics import mean_pose, mpjpe, pa_mpjpe
from condflow.spaces.rotations import axis_angle_to_matrix
from condflow.spaces.smpl_pose import SMPLPoseSpace
from condflow.tasks.base import Task, to_device
from condflow.tasks.evaluation import SampleEvaluation, uncertainty_lines

SPACE = SMPLPoseSpace()


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
    encoder: str = "small_cnn"  # "small_cnn" (CPU), "resnet18", "resnet34" or "resnet50"
    pretrained: str | None = None  # ResNet: torchvision-layout weights file (never downloaded)
    context_features: PositiveInt = 256  # small_cnn: context size C (ResNets: 512 or 2048, fixed)
    cnn_width: PositiveInt = 32  # small_cnn: channels of the first stage
    flow_blocks: PositiveInt = 4  # Glow blocks (ProHMR: 4)
    flow_hidden: PositiveInt = 1024  # coupling-net width (ProHMR: 1024)
    flow_residual_blocks: NonNegativeInt = 2  # residual blocks per coupling net (ProHMR: 2)
    flow_dropout: Probability = 0.0  # dropout in the coupling nets
    batch_norm: bool = True  # batch norm in the coupling nets
    point_hidden: PositiveInt = 1024  # hidden width of the MLP h(c) → (β, camera)
    focal_length: PositiveFloat = 5000.0  # px at 224 px crops (ProHMR), scaled to data.res
    # "prohmr": layout of ProHMR's checkpoints (import-prohmr)
    flow_convention: Literal["condflow", "prohmr"] = "condflow"
    conditional_volume: bool = False  # per-block c-dependent scale (ProHMR: false)
    volume_hidden: PositiveInt = 128  # width of the conditional-volume nets


@dataclass
class MeshLoss:
    """Weights of ProHMR's objective (defaults: ProHMR's published values) and its knobs."""

    nll: NonNegativeFloat = 0.001  # λ_nll: negative log-likelihood of the ground-truth pose
    orth: NonNegativeFloat = 0.1  # λ_orth: orthonormality of the flow's 6D outputs (mode, samples)
    adversarial: NonNegativeFloat = 0.0005  # adversarial prior's weight (0: no discriminator)
    mode: SupervisionWeights = field(default_factory=SupervisionWeights)  # L_mode term weights
    exp: SupervisionWeights = field(  # L_exp term weights (ProHMR: 2D keypoints only)
        default_factory=lambda: ProHMRLossWeights().exp
    )
    use_mode_loss: bool = True  # false: drop L_mode (Table 5 ablation)
    num_samples: NonNegativeInt = 1  # samples per image for L_exp, besides the mode (ProHMR: 1)
    param_noise: NonNegativeFloat = 0.005  # std of noise on ground-truth 6D poses in L_nll (ProHMR)
    kind: Literal["l1", "l2"] = "l1"  # keypoint penalty: "l1" (ProHMR) or "l2"
    disc_lr: PositiveFloat = 1e-4  # discriminator's Adam learning rate (ProHMR)
    disc_weight_decay: NonNegativeFloat = 1e-4  # discriminator's weight decay (ProHMR)
    mocap_size: PositiveInt = 20000  # "real" poses drawn once from the pose generator for the prior


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


class AugmentationRounds(Dataset):
    """A training set seen ``rounds`` times per pass, each round with fresh augmentation.

    Item ``i`` is image ``i mod N`` augmented with the draws of round ``i // N``, so the
    augmentation depends only on the index: the same under any number of workers and after
    resuming.
    """

    def __init__(self, dataset: ImageDataset, rounds: int) -> None:
        if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 1:
            raise ValueError(f"augmentation_rounds: expected an integer >= 1, got {rounds!r}")
        self.dataset, self.rounds = dataset, rounds

    def __len__(self) -> int:
        return len(self.dataset) * self.rounds

    def __getitem__(self, index: int) -> dict[str, Any]:
        round_, image = divmod(int(index), len(self.dataset))
        self.dataset.set_epoch(round_)
        return self.dataset[image]


def gt_rotmat(batch: dict[str, Tensor]) -> Tensor:
    """Ground-truth rotations ``[B, 24, 3, 3]`` from ``global_orient [B, 3]`` and
    ``body_pose [B, 23, 3]`` (axis-angle)."""
    return axis_angle_to_matrix(torch.cat([batch["global_orient"][:, None], batch["body_pose"]], 1))


class MeshObjective(nn.Module):
    """ProHMR's objective for a :class:`ProHMRHead`, with the adversarial prior's
    discriminator and optimizer as extra state (updated in :meth:`after_step`)."""

    def __init__(self, model: ProHMRHead, loss: MeshLoss, seed: int = 0) -> None:
        super().__init__()
        self.model = model
        self.cfg = loss
        if loss.num_samples < 0:
            raise ValueError(f"loss.num_samples: expected >= 0, got {loss.num_samples}")
        if loss.kind not in ("l1", "l2"):
            raise ValueError(f"loss.kind: expected 'l1' or 'l2', got {loss.kind!r}")
        mode = loss.mode if loss.use_mode_loss else SupervisionWeights(0.0, 0.0, 0.0, 0.0)
        self.weights = ProHMRLossWeights(
            nll=loss.nll, orth=loss.orth, adversarial=loss.adversarial, mode=mode, exp=loss.exp
        )
        self.seed = seed
        device = next(model.parameters()).device
        self._fake: tuple[Tensor, Tensor] | None = None
        # The discriminator is kept outside the module tree: only its own optimizer (in
        # after_step) trains it, DDP does not synchronize it with the model, and the
        # generator loss needs no gradients for its weights.
        discriminator = None
        if loss.adversarial > 0:
            with torch.random.fork_rng(devices=[]):  # the same on every process
                torch.manual_seed(seed + 500)
                discriminator = PoseShapeDiscriminator().to(device)
            self.disc_optimizer = torch.optim.Adam(
                discriminator.parameters(), lr=loss.disc_lr, weight_decay=loss.disc_weight_decay
            )
            real = PoseGenerator(seed + 500, random_orient=False).sample(loss.mocap_size)
            self.mocap_rotmat = axis_angle_to_matrix(real.body_pose).to(device)
            self.mocap_betas = real.betas.to(device)
        object.__setattr__(self, "discriminator", discriminator)

    def _score_generated(self, rotmat: Tensor, betas: Tensor) -> Tensor:
        """Discriminator scores of generated bodies, differentiable in the inputs only."""
        disc = self.discriminator
        params = {k: v.detach() for k, v in disc.named_parameters()}
        return torch.func.functional_call(disc, params, (rotmat, betas))

    def forward(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        model, cfg = self.model, self.cfg
        images = batch["img"]
        b = images.shape[0]
        c = model.context(images)
        rotmat = gt_rotmat(batch)
        has_smpl = batch["has_smpl"] > 0
        # L_nll on the examples with a ground-truth pose only (they also initialize ActNorm).
        probabilistic = model.probabilistic
        log_prob = c.new_zeros(b) if probabilistic else None
        if probabilistic and bool(has_smpl.any()):
            x = SPACE.from_rotmat(rotmat[has_smpl])
            if model.training and cfg.param_noise > 0:
                x = x + cfg.param_noise * torch.randn_like(x)
            rows = has_smpl.nonzero()[:, 0]
            log_prob = log_prob.index_put((rows,), model.flow.log_prob(x, c[rows]))
        # The mode (z = 0) and random samples in one pass.
        if probabilistic:
            noise = torch.cat([c.new_zeros(b, 1, SPACE.dim),
                               torch.randn(b, cfg.num_samples, SPACE.dim, dtype=c.dtype,
                                           device=c.device)], 1)
            pred = model.generate(noise, c)
        else:
            pred = model.mode(c)
        disc_out = None
        if self.discriminator is not None:
            disc_out = self._score_generated(pred.rotmat[:, :, 1:], pred.betas)
            self._fake = (pred.rotmat[:, :, 1:].detach().reshape(-1, 23, 3, 3),
                          pred.betas.detach().reshape(-1, 10))
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
            pred[0].loss_inputs(),
            pred[1:].loss_inputs() if probabilistic and cfg.num_samples > 0 else None,
            log_prob=log_prob,
            pose_6d=pred.pose_6d.reshape(b, -1, 24, 6),
            disc_out=disc_out,
            weights=self.weights,
            pelvis_ids=KEYPOINT_PELVIS,
            kind=cfg.kind,
        )
        out = {"loss": terms.pop("total")}
        out.update({k: v.detach() for k, v in terms.items()})
        return out

    def after_step(self, step: int) -> None:
        """One discriminator step: mocap poses (real) against this step's predictions."""
        if self.discriminator is None or self._fake is None:
            return
        fake_rotmat, fake_betas = self._fake
        rank = dist.get_rank() if dist.is_available() and dist.is_initialized() else 0
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + 7919 * step + rank)
        idx = torch.randint(len(self.mocap_betas), (fake_betas.shape[0],), generator=gen)
        idx = idx.to(self.mocap_betas.device)
        disc, opt = self.discriminator, self.disc_optimizer
        opt.zero_grad(set_to_none=True)
        real_out = disc(self.mocap_rotmat[idx], self.mocap_betas[idx])
        fake_out = disc(fake_rotmat, fake_betas)
        loss = self.weights.adversarial * adversarial_discriminator_loss(real_out, fake_out)
        loss.backward()
        if dist.is_available() and dist.is_initialized():  # keep the replicas identical
            for p in disc.parameters():
                if p.grad is not None:
                    dist.all_reduce(p.grad)
                    p.grad /= dist.get_world_size()
        opt.step()
        self._fake = None

    def extra_state(self) -> dict[str, Any]:
        if self.discriminator is None:
            return {}
        return {"discriminator": self.discriminator.state_dict(),
                "optimizer": self.disc_optimizer.state_dict()}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        if self.discriminator is None:
            return
        if "discriminator" not in state:
            raise ValueError("checkpoint: has no discriminator state, but loss.adversarial > 0")
        self.discriminator.load_state_dict(state["discriminator"])
        self.disc_optimizer.load_state_dict(state["optimizer"])


class MeshTask(Task):
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

    def __init__(self, cfg: Any) -> None:
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
    def build_model(self, train_data: Dataset | None = None) -> nn.Module:
        m: MeshModel = self.cfg.model
        if m.encoder == "small_cnn":
            encoder: nn.Module = SmallCNN(3, m.context_features, m.cnn_width)
        elif m.encoder in ("resnet18", "resnet34", "resnet50"):
            encoder = ResNetEncoder(int(m.encoder[len("resnet"):]), m.pretrained)
        else:
            raise ValueError(
                "model.encoder: expected 'small_cnn', 'resnet18', 'resnet34' or 'resnet50', "
                f"got {m.encoder!r}"
            )
        res = self.cfg.data.res
        if m.kind not in ("flow", "regression"):
            raise ValueError(f"model.kind: expected 'flow' or 'regression', got {m.kind!r}")
        # The regression baseline's pose MLP has the coupling nets' shape (same budget).
        shared: dict[str, Any] = {
            "hidden_features": m.flow_hidden,
            "num_residual_blocks": m.flow_residual_blocks,
            "dropout": m.flow_dropout,
            "batch_norm": m.batch_norm,
            "point_hidden": m.point_hidden,
            "img_res": res,
            "focal_length": m.focal_length * res / 224.0,
        }
        body = BodyModel(self.cfg.data.body_model)
        if m.kind == "regression":
            return ProHMRRegressionHead(encoder, body, **shared)
        return ProHMRHead(
            encoder,
            body,
            num_blocks=m.flow_blocks,
            **shared,
            flow_convention=m.flow_convention,
            conditional_volume=m.conditional_volume,
            volume_hidden=m.volume_hidden,
        )

    def objective(self, model: nn.Module) -> nn.Module:
        return MeshObjective(model, self.cfg.loss, self.cfg.seed)

    # -- evaluation -----------------------------------------------------------------------
    def mean_pose(self) -> tuple[Tensor, Tensor]:
        """Mean training body pose ``[23, 3, 3]`` (per-joint chordal mean) and shape ``[10]``,
        over the training examples with SMPL ground truth."""
        if self._mean is None:
            train = self.datasets()[0]
            train = train.dataset if isinstance(train, AugmentationRounds) else train
            keep = train.has_smpl > 0
            pose = torch.as_tensor(train.pose[keep], dtype=torch.float64)
            rot, betas = mean_pose(axis_angle_to_matrix(pose[:, 3:].reshape(-1, 23, 3)),
                                   torch.as_tensor(train.betas[keep], dtype=torch.float64))
            self._mean = (rot.float(), betas.float())
        return self._mean

    @torch.no_grad()
    def evaluate(self, model: nn.Module, data: Dataset, device: torch.device) -> dict[str, Any]:
        """Mode and min-of-n MPJPE / PA-MPJPE (mm) on the 14 LSP joints, the mode's pose with
        the ground-truth shape, the mean-pose baseline (mean training body pose and shape,
        ground-truth global orientation: the best case for it), the test NLL (nats, 6D pose
        features), the mode's 2D keypoint error (pixels of the crop, visible keypoints) and
        the uncertainty metrics of :class:`SampleEvaluation`. The regression baseline
        (``model.kind: regression``) gets the deterministic metrics only."""
        e: MeshEval = self.cfg.eval
        model.eval()
        gen = torch.Generator(device=device).manual_seed(self.cfg.seed)
        mean_body, mean_betas = (t.to(device) for t in self.mean_pose())
        probabilistic = model.probabilistic
        samples_eval = SampleEvaluation(e.num_samples, e.uncertainty_samples, e.sample_chunk,
                                        root_index=None)
        sums: dict[str, float] = {}
        count = 0

        batches = DataLoader(data, batch_size=e.batch_size)
        for batch in progress(batches, desc="eval mesh", unit="batch"):
            batch = to_device(batch, device)
            b = batch["img"].shape[0]
            rotmat, betas = gt_rotmat(batch), batch["betas"]
            gt = j14(model.keypoints(rotmat, betas)[1])
            c = model.context(batch["img"])
            mode = model.mode(c)
            pred = j14(mode.eval_joints[:, 0])
            # The mode's pose with the true shape separates pose from shape errors.
            pose_only = j14(model.keypoints(mode.rotmat[:, 0], betas)[1])
            terms = {"mode/mpjpe": mpjpe(pred, gt, None), "mode/pa_mpjpe": pa_mpjpe(pred, gt),
                     "mode_gt_shape/mpjpe": mpjpe(pose_only, gt, None),
                     "mode_gt_shape/pa_mpjpe": pa_mpjpe(pose_only, gt)}
            if probabilistic:
                samples_eval.add(
                    lambda k, c=c: j14(model.sample(k, c, generator=gen).eval_joints), gt,
                    terms["mode/mpjpe"], pred, mode.log_prob[:, 0])
                terms["nll"] = -model.log_prob(rotmat, c)
            terms = {k: v.mean().item() for k, v in terms.items()}
            base_rot = torch.cat([rotmat[:, :1], mean_body.expand(b, 23, 3, 3)], 1)
            base = j14(model.keypoints(base_rot, mean_betas.expand(b, 10))[1])
            terms["mean_pose/mpjpe"] = mpjpe(base, gt, None).mean().item()
            terms["mean_pose/pa_mpjpe"] = pa_mpjpe(base, gt).mean().item()
            kp = batch["keypoints_2d"]
            err = (mode.keypoints_2d[:, 0] - kp[..., :2]).norm(dim=-1) * (model.img_res / 2)
            visible = kp[..., 2] > 0
            terms["mode/keypoints_2d_px"] = (
                ((err * visible).sum(1) / visible.sum(1).clamp_min(1)).mean().item()
            )
            for k, v in terms.items():
                sums[k] = sums.get(k, 0.0) + v * b
            count += b
        metrics: dict[str, Any] = {k: v / count for k, v in sums.items()}
        if probabilistic:
            metrics.update(samples_eval.metrics(model.flow.volume_depends_on_context))
        metrics["examples"] = count
        return metrics

    def picture(self, model: nn.Module, data: Dataset, path: str, device: torch.device) -> None:
        from condflow.viz.mesh import plot_mesh_predictions

        e: MeshEval = self.cfg.eval
        items = [data[i] for i in range(min(e.picture_examples, len(data)))]
        batch = to_device(torch.utils.data.default_collate(items), device)
        plot_mesh_predictions(
            model, batch["img"], path, num_samples=e.picture_samples, seed=self.cfg.seed,
            gt_rotmat=gt_rotmat(batch), gt_betas=batch["betas"],
        )

    @staticmethod
    def table(metrics: dict[str, Any], num_samples: list[int]) -> str:
        return table(metrics, num_samples)


def table(metrics: dict[str, Any], num_samples: list[int]) -> str:
    """A markdown table: rows mode (and its pose with the true shape), min-of-n and the
    mean-pose baseline; columns MPJPE and PA-MPJPE on the 14 LSP joints (mm)."""
    rows = ["| prediction | MPJPE (mm) | PA-MPJPE (mm) |", "|---|---:|---:|"]
    labels = {"mode": "mode", "mode_gt_shape": "mode pose with GT shape",
              "mean_pose": "mean-pose baseline (GT orientation)"}
    names = ["mode", "mode_gt_shape"] + [f"min_of_{n}" for n in num_samples] + ["mean_pose"]
    for name in names:
        if f"{name}/mpjpe" in metrics:
            label = labels.get(name, name.replace("_", "-"))
            rows.append(
                f"| {label} | {metrics[f'{name}/mpjpe']:.1f} | {metrics[f'{name}/pa_mpjpe']:.1f} |"
            )
    notes = []
    if "nll" in metrics and math.isfinite(metrics["nll"]):
        notes.append(f"test NLL {metrics['nll']:.1f} nats (144-d 6D pose)")
    if "mode/keypoints_2d_px" in metrics:
        notes.append(f"mode 2D keypoint error {metrics['mode/keypoints_2d_px']:.2f} px")
    if "examples" in metrics:
        notes.append(f"{metrics['examples']} test images")
    if notes:
        rows.append("\n" + ", ".join(notes))
    rows += uncertainty_lines(metrics)
    return "\n".join(rows)


__all__ = [
    "AugmentationRounds",
    "MeshData",
    "MeshEval",
    "MeshLoss",
    "MeshModel",
    "MeshObjective",
    "MeshTask",
    "gt_rotmat",
    "table",
]
