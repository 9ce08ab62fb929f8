"""Generic-prior baselines: keypoint fitting directly in the output space, SMPLify-style.

Instead of the learned, image-conditioned prior (fitting z with θ = f(z; c)), θ itself is
optimized under a prior that ignores the image, starting from the same regression (the mode
f(0; c)):

* SMPL head (SMPLify, Bogo et al. 2016): global orientation (6D) and body pose (axis-angle
  ``[23, 3]``), shape β and camera; energy
  ``λ_J E_J + w_θ·(−log GMM(θ_b)) + w_bend·Σ exp(±angle)² + λ_β‖β‖²``, the bending term
  penalizing elbows and knees bent the unnatural way.
* Skeleton head: the skeleton features (root-relative joints) and the root translation;
  energy ``λ_J E_J + w·(−log GMM(x))`` with a Gaussian (mixture) fitted to training skeletons
  (features in metres).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from condflow.fitting.adapters import HeadAdapter, SkeletonAdapter, SMPLAdapter, make_adapter
from condflow.fitting.gmm_prior import GaussianMixture
from condflow.fitting.latent import (
    FitCallback,
    FitConfig,
    KeypointFit,
    ThetaFn,
    check_fit_inputs,
    frozen,
    run_fit,
    summarize_fit,
)
from condflow.spaces.rotations import (
    axis_angle_to_matrix,
    matrix_to_axis_angle,
    matrix_to_rotation_6d,
    rotation_6d_to_matrix,
)

__all__ = ["BENDING_TERMS", "GenericFitConfig", "bending_energy", "fit_keypoints_generic"]

#: (body-pose joint index, axis-angle component, sign): SMPLify's bending penalty on the left
#: elbow, right elbow, left knee and right knee; exp(sign · angle)² grows when the joint bends
#: the unnatural way (elbows about y, knees about x).
BENDING_TERMS: tuple[tuple[int, int, float], ...] = (
    (17, 1, 1.0), (18, 1, -1.0), (3, 0, -1.0), (4, 0, -1.0),
)


@dataclass
class GenericFitConfig(FitConfig):
    """:class:`FitConfig` for the generic-prior baselines: ``prior_weight`` weights
    −log GMM; ``bend_weight`` the bending penalty (SMPL only)."""

    bend_weight: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.bend_weight >= 0:
            raise ValueError(f"bend_weight: expected a number >= 0, got {self.bend_weight!r}")


def bending_energy(body_pose: Tensor) -> Tensor:
    """Σ exp(sign · angle)² over elbows and knees: axis-angle ``[B, 23, 3]`` → ``[B]``."""
    joint, comp, sign = zip(*BENDING_TERMS, strict=True)
    angles = body_pose[:, list(joint), list(comp)] * body_pose.new_tensor(sign)
    return angles.exp().pow(2).sum(-1)


def _smpl_problem(adapter: SMPLAdapter, theta0: Tensor, prior: GaussianMixture
                  ) -> tuple[dict[str, Tensor], ThetaFn]:
    rot0 = adapter.head.space.to_rotmat(theta0)  # [B, 24, 3, 3]
    variables = {
        "global_orient": matrix_to_rotation_6d(rot0[:, 0]),
        "body_pose": matrix_to_axis_angle(rot0[:, 1:]),
    }

    def theta_fn(v: dict[str, Tensor], context: Tensor) -> tuple[Tensor, Tensor]:
        rot = torch.cat([rotation_6d_to_matrix(v["global_orient"])[:, None],
                         axis_angle_to_matrix(v["body_pose"])], 1)
        theta = adapter.head.space.from_rotmat(rot)
        return theta, prior(v["body_pose"].reshape(-1, 69))

    return variables, theta_fn


def _skeleton_problem(theta0: Tensor, prior: GaussianMixture
                      ) -> tuple[dict[str, Tensor], ThetaFn]:
    # Optimized in metres: millimetre-sized variables would be badly scaled against the
    # translation's and stall the line search in float32.
    def theta_fn(v: dict[str, Tensor], context: Tensor) -> tuple[Tensor, Tensor]:
        return 1000.0 * v["skeleton_m"], prior(v["skeleton_m"])

    return {"skeleton_m": theta0 / 1000.0}, theta_fn


def fit_keypoints_generic(
    head: nn.Module | HeadAdapter,
    context: Tensor,
    keypoints: Tensor,
    prior: GaussianMixture,
    config: GenericFitConfig | None = None,
    callback: FitCallback | None = None,
) -> KeypointFit:
    """Fit θ directly under a generic prior, from the mode f(0; c) (see the module docstring).

    Args:
        head: a ``ProHMRHead``/``SkeletonHead`` or its adapter.
        context: ``[B, C]``; keypoints: ``[B, K, 3]`` as in
            :func:`condflow.fitting.latent.fit_keypoints`.
        prior: SMPL: a GMM over the 69-d body pose axis-angle
            (:func:`condflow.fitting.gmm_prior.pose_prior`); skeleton: a GMM over the skeleton
            features in metres (:func:`condflow.fitting.gmm_prior.skeleton_prior`).
        config: weights and optimizer.
        callback: called with a :class:`~condflow.fitting.latent.FitProgress` after every
            optimizer iteration.

    Returns:
        :class:`KeypointFit` with ``z = None``; ``prior_energy`` is −log GMM and
        ``neg_log_prob`` −log p(θ | c) under the head's (learned) flow, for comparison.
    """
    config = config or GenericFitConfig()
    for name, off in (("flow_dtype", None), ("jacobian_dtype", None), ("cache_context", False),
                      ("frozen_flow", False)):
        if getattr(config, name) != off:
            raise ValueError(f"config.{name}: the generic-prior fit runs no flow; expected "
                             f"{off!r}, got {getattr(config, name)!r}")
    adapter = make_adapter(head)
    context, keypoints = check_fit_inputs(adapter, context, keypoints)
    with frozen(adapter.head), torch.no_grad():
        theta0 = adapter.flow.mode(context)
        extras = adapter.initial_extras(theta0, context, keypoints)
    if not isinstance(adapter, SMPLAdapter | SkeletonAdapter):
        raise ValueError(f"head: no generic-prior fit for {type(adapter).__name__}")
    _check_prior(prior, 69 if isinstance(adapter, SMPLAdapter) else adapter.dim)
    prior = prior.to(dtype=context.dtype, device=context.device)
    extra_energy = None
    if isinstance(adapter, SMPLAdapter):
        variables, theta_fn = _smpl_problem(adapter, theta0, prior)

        def extra_energy(v: dict[str, Tensor]) -> Tensor:
            return config.bend_weight * bending_energy(v["body_pose"])
    else:
        variables, theta_fn = _skeleton_problem(theta0, prior)
    with frozen(adapter.head):
        variables, extras, value, iters, conv = run_fit(
            adapter, context, keypoints, variables, extras, theta_fn, config, extra_energy,
            callback,
        )
        return summarize_fit(adapter, context, keypoints, variables, extras, theta_fn, config,
                             value, iters, conv)


def _check_prior(prior: object, dim: int) -> None:
    if not isinstance(prior, GaussianMixture) or prior.dim != dim:
        got = prior.dim if isinstance(prior, GaussianMixture) else type(prior).__name__
        raise ValueError(f"prior: expected a GaussianMixture over {dim} features, got {got}")
