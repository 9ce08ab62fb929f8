"""Multi-view fusion with the learned prior (the paper's eq. 12) and the rotation-averaging
baseline.

N uncalibrated views of one person give contexts c₁..c_N. Each view has its own latent zₙ
(θₙ = f(zₙ; cₙ), with its own global orientation, since the cameras are unknown); the body
pose θᵇ (joints 1..23) must agree across views. Fusion minimizes

    Σₙ −log p(θₙ | cₙ) + λ Σₙ ‖Rᵇ(θₙ) − mean_m Rᵇ(θ_m)‖²_F  [+ Σₙ λ_J E_J,n + N λ_β ‖β‖²]

over the zₙ (−log p = ½‖zₙ‖² + log|det ∂f/∂z|(cₙ) for the Glow flows, the log-det constant
in zₙ), consistency measured on the body-joint rotation matrices. Views are weighed by their
densities through f: moving θₙ by δ costs about ½‖J(cₙ)⁻¹δ‖², so a view whose density is
concentrated (a small Jacobian J) holds its pose and a diffuse view yields. With ProHMR's
blocks every view has the same volume (|det J| is one number), so only the shape of the
densities can differ; with ``conditional_volume`` the volume and per-feature scale follow
each image. With keypoints, shape β is shared by the views and each view
has its own camera; without keypoints β is the mean of the point head's per-view β.

The baseline averages each body joint's per-view mode rotation: the mean matrix projected
back to SO(3) by SVD with the determinant fixed (the chordal L2 mean,
:func:`condflow.spaces.rotations.average_rotations`).

**Calibrated views of a joint-space head** (a skeleton head: native output 3D joints
``[J, 3]`` in the camera frame, root-relative). With the cameras' rotations Rₙ (world →
camera) known, every view's output is one world skeleton X seen as Rₙ X, and the consistency
can be exact (the λ → ∞ limit of eq. 12): fusion is the mode of the product of the views'
densities,

    X* = argmin_X Σₙ −log p(Rₙ X | cₙ),

found by L-BFGS from the baseline, the mean of the views' modes in the world frame,
X̄ = (1/N) Σₙ Rₙᵀ f(0; cₙ). Each view pulls X by its own density: along a view's depth axis
its density is broad and it yields to the views that see that axis across the image; with a
conditional volume, a view with occluded joints is broader still. The density is over the
joint coordinates in millimetres (Rₙ is a rotation, so its volume factor is 1).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from condflow._checks import check_tensor
from condflow.fitting.adapters import SMPLAdapter, make_adapter
from condflow.fitting.latent import frozen
from condflow.fitting.optimize import OptimizerConfig, VariableLayout, minimize
from condflow.fitting.robust import check_keypoints, keypoint_energy
from condflow.heads.base import Head, as_head
from condflow.spaces.rotations import average_rotations

__all__ = [
    "CalibratedFusionResult",
    "FusionConfig",
    "FusionResult",
    "RotationAverage",
    "average_calibrated_views",
    "fuse_calibrated_views",
    "fuse_views",
    "rotation_average_views",
]


@dataclass
class FusionConfig:
    """Weights of eq. 12 and the optimizer. ``keypoint_weight``/``sigma``/``shape_weight``
    are used only when keypoints are given (as in :class:`condflow.fitting.FitConfig`)."""

    consistency_weight: float = 100.0  # λ
    keypoint_weight: float = 1000.0  # λ_J
    sigma: float | None = 0.05
    shape_weight: float = 1.0  # λ_β
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)

    def __post_init__(self) -> None:
        for name in ("consistency_weight", "keypoint_weight", "shape_weight"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name}: expected a number >= 0, got {getattr(self, name)!r}")
        if self.sigma is not None and not self.sigma > 0:
            raise ValueError(f"sigma: expected a positive number or None, got {self.sigma!r}")


@dataclass
class FusionResult:
    """Fused estimates for ``B`` people seen in ``N`` views.

    Attributes:
        z: ``[B, N, 144]`` fitted latents; pose_6d: ``[B, N, 144]`` θₙ = f(zₙ; cₙ).
        rotmat: ``[B, N, 24, 3, 3]`` per-view rotations (joint 0: the view's orientation).
        body_pose: ``[B, 23, 3, 3]`` the consensus body pose (chordal mean over the views).
        betas: ``[B, 10]`` shared shape; cam: ``[B, N, 3]`` per-view cameras.
        neg_log_prob: ``[B, N]`` −log p(θₙ | cₙ); consistency: ``[B]`` Σₙ ‖Rᵇₙ − mean‖²;
        keypoint_energy: ``[B, N]`` (``None`` without keypoints); objective: ``[B]``;
        iterations: ``[B]``; converged: ``[B]``.
    """

    z: Tensor
    pose_6d: Tensor
    rotmat: Tensor
    body_pose: Tensor
    betas: Tensor
    cam: Tensor
    neg_log_prob: Tensor
    consistency: Tensor
    keypoint_energy: Tensor | None
    objective: Tensor
    iterations: Tensor
    converged: Tensor


def _consistency(body: Tensor) -> Tensor:
    """Σₙ ‖Rᵇₙ − mean_m Rᵇ_m‖²_F: ``[B, N, 23, 3, 3] -> [B]``."""
    return (body - body.mean(1, keepdim=True)).pow(2).sum((1, 2, 3, 4))


def _check_views(head: nn.Module, contexts: object, keypoints: object
                 ) -> tuple[SMPLAdapter, Tensor, Tensor | None]:
    adapter = make_adapter(head)
    if not isinstance(adapter, SMPLAdapter):
        raise ValueError(f"head: multi-view fusion needs a ProHMRHead, got "
                         f"{type(adapter.head).__name__}")
    contexts = check_tensor("contexts", contexts, ("B", "N", adapter.flow.context_features))
    if keypoints is None:
        return adapter, contexts.detach(), None
    b, n = contexts.shape[:2]
    kp = check_tensor("keypoints", keypoints, (b, n, adapter.num_keypoints, 3))
    kp = check_keypoints("keypoints", kp.flatten(0, 1)).reshape(kp.shape).detach()
    return adapter, contexts.detach(), kp


def fuse_views(
    head: nn.Module,
    contexts: Tensor,
    keypoints: Tensor | None = None,
    config: FusionConfig | None = None,
) -> FusionResult:
    """Multi-view fusion (eq. 12) for a ProHMR head, starting at the per-view modes (z = 0).

    Args:
        head: a ``ProHMRHead`` (or its :class:`SMPLAdapter`).
        contexts: ``[B, N, C]`` contexts of N views of each of B people.
        keypoints: optional ``[B, N, K, 3]`` observed keypoints per view (normalized crop
            coordinates, confidence last); adds the per-view reprojection terms and fits the
            shared β and per-view cameras.
        config: weights and optimizer.
    """
    config = config or FusionConfig()
    adapter, contexts, keypoints = _check_views(head, contexts, keypoints)
    b, n, c_dim = contexts.shape
    d = adapter.dim
    flat_c = contexts.reshape(b * n, c_dim)
    with frozen(adapter.head), torch.no_grad():
        betas, cam = adapter.head.point_head(flat_c)
    betas = betas.reshape(b, n, -1).mean(1)
    cam = cam.reshape(b, n, 3)
    variables = {"z": contexts.new_zeros(b, n, d)}
    if keypoints is not None:
        variables.update(betas=betas.clone(), cam=cam.clone())
    layout = VariableLayout.of(variables)

    def terms(x: Tensor, index: Tensor) -> dict[str, Tensor]:
        v = layout.unpack(x)
        m = x.shape[0]
        z = v["z"].reshape(m * n, d)
        theta, log_prob = adapter.flow.generate(z, contexts[index].reshape(m * n, c_dim))
        rot = adapter.head.space.to_rotmat(theta).reshape(m, n, 24, 3, 3)
        out = {
            "theta": theta.reshape(m, n, d),
            "rotmat": rot,
            "neg_log_prob": -log_prob.reshape(m, n),
            "prior": 0.5 * v["z"].pow(2).sum((1, 2)),
            "consistency": _consistency(rot[:, :, 1:]),
        }
        if keypoints is not None:
            bt = v["betas"][:, None].expand(m, n, -1).reshape(m * n, -1)
            proj = adapter.project(theta, {"betas": bt, "cam": v["cam"].reshape(m * n, 3)})
            e_j = keypoint_energy(proj, keypoints[index].reshape(m * n, -1, 3), config.sigma)
            out["keypoint_energy"] = e_j.reshape(m, n)
        return out

    def objective(x: Tensor, index: Tensor) -> Tensor:
        t = terms(x, index)
        total = t["prior"] + config.consistency_weight * t["consistency"]
        if keypoints is not None:
            v = layout.unpack(x)
            total = total + config.keypoint_weight * t["keypoint_energy"].sum(1)
            total = total + n * config.shape_weight * v["betas"].pow(2).sum(1)
        return total

    with frozen(adapter.head):
        result = minimize(objective, layout.pack(variables), config.optimizer)
        with torch.no_grad():
            t = terms(result.x, torch.arange(b, device=contexts.device))
    fitted = layout.unpack(result.x)
    if keypoints is not None:
        betas, cam = fitted["betas"], fitted["cam"]
    return FusionResult(
        z=fitted["z"],
        pose_6d=t["theta"],
        rotmat=t["rotmat"],
        body_pose=average_rotations(t["rotmat"][:, :, 1:].transpose(1, 2)),
        betas=betas,
        cam=cam,
        neg_log_prob=t["neg_log_prob"],
        consistency=t["consistency"],
        keypoint_energy=t.get("keypoint_energy"),
        objective=result.value,
        iterations=result.iterations,
        converged=result.converged,
    )


@dataclass
class RotationAverage:
    """The rotation-averaging baseline for ``B`` people in ``N`` views: ``rotmat
    [B, N, 24, 3, 3]`` (each view's own global orientation, the averaged body pose),
    ``body_pose [B, 23, 3, 3]``, ``betas [B, 10]`` (mean of the views' β), ``cam [B, N, 3]``."""

    rotmat: Tensor
    body_pose: Tensor
    betas: Tensor
    cam: Tensor


@torch.no_grad()
def rotation_average_views(head: nn.Module, contexts: Tensor) -> RotationAverage:
    """Average each body joint's per-view mode rotation (see the module docstring).

    Args:
        head: a ``ProHMRHead`` (or its adapter); contexts: ``[B, N, C]``.
    """
    adapter, contexts, _ = _check_views(head, contexts, None)
    b, n, c_dim = contexts.shape
    flat_c = contexts.reshape(b * n, c_dim)
    with frozen(adapter.head):
        theta = adapter.flow.mode(flat_c)
        betas, cam = adapter.head.point_head(flat_c)
    rot = adapter.head.space.to_rotmat(theta).reshape(b, n, 24, 3, 3)
    body = average_rotations(rot[:, :, 1:].transpose(1, 2))  # [B, 23, 3, 3]
    fused = torch.cat([rot[:, :, :1], body[:, None].expand(b, n, 23, 3, 3)], 2)
    return RotationAverage(fused, body, betas.reshape(b, n, -1).mean(1), cam.reshape(b, n, 3))


# ---------------------------------------------------------------------------------------------
# Calibrated views of a joint-space head


@dataclass
class CalibratedFusionResult:
    """The fused skeletons of ``B`` people seen in ``N`` calibrated views.

    Attributes:
        joints_world: ``[B, J, 3]`` X*, root-relative, world frame, millimetres.
        joints: ``[B, N, J, 3]`` Rₙ X*, each view's camera frame (what a view's metrics see).
        mean_of_modes: ``[B, J, 3]`` where the fit started, the baseline of
        :func:`average_calibrated_views` (world frame, mm).
        neg_log_prob: ``[B, N]`` −log p(Rₙ X* | cₙ), nats; objective: ``[B]`` their sum;
        iterations: ``[B]``; converged: ``[B]``.
    """

    joints_world: Tensor
    joints: Tensor
    mean_of_modes: Tensor
    neg_log_prob: Tensor
    objective: Tensor
    iterations: Tensor
    converged: Tensor


def _check_calibrated(head: nn.Module, contexts: object, rotations: object
                      ) -> tuple[Head, Tensor, Tensor]:
    head = as_head(head, "head: calibrated fusion needs a")
    shape = tuple(head.space.native_shape)
    if len(shape) != 2 or shape[1] != 3:
        raise ValueError(f"head: calibrated fusion needs a head whose native output is 3D "
                         f"joints [J, 3] in the camera frame (a skeleton head); "
                         f"{type(head).__name__}'s is {list(shape)}")
    features = head.flow.context_features if head.probabilistic else None
    contexts = check_tensor("contexts", contexts, ("B", "N", features))
    b, n = contexts.shape[:2]
    rot = check_tensor("rotations", rotations, (b, n, 3, 3)).to(contexts)
    eye = torch.eye(3, dtype=rot.dtype, device=rot.device)
    tol = 1e-4 if rot.dtype == torch.float32 else 1e-8
    if ((rot @ rot.transpose(-1, -2) - eye).abs().amax() > tol
            or (torch.linalg.det(rot) - 1).abs().amax() > tol):
        raise ValueError("rotations: expected rotation matrices (R Rᵀ = I, det R = 1), "
                         "world → camera, one per view")
    return head, contexts.detach(), rot.detach()


@torch.no_grad()
def average_calibrated_views(head: nn.Module, contexts: Tensor, rotations: Tensor) -> Tensor:
    """The baseline X̄ = (1/N) Σₙ Rₙᵀ f(0; cₙ): ``[B, J, 3]`` (mm, root-relative, world
    frame). Works for a regression head too (its prediction stands for the mode).

    Args:
        head: a head whose native output is 3D joints (a skeleton head).
        contexts: ``[B, N, C]``; rotations: ``[B, N, 3, 3]`` world → camera of each view.
    """
    return _mean_of_modes(*_check_calibrated(head, contexts, rotations))


@torch.no_grad()
def _mean_of_modes(head: Head, contexts: Tensor, rot: Tensor) -> Tensor:
    b, n, c_dim = contexts.shape
    with frozen(head):
        mode = head.mode(contexts.reshape(b * n, c_dim)).native[:, 0]
    mode = mode.reshape(b, n, *mode.shape[1:])
    return torch.einsum("bnji,bnkj->bnki", rot, mode).mean(1)


def fuse_calibrated_views(
    head: nn.Module,
    contexts: Tensor,
    rotations: Tensor,
    optimizer: OptimizerConfig | None = None,
) -> CalibratedFusionResult:
    """The mode of the product of the views' densities, X* = argmin_X Σₙ −log p(Rₙ X | cₙ)
    (see the module docstring), from :func:`average_calibrated_views`.

    Args:
        head: a probabilistic head whose native output is 3D joints (a skeleton head).
        contexts: ``[B, N, C]`` contexts of N views of each of B people.
        rotations: ``[B, N, 3, 3]`` each view's camera rotation, world → camera.
        optimizer: L-BFGS settings (default :class:`OptimizerConfig`).
    """
    head, contexts, rot = _check_calibrated(head, contexts, rotations)
    x0 = _mean_of_modes(head, contexts, rot)
    b, n, c_dim = contexts.shape
    joint_shape = x0.shape[1:]

    def per_view(x: Tensor, index: Tensor) -> tuple[Tensor, Tensor]:
        world = x.reshape(-1, *joint_shape)
        joints = torch.einsum("bnij,bkj->bnki", rot[index], world)
        log_prob = head.log_prob(joints.reshape(-1, *joint_shape),
                                 contexts[index].reshape(-1, c_dim))
        return joints, -log_prob.reshape(-1, n)

    with frozen(head):
        result = minimize(lambda x, index: per_view(x, index)[1].sum(1), x0.flatten(1),
                          optimizer)
        with torch.no_grad():
            joints, neg_log_prob = per_view(result.x, torch.arange(b, device=x0.device))
    return CalibratedFusionResult(
        joints_world=result.x.reshape(b, *joint_shape),
        joints=joints,
        mean_of_modes=x0,
        neg_log_prob=neg_log_prob,
        objective=result.value,
        iterations=result.iterations,
        converged=result.converged,
    )
