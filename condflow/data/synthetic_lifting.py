"""A synthetic 2D→3D lifting set with real depth and occlusion ambiguity.

Bodies come from the shared pose generator (varied shapes) posed by the body model; each is
seen by one random camera (any azimuth, a range of elevations and distances). Inputs are the
16 Human3.6M 2D joints (no nose) with Gaussian pixel noise and random occlusions (confidence
0, coordinates 0); targets are the 17 Human3.6M joints in the camera frame, root-relative,
in millimetres — the protocol of Martinez et al. on Human3.6M.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from condflow._checks import (
    NonNegativeFloat,
    PositiveFloat,
    PositiveInt,
    Probability,
    check_positive_int,
)
from condflow._progress import progress
from condflow.body.camera import CameraSample, look_at_cameras
from condflow.body.model import BodyModel
from condflow.body.poses import PoseGenerator, PoseSample
from condflow.data.cache import cached_tensors
from condflow.data.screen import normalize_screen_coordinates
from condflow.spaces.skeleton import H36M_17_TO_16

__all__ = [
    "LiftingScenes",
    "LiftingSetConfig",
    "TensorDictDataset",
    "cached_lifting_set",
    "draw_lifting_scenes",
    "make_lifting_set",
    "make_multiview_lifting_set",
    "observe_keypoints",
    "scene_rng",
]

#: Bumped when the same config draws a different set (the disk cache is keyed by it).
#: 2: the cameras, noise and occlusion no longer share the pose generator's random stream.
VERSION = 2

# Joints dropped together when a limb is occluded (H36M-16 indices: R/L arm, R/L leg).
_LIMBS = ((13, 14, 15), (10, 11, 12), (1, 2, 3), (4, 5, 6))


@dataclass
class LiftingSetConfig:
    """How a synthetic lifting set is drawn."""

    size: PositiveInt = 20000
    seed: int = 0
    image_size: PositiveInt = 1000  # square image, pixels
    focal_px: PositiveFloat = 1000.0
    noise_px: NonNegativeFloat = 3.0  # std of 2D Gaussian noise
    joint_dropout: Probability = 0.05  # probability that a single joint is occluded
    limb_dropout: Probability = 0.05  # probability, per limb, that the whole limb is occluded
    elevation_deg: tuple[float, float] = (-10.0, 40.0)
    distance_m: tuple[float, float] = (3.5, 7.0)


@dataclass
class LiftingScenes:
    """The bodies and cameras of a lifting set (everything but its 2D noise and occlusion).

    ``poses``: the pose generator's bodies (world frame: y up); ``cameras``: one look-at
    camera per body, aimed at the body's hip, which sits at the world origin;
    ``joints_camera [N, 17, 3]``: the Human3.6M evaluation joints in each camera's frame,
    metres (float64).
    """

    poses: PoseSample
    cameras: CameraSample
    joints_camera: np.ndarray

    def joints_3d(self) -> Tensor:
        """The lifting targets ``[N, 17, 3]`` float32: Human3.6M joints in the camera frame,
        relative to the hip, millimetres."""
        cam = self.joints_camera
        return torch.from_numpy((cam - cam[:, :1]) * 1000.0).float()


def scene_rng(cfg: LiftingSetConfig) -> np.random.Generator:
    """The random stream of a set's cameras, 2D noise and occlusion: independent of the pose
    generator's (``PoseGenerator(cfg.seed)`` draws from ``default_rng(cfg.seed)``; sharing
    that stream would make each camera's azimuth a function of its body's pose family)."""
    return np.random.default_rng([cfg.seed, 1])


def draw_lifting_scenes(
    cfg: LiftingSetConfig, body: BodyModel, rng: np.random.Generator
) -> LiftingScenes:
    """The bodies of ``PoseGenerator(cfg.seed, random_orient=False)``, posed by ``body`` and
    moved hip to the origin, each seen by a camera of :func:`look_at_cameras` drawn from
    ``rng`` (which :func:`make_lifting_set` then draws the 2D noise and occlusion from;
    pass :func:`scene_rng`, a stream independent of the poses')."""
    poses = PoseGenerator(seed=cfg.seed, random_orient=False).sample(cfg.size)
    world = _world_joints(poses, body)
    cams = look_at_cameras(rng, cfg.size, cfg.elevation_deg, cfg.distance_m)
    return LiftingScenes(poses, cams, cams.to_camera(world))


def _world_joints(poses: PoseSample, body: BodyModel) -> np.ndarray:
    """The Human3.6M joints ``[N, 17, 3]`` (metres, float64) of ``poses`` posed by ``body``,
    moved so that the root (hip) is at the world origin."""
    joints = []
    with torch.no_grad():
        for lo in progress(range(0, len(poses.betas), 4096),
                           desc=f"pose {len(poses.betas)} bodies", unit="chunk"):
            sl = slice(lo, lo + 4096)
            out = body.forward_axis_angle(
                poses.global_orient[sl], poses.body_pose[sl], poses.betas[sl], eval_joints=True
            )
            assert out.eval_joints is not None  # eval_joints=True
            joints.append(out.eval_joints.double().numpy())
    world = np.concatenate(joints)
    return world - world[:, :1]  # root (hip) at the origin; cameras look at it


def observe_keypoints(
    points: np.ndarray,
    cfg: LiftingSetConfig,
    limbs: Sequence[Sequence[int]],
    rng: np.random.Generator,
) -> Tensor:
    """What a detector reports of camera-frame points ``[N, K, 3]`` (metres): their pinhole
    projections (``cfg.focal_px``, principal point at the centre of the ``cfg.image_size``
    square image) with Gaussian noise of ``cfg.noise_px`` pixels, each keypoint dropped with
    probability ``cfg.joint_dropout`` and each of ``limbs`` (keypoint indices) as a whole
    with ``cfg.limb_dropout``, in normalized screen coordinates
    (:func:`normalize_screen_coordinates`). Returns ``[N, K, 3]`` float32 ``(x, y,
    confidence)``: confidence 0 or 1, a dropped keypoint at (0, 0)."""
    n, k = points.shape[:2]
    pixels = cfg.focal_px * points[..., :2] / points[..., 2:] + cfg.image_size / 2
    pixels = pixels + rng.normal(0, cfg.noise_px, (n, k, 2))
    conf = (rng.random((n, k)) >= cfg.joint_dropout).astype(np.float64)
    for limb in limbs:
        hit = rng.random((n,)) < cfg.limb_dropout
        conf[np.ix_(hit, np.asarray(limb))] = 0.0
    uv = normalize_screen_coordinates(pixels, cfg.image_size, cfg.image_size) * conf[..., None]
    return torch.from_numpy(np.concatenate([uv, conf[..., None]], -1)).float()


def make_lifting_set(cfg: LiftingSetConfig, body: BodyModel | None = None) -> dict[str, Tensor]:
    """Draw a set: ``keypoints_2d [N, 16, 3]`` (x, y normalized; confidence),
    ``joints_3d [N, 17, 3]`` mm root-relative camera frame, ``family [N]``."""
    rng = scene_rng(cfg)
    scenes = draw_lifting_scenes(cfg, body or BodyModel(), rng)
    points = scenes.joints_camera[:, list(H36M_17_TO_16)]
    return {
        "keypoints_2d": observe_keypoints(points, cfg, _LIMBS, rng),
        "joints_3d": scenes.joints_3d(),
        "family": scenes.poses.family.clone(),
    }


def make_multiview_lifting_set(
    cfg: LiftingSetConfig, views: int, body: BodyModel | None = None
) -> dict[str, Tensor]:
    """``cfg.size`` bodies of :func:`make_lifting_set`'s kind, each seen by ``views`` calibrated
    cameras at azimuths evenly spaced from a random start (as Human3.6M's cameras surround
    the subject), elevations and distances drawn per view from ``cfg``'s ranges, with the
    set's 2D noise and occlusion drawn independently per view.

    Returns ``keypoints_2d [P, V, 16, 3]`` (as :func:`make_lifting_set`), ``joints_3d
    [P, V, 17, 3]`` (mm, root-relative, each view's camera frame), ``rotation [P, V, 3, 3]``
    (world → camera) and ``joints_world [P, 17, 3]`` (mm, root-relative, world frame: y up),
    so that ``joints_3d[p, v] = joints_world[p] @ rotation[p, v].T``.
    """
    check_positive_int("views", views)
    rng = scene_rng(cfg)
    p = cfg.size
    poses = PoseGenerator(seed=cfg.seed, random_orient=False).sample(p)
    world = np.repeat(_world_joints(poses, body or BodyModel()), views, 0)
    start = rng.uniform(0, 2 * np.pi, (p, 1))
    azimuth = (start + 2 * np.pi * np.arange(views) / views).reshape(-1)
    cams = look_at_cameras(rng, p * views, cfg.elevation_deg, cfg.distance_m,
                           azimuth_rad=azimuth)
    camera = cams.to_camera(world)
    keypoints = observe_keypoints(camera[:, list(H36M_17_TO_16)], cfg, _LIMBS, rng)
    root_relative = (camera - camera[:, :1]) * 1000.0
    return {
        "keypoints_2d": keypoints.reshape(p, views, -1, 3),
        "joints_3d": torch.from_numpy(root_relative).float().reshape(p, views, -1, 3),
        "rotation": torch.from_numpy(cams.rotation).float().reshape(p, views, 3, 3),
        "joints_world": torch.from_numpy(world[::views] * 1000.0).float(),
    }


def cached_lifting_set(cfg: LiftingSetConfig, body: BodyModel) -> dict[str, Tensor]:
    """:func:`make_lifting_set`, cached on disk (:func:`condflow.data.cache.cached_tensors`)
    under ``cfg`` and the content of the body model's file."""
    return cached_tensors("lifting", {"version": VERSION, "gen": vars(cfg)},
                          lambda: make_lifting_set(cfg, body), files=[body.model_file])


class TensorDictDataset(Dataset):
    """Items ``{key: tensor[i]}`` from a dict of equally long tensors."""

    def __init__(self, tensors: dict[str, Tensor]) -> None:
        sizes = {k: len(v) for k, v in tensors.items()}
        if len(set(sizes.values())) != 1:
            raise ValueError(f"tensors: expected equal lengths, got {sizes}")
        self.tensors = tensors

    def __len__(self) -> int:
        return len(next(iter(self.tensors.values())))

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        return {k: v[i] for k, v in self.tensors.items()}
