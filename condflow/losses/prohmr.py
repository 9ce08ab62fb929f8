"""ProHMR's training objective: L_nll + L_mode + L_exp + L_orth (+ adversarial prior).

* L_mode supervises the flow's mode (z = 0), a prediction with one sample (n = 1);
* L_exp supervises random samples: the same terms averaged over n >= 1 samples per example.

Both are sums of weighted terms (2D keypoints, root-aligned 3D keypoints, rotation matrices,
shape), each masked by the availability of its supervision. Terms are averaged over the whole
batch: unavailable examples count as zero, as in ProHMR.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields

import torch
from torch import Tensor

from condflow._checks import NonNegativeFloat, check_tensor
from condflow.losses.adversarial import adversarial_generator_loss
from condflow.losses.keypoints import keypoint_2d_loss, keypoint_3d_loss
from condflow.losses.likelihood import nll_loss
from condflow.losses.orth import orthonormality_loss
from condflow.losses.parameters import betas_loss, rotmat_loss

__all__ = [
    "BodyPrediction",
    "ProHMRLossWeights",
    "SupervisionBatch",
    "SupervisionWeights",
    "expectation_loss",
    "mode_loss",
    "prohmr_loss",
]

TERMS = ("keypoints_2d", "keypoints_3d", "rotmat", "betas")


@dataclass
class SupervisionWeights:
    """Weights of the supervision terms of L_mode or L_exp (defaults: ProHMR's L_mode).

    ``rotmat`` weighs the squared error of all joint rotation matrices (global orientation and
    body pose share ProHMR's weight 0.001).
    """

    keypoints_2d: float = 0.01
    keypoints_3d: float = 0.05
    rotmat: float = 0.001
    betas: float = 0.0005

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise ValueError(f"{f.name}: expected a non-negative number, got {value!r}")


@dataclass
class ProHMRLossWeights:
    """Weights of the full ProHMR objective (defaults: ProHMR's published configuration)."""

    nll: NonNegativeFloat = 0.001  # λ_nll: negative log-likelihood of the ground-truth pose
    orth: NonNegativeFloat = 0.1  # λ_orth: orthonormality of the flow's 6D outputs
    adversarial: NonNegativeFloat = 0.0005  # adversarial prior's weight (0: no discriminator)
    mode: SupervisionWeights = field(default_factory=SupervisionWeights)  # L_mode term weights
    exp: SupervisionWeights = field(  # L_exp term weights (ProHMR: 2D keypoints only)
        default_factory=lambda: SupervisionWeights(
            keypoints_2d=0.001, keypoints_3d=0.0, rotmat=0.0, betas=0.0
        )
    )

    def __post_init__(self) -> None:
        for name in ("nll", "orth", "adversarial"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise ValueError(f"{name}: expected a non-negative number, got {value!r}")
        for name in ("mode", "exp"):
            if not isinstance(getattr(self, name), SupervisionWeights):
                raise ValueError(f"{name}: expected SupervisionWeights")


@dataclass
class SupervisionBatch:
    """Ground truth of a batch; any field may be ``None`` when no example has it.

    Attributes:
        keypoints_2d: ``[B, K2, 3]`` (x, y, confidence), normalised crop coordinates.
        keypoints_3d: ``[B, K3, 4]`` (x, y, z, confidence).
        rotmat: ``[B, J, 3, 3]`` joint rotations (SMPL: J = 24, joint 0 global orientation).
        betas: ``[B, 10]`` shape coefficients.
        has_3d: ``[B]`` availability of ``keypoints_3d`` (``None``: all available).
        has_smpl: ``[B]`` availability of ``rotmat`` and ``betas`` (``None``: all available).

    Construction checks shapes, the common batch size and finiteness.
    """

    keypoints_2d: Tensor | None = None
    keypoints_3d: Tensor | None = None
    rotmat: Tensor | None = None
    betas: Tensor | None = None
    has_3d: Tensor | None = None
    has_smpl: Tensor | None = None

    def __post_init__(self) -> None:
        shapes: dict[str, list[int | str | None]] = {
            "keypoints_2d": ["B", None, 3],
            "keypoints_3d": ["B", None, 4],
            "rotmat": ["B", None, 3, 3],
            "betas": ["B", None],
            "has_3d": ["B"],
            "has_smpl": ["B"],
        }
        sizes = {}
        for name, shape in shapes.items():
            value = getattr(self, name)
            if value is None:
                continue
            is_flag = name.startswith("has_")
            check_tensor(name, value, shape, floating=not is_flag, finite=not is_flag)
            sizes[name] = value.shape[0]
        if not sizes:
            raise ValueError("SupervisionBatch: expected at least one ground-truth field")
        if len(set(sizes.values())) > 1:
            raise ValueError(f"SupervisionBatch: batch sizes differ between fields: {sizes}")

    @property
    def batch_size(self) -> int:
        """Number of examples B."""
        for f in fields(self):
            value = getattr(self, f.name)
            if value is not None:
                return int(value.shape[0])
        raise AssertionError("unreachable: validated in __post_init__")


@dataclass
class BodyPrediction:
    """Predictions with a sample axis ``n`` (n = 1 for the mode); fields may be ``None``.

    Attributes:
        keypoints_2d: ``[B, n, K2, 2]`` projected keypoints, normalised crop coordinates.
        keypoints_3d: ``[B, n, K3, 3]`` 3D keypoints.
        rotmat: ``[B, n, J, 3, 3]`` joint rotations.
        betas: ``[B, n, 10]`` shape coefficients.
    """

    keypoints_2d: Tensor | None = None
    keypoints_3d: Tensor | None = None
    rotmat: Tensor | None = None
    betas: Tensor | None = None

    def num_samples(self) -> int:
        """The common sample-axis size n (``ValueError`` if fields disagree or none is set)."""
        ns = {
            f.name: getattr(self, f.name).shape[1]
            for f in fields(self)
            if isinstance(getattr(self, f.name), Tensor) and getattr(self, f.name).dim() >= 2
        }
        if not ns:
            raise ValueError("pred: expected at least one predicted field with shape [B, n, ...]")
        if len(set(ns.values())) > 1:
            raise ValueError(f"pred: sample-axis sizes differ between fields: {ns}")
        return next(iter(ns.values()))


def _supervision_terms(
    pred: BodyPrediction,
    batch: SupervisionBatch,
    weights: SupervisionWeights,
    pelvis_ids: int | Sequence[int] | None,
    kind: str,
) -> dict[str, Tensor]:
    if not isinstance(pred, BodyPrediction):
        raise ValueError(f"pred: expected a BodyPrediction, got {type(pred).__name__}")
    if not isinstance(batch, SupervisionBatch):
        raise ValueError(f"batch: expected a SupervisionBatch, got {type(batch).__name__}")
    if not isinstance(weights, SupervisionWeights):
        raise ValueError(f"weights: expected SupervisionWeights, got {type(weights).__name__}")
    pred.num_samples()
    ref = next(getattr(pred, f.name) for f in fields(pred) if getattr(pred, f.name) is not None)
    zero = ref.new_zeros(())
    terms: dict[str, Tensor] = {}
    total = zero
    for name in TERMS:  # the same names in the prediction and the ground truth
        p, gt = getattr(pred, name), getattr(batch, name)
        weight = float(getattr(weights, name))
        if gt is None or (p is None and weight == 0.0):
            terms[name] = zero
            continue
        if p is None:
            raise ValueError(f"pred.{name}: required because weights.{name} is {weight}")
        if p.dim() < 2 or p.shape[0] != batch.batch_size:
            raise ValueError(
                f"pred.{name}: expected shape [{batch.batch_size}, n, ...], "
                f"got {list(p.shape)}"
            )
        if name == "keypoints_2d":
            per_example = keypoint_2d_loss(p, gt, kind=kind)
        elif name == "keypoints_3d":
            per_example = keypoint_3d_loss(p, gt, pelvis_ids, mask=batch.has_3d, kind=kind)
        elif name == "rotmat":
            per_example = rotmat_loss(p, gt, mask=batch.has_smpl)
        else:
            per_example = betas_loss(p, gt, mask=batch.has_smpl)
        if per_example.dim() != 2:
            raise ValueError(f"pred.{name}: expected a sample axis, got {list(p.shape)}")
        terms[name] = per_example.mean()
        total = total + weight * terms[name]
    terms["total"] = total
    return terms


def mode_loss(
    pred: BodyPrediction,
    batch: SupervisionBatch,
    weights: SupervisionWeights | None = None,
    *,
    pelvis_ids: int | Sequence[int] | None = 0,
    kind: str = "l1",
) -> dict[str, Tensor]:
    """L_mode: supervision of the mode prediction (sample axis n = 1).

    Args:
        pred: the mode's ``BodyPrediction`` (every field ``[B, 1, ...]``).
        batch: ground truth with availability flags.
        weights: term weights (default: ProHMR's L_mode weights).
        pelvis_ids: pelvis joint(s) of the 3D keypoints for root alignment.
        kind: keypoint penalty, ``"l1"`` or ``"l2"``.

    Returns:
        ``{"keypoints_2d", "keypoints_3d", "rotmat", "betas"}`` unweighted batch means (0 where
        there is no ground truth) and ``"total"``, their weighted sum.
    """
    if isinstance(pred, BodyPrediction) and pred.num_samples() != 1:
        raise ValueError(f"pred: the mode has one sample, got n = {pred.num_samples()}")
    return _supervision_terms(pred, batch, weights or SupervisionWeights(), pelvis_ids, kind)


def expectation_loss(
    pred_samples: BodyPrediction,
    batch: SupervisionBatch,
    weights: SupervisionWeights | None = None,
    *,
    pelvis_ids: int | Sequence[int] | None = 0,
    kind: str = "l1",
) -> dict[str, Tensor]:
    """L_exp: the supervision terms averaged over n >= 1 samples per example.

    Same arguments and return value as ``mode_loss``; ``weights`` defaults to ProHMR's L_exp
    weights (2D keypoints only).
    """
    if weights is None:
        weights = ProHMRLossWeights().exp
    return _supervision_terms(pred_samples, batch, weights, pelvis_ids, kind)


def prohmr_loss(
    batch: SupervisionBatch,
    mode: BodyPrediction,
    samples: BodyPrediction | None = None,
    *,
    log_prob: Tensor | None = None,
    pose_6d: Tensor | None = None,
    disc_out: Tensor | None = None,
    weights: ProHMRLossWeights | None = None,
    pelvis_ids: int | Sequence[int] | None = 0,
    kind: str = "l1",
) -> dict[str, Tensor]:
    """The full ProHMR objective with every term for logging.

    Args:
        batch: ground truth with availability flags.
        mode: prediction of the mode (n = 1).
        samples: predictions of random samples (n >= 1), or ``None`` to skip L_exp.
        log_prob: ``[B]`` flow log-density of the ground-truth pose for every example; L_nll
            averages it over the examples with ``batch.has_smpl`` (other entries are ignored).
        pose_6d: ``[..., 6]`` the flow's raw 6D outputs (mode and samples) for L_orth.
        disc_out: ``[..., 25]`` discriminator scores of generated poses (adversarial prior).
        weights: term weights (default: ProHMR's configuration).
        pelvis_ids, kind: as in ``mode_loss``.

    Returns:
        ``"nll"``, ``"orth"``, ``"adversarial"``, ``"mode/<term>"``, ``"exp/<term>"`` (all
        unweighted; 0 when not given) and ``"total"``, the weighted sum.
    """
    weights = weights or ProHMRLossWeights()
    if not isinstance(weights, ProHMRLossWeights):
        raise ValueError(f"weights: expected ProHMRLossWeights, got {type(weights).__name__}")
    out: dict[str, Tensor] = {}
    mode_terms = mode_loss(mode, batch, weights.mode, pelvis_ids=pelvis_ids, kind=kind)
    total = mode_terms.pop("total")
    zero = torch.zeros_like(total)
    out.update({f"mode/{k}": v for k, v in mode_terms.items()})
    if samples is not None:
        exp_terms = expectation_loss(samples, batch, weights.exp, pelvis_ids=pelvis_ids, kind=kind)
        total = total + exp_terms.pop("total")
    else:
        exp_terms = dict.fromkeys(TERMS, zero)
    out.update({f"exp/{k}": v for k, v in exp_terms.items()})
    out["nll"] = nll_loss(log_prob, batch.has_smpl) if log_prob is not None else zero
    out["orth"] = orthonormality_loss(pose_6d) if pose_6d is not None else zero
    out["adversarial"] = adversarial_generator_loss(disc_out) if disc_out is not None else zero
    total = (
        total
        + weights.nll * out["nll"]
        + weights.orth * out["orth"]
        + weights.adversarial * out["adversarial"]
    )
    out["total"] = total
    return out
