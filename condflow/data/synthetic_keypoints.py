"""A synthetic 2D keypoints → SMPL set: the lifting set's people with their SMPL parameters.

For a :class:`~condflow.data.synthetic_lifting.LiftingSetConfig` the set holds the same
bodies seen by the same cameras as :func:`~condflow.data.synthetic_lifting.make_lifting_set`
(:func:`~condflow.data.synthetic_lifting.draw_lifting_scenes`, same seeds and draw order),
so a keypoints → mesh model and a lifting model trained on one configuration see the same
people. Inputs are SPIN's 24 2D keypoints (:data:`condflow.joints.SPIN_KEYPOINT_NAMES`)
observed as the lifting set observes its joints
(:func:`~condflow.data.synthetic_lifting.observe_keypoints`): Gaussian pixel noise, single
joints and whole limbs dropped at random (not by the body's own geometry; confidence 0,
coordinates 0), normalized screen coordinates. Targets are the SMPL parameters with the
root orientation in the camera frame, and the 3D keypoints in the layout and units of
:class:`~condflow.data.image_datasets.ImageDataset`'s ``keypoints_3d``,
so the mesh objective applies unchanged.

The camera: a square image of ``cfg.image_size`` pixels, focal length ``cfg.focal_px``
pixels, principal point at the image centre, so normalized screen coordinates are a
ProHMR head's normalized crop coordinates (``2 p / image_size − 1``) and
:func:`condflow.body.camera.project_to_crop` with :func:`crop_camera`'s focal length and
``img_res`` and each example's ``cam`` reproduces its keypoints (before noise) from its
3D keypoints exactly (a perspective projection, not an approximation).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from scipy.spatial.transform import Rotation
from torch import Tensor

from condflow._progress import progress
from condflow.body.keypoints import BodyKeypoints
from condflow.body.model import BodyModel
from condflow.data.cache import cached_tensors
from condflow.data.synthetic_lifting import (
    LiftingSetConfig,
    draw_lifting_scenes,
    observe_keypoints,
    scene_rng,
)
from condflow.spaces.rotations import axis_angle_to_matrix

__all__ = [
    "SPIN_LIMBS",
    "CropCamera",
    "cached_keypoint_smpl_set",
    "crop_camera",
    "make_keypoint_smpl_set",
]

#: Keypoints dropped together when a limb is occluded (SPIN-24 indices: right arm, left arm,
#: right leg, left leg — shoulder/hip to wrist/ankle, as the lifting set's limbs).
SPIN_LIMBS: tuple[tuple[int, ...], ...] = ((8, 7, 6), (9, 10, 11), (2, 1, 0), (3, 4, 5))

VERSION = 2  # bump when the generated data changes (part of the cache key); 2: scene_rng
_CHUNK = 4096


@dataclass(frozen=True)
class CropCamera:
    """The perspective camera of a set, in a ProHMR head's terms: a square crop of
    ``img_res`` pixels, ``focal_length`` in pixels, principal point at the crop centre.
    Pass both to :func:`condflow.body.camera.project_to_crop` (and to a mesh head's
    ``img_res`` / ``focal_length``)."""

    img_res: int
    focal_length: float


def crop_camera(cfg: LiftingSetConfig) -> CropCamera:
    """The camera under which ``project_to_crop(keypoints_3d, cam, focal_length, img_res)``
    gives back the set's ``keypoints_2d`` before noise: ``img_res = cfg.image_size``,
    ``focal_length = cfg.focal_px``."""
    return CropCamera(img_res=int(cfg.image_size), focal_length=float(cfg.focal_px))


def make_keypoint_smpl_set(cfg: LiftingSetConfig, body: BodyModel | None = None
                           ) -> dict[str, Tensor]:
    """Draw the set for ``cfg`` (``N = cfg.size``; float32 unless said).

    Returns:
        ``keypoints_2d [N, 24, 3]``: SPIN's keypoints in normalized screen coordinates
        (``x' = 2x/W − 1``, ``y' = 2y/W − H/W``, square image ``W = H = cfg.image_size``),
        with ``cfg.noise_px`` pixel noise, confidence 0/1 (dropped keypoints: confidence 0,
        coordinates 0; ``cfg.joint_dropout`` per keypoint, ``cfg.limb_dropout`` per limb of
        :data:`SPIN_LIMBS`);
        ``keypoints_3d [N, 24, 4]``: the same keypoints in 3D, metres, in the body frame
        (the body model's output for ``global_orient``, without translation; camera axes:
        x right, y down, z forward) — :class:`~condflow.data.image_datasets.ImageDataset`'s
        convention — and confidence 1;
        ``global_orient [N, 3]`` axis-angle root orientation in the camera frame (the
        camera's rotation composed with the body's world orientation), ``body_pose
        [N, 23, 3]``, ``betas [N, 10]``; ``has_smpl``, ``has_betas``, ``has_3d`` ``[N]``
        (ones);
        ``joints_3d [N, 17, 3]``: Human3.6M joints, millimetres, hip-relative, camera frame:
        ``make_lifting_set(cfg)["joints_3d"]``, bit for bit;
        ``transl [N, 3]``: metres, where the body frame sits in the camera frame
        (``keypoints_3d + transl`` are camera coordinates);
        ``cam [N, 3]``: the crop camera ``(s, tx, ty) = (2 f / (W t_z), t_x, t_y)``, for
        which :func:`~condflow.body.camera.weak_perspective_to_translation` gives ``transl``
        (see :func:`crop_camera`);
        ``family [N]`` int64: the pose family (``condflow.body.poses.POSE_FAMILIES``).
    """
    body = body or BodyModel()
    keypoints = BodyKeypoints(body)
    rng = scene_rng(cfg)
    scenes = draw_lifting_scenes(cfg, body, rng)
    poses, n = scenes.poses, cfg.size
    world_orient = Rotation.from_rotvec(poses.global_orient.double().numpy())
    orient = (Rotation.from_matrix(scenes.cameras.rotation) * world_orient).as_rotvec()
    global_orient = torch.from_numpy(orient).float()
    # Keypoints of the stored (float32) parameters, as a head or a loss recomputes them.
    kp3d, hip = [], []
    with torch.no_grad():
        for lo in progress(range(0, n, _CHUNK), desc=f"keypoints of {n} bodies", unit="chunk"):
            sl = slice(lo, lo + _CHUNK)
            pose = torch.cat([global_orient[sl, None], poses.body_pose[sl]], 1)
            _, eval_joints, points = keypoints(axis_angle_to_matrix(pose).to(body.dtype),
                                               poses.betas[sl].to(body.dtype))
            kp3d.append(points.double().numpy())
            hip.append(eval_joints[:, 0].double().numpy())
    points_body = np.concatenate(kp3d)  # [N, 24, 3] metres, body frame
    # The body frame differs from the camera frame by a shift only: the one that puts the
    # hip where the lifting scene's camera sees it.
    transl = scenes.joints_camera[:, 0] - np.concatenate(hip)
    keypoints_2d = observe_keypoints(points_body + transl[:, None], cfg, SPIN_LIMBS, rng)
    f, w = float(cfg.focal_px), float(cfg.image_size)
    cam = np.concatenate([2 * f / (w * transl[:, 2:]), transl[:, :2]], 1)
    ones = torch.ones(n)
    return {
        "keypoints_2d": keypoints_2d,
        "keypoints_3d": torch.from_numpy(
            np.concatenate([points_body, np.ones((n, 24, 1))], -1)).float(),
        "global_orient": global_orient,
        "body_pose": poses.body_pose.float().clone(),
        "betas": poses.betas.float().clone(),
        "has_smpl": ones.clone(),
        "has_betas": ones.clone(),
        "has_3d": ones.clone(),
        "joints_3d": scenes.joints_3d(),
        "transl": torch.from_numpy(transl).float(),
        "cam": torch.from_numpy(cam).float(),
        "family": poses.family.clone(),
    }


def cached_keypoint_smpl_set(cfg: LiftingSetConfig, body: BodyModel) -> dict[str, Tensor]:
    """:func:`make_keypoint_smpl_set`, cached on disk
    (:func:`condflow.data.cache.cached_tensors`, kind ``"keypoints-smpl"``) under ``cfg``
    and the contents of the body model's file and evaluation regressor."""
    files: list[str | Path] = [body.model_file]
    if body.eval_regressor_path is not None:
        files.append(body.eval_regressor_path)
    return cached_tensors("keypoints-smpl", {"version": VERSION, "gen": vars(cfg)},
                          lambda: make_keypoint_smpl_set(cfg, body), files=files)
