"""A synthetic image set for mesh recovery: rendered bodies with keypoints and SMPL parameters.

Bodies come from the shared pose generator (every yaw, so a body seen from behind looks much
like one seen from the front), with varied shapes, posed by the body model, placed in the
crop by a weak-perspective camera (the body's larger side fills a random fraction of the
crop, with a small random offset) and rendered by :mod:`condflow.data.render` over random
backgrounds (solid colours, gradients, smooth noise) with random lighting.

The set is written like a real one: PNG images plus an ``.npz`` in SPIN's layout (24 keypoints
``part`` in image pixels with confidences, 3D keypoints ``S``, ``pose``/``shape``/``has_smpl``),
and read back through :class:`condflow.data.image_datasets.ImageDataset`, so the real loader
and augmentation are exercised. Images are ``margin`` times larger than the crop, leaving
real background for scale and translation augmentation.

Conventions (SPIN's): the stored global orientation is the body's orientation in the camera
frame (x right, y down, z forward), ``pose = [global_orient, body_pose]`` axis-angle ``[72]``.
The crop of side ``res`` has the focal length ``5000 · res / 224`` px (ProHMR's 5000 px at
224 px) and the camera translation of the weak-perspective camera ``(s, tx, ty)``
(:func:`condflow.body.camera.weak_perspective_to_translation`). A keypoint's confidence is 0
when it falls outside the crop, is hidden behind another body part (by more than
``occlusion_m`` in the depth buffer) or is randomly dropped.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from scipy.ndimage import zoom
from scipy.spatial.transform import Rotation

from condflow._checks import check_int, check_positive_int
from condflow._io import cache_path, file_digest
from condflow._progress import progress
from condflow.body.camera import DEFAULT_FOCAL_LENGTH, DEFAULT_IMG_RES
from condflow.body.keypoints import keypoints_from_body
from condflow.body.model import BodyModel, resolve_model_file
from condflow.body.poses import POSE_FAMILIES, PoseGenerator
from condflow.data.image_datasets import write_spin_npz
from condflow.data.render import BODY_PART_PALETTE, face_part_labels, render_mesh

__all__ = [
    "RENDERERS",
    "SyntheticImageConfig",
    "SyntheticImageSet",
    "crop_geometry",
    "make_synthetic_image_set",
    "synthetic_image_set",
]

VERSION = "mesh-images-v1"
RENDERERS = ("parts", "shaded", "silhouette")
BACKGROUNDS = ("solid", "gradient", "noise")
NPZ_NAME = "data.npz"
EXTRA_NAME = "extra.npz"
IMAGE_DIR = "images"


@dataclass
class SyntheticImageConfig:
    """How a synthetic image set is drawn (every field is part of the cache key)."""

    size: int = 10000  # number of images
    seed: int = 0  # seeds poses, cameras, lighting, backgrounds and keypoint dropout
    res: int = 64  # crop side in pixels (the network's input size)
    margin: float = 1.5  # image side / crop side (rounded so the crop is pixel-aligned)
    renderer: str = "parts"  # "parts": body-part colours; "shaded": one colour; "silhouette"
    fill: tuple[float, float] = (0.7, 0.95)  # body's larger side / crop side, uniform range
    offset: float = 0.05  # std of the body-centre offset, normalized crop units (clipped 2 std)
    ambient: tuple[float, float] = (0.35, 0.65)  # ambient light share, uniform range
    backgrounds: tuple[str, ...] = BACKGROUNDS  # background kinds drawn uniformly
    occlusion_m: float = 0.2  # a keypoint is hidden if the surface is this much in front of it
    keypoint_dropout: float = 0.03  # probability that a keypoint's annotation is missing
    two_d_only: float = 0.25  # fraction marked 2D-only (has_smpl = 0, 3D confidences 0)
    families: tuple[str, ...] = POSE_FAMILIES  # pose families of the pose generator
    betas_std: float = 1.0  # standard deviation of the shape coefficients
    workers: int = 2  # processes rendering in parallel (not part of the result)

    def __post_init__(self) -> None:
        check_positive_int("size", self.size)
        check_int("res", self.res, 8)
        if not self.margin >= 1.0:
            raise ValueError(f"margin: expected a number >= 1, got {self.margin!r}")
        if self.renderer not in RENDERERS:
            raise ValueError(f"renderer: expected one of {RENDERERS}, got {self.renderer!r}")
        unknown = [b for b in self.backgrounds if b not in BACKGROUNDS]
        if unknown or not self.backgrounds:
            raise ValueError(f"backgrounds: expected names from {BACKGROUNDS}, "
                             f"got {list(self.backgrounds)}")
        lo, hi = self.fill
        if not 0 < lo <= hi:
            raise ValueError(f"fill: expected 0 < low <= high, got {self.fill!r}")
        for name in ("keypoint_dropout", "two_d_only"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name}: expected a probability in [0, 1], "
                                 f"got {getattr(self, name)!r}")

    def key(self) -> dict[str, Any]:
        """The fields that determine the generated data."""
        return {k: v for k, v in dataclasses.asdict(self).items() if k != "workers"}


def crop_geometry(res: int, margin: float) -> tuple[int, np.ndarray, float]:
    """``(image side W, box centre [2], box scale)`` of a crop of side ``res`` centred in a
    ``W × W`` image; ``W - res`` is even, so the unaugmented crop is the image's central
    ``res × res`` pixels exactly."""
    side = res + 2 * int(round(res * (margin - 1.0) / 2.0))
    return side, np.full(2, (side - 1) / 2.0), res / 200.0


def focal_length_for(res: int) -> float:
    """ProHMR's focal length scaled to a crop of ``res`` pixels."""
    return DEFAULT_FOCAL_LENGTH * res / DEFAULT_IMG_RES


class SyntheticImageSet:
    """Paths of a generated set: ``npz`` (SPIN layout), ``img_dir`` and ``extra`` (``cam``
    ``[N, 3]`` weak-perspective cameras, ``family`` ``[N]`` pose families)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.npz = self.root / NPZ_NAME
        self.img_dir = self.root / IMAGE_DIR
        self.extra = self.root / EXTRA_NAME
        info = json.loads((self.root / "config.json").read_text())
        self.config = info["config"]
        self.res = int(self.config["res"])

    def __repr__(self) -> str:
        return f"SyntheticImageSet({str(self.root)!r})"


def _draw_parameters(cfg: SyntheticImageConfig) -> dict[str, np.ndarray]:
    """Everything random about each image, drawn up front (the result is then independent of
    how the rendering is split among processes)."""
    n = cfg.size
    poses = PoseGenerator(cfg.seed, families=cfg.families, random_orient=True,
                          betas_std=cfg.betas_std).sample(n)
    # World frame (y up, body facing +z) → camera frame (y down, z forward): a half turn
    # about x, so yaw 0 faces the camera.
    flip = Rotation.from_euler("x", 180.0, degrees=True)
    global_orient = (flip * Rotation.from_rotvec(poses.global_orient.double().numpy())).as_rotvec()
    rng = np.random.default_rng([cfg.seed, 1])
    light = np.stack([rng.uniform(-1, 1, n), rng.uniform(-1, 1, n), -rng.uniform(0.5, 1.5, n)], 1)
    return {
        "global_orient": global_orient,
        "body_pose": poses.body_pose.double().numpy(),
        "betas": poses.betas.double().numpy(),
        "family": poses.family.numpy(),
        "fill": rng.uniform(cfg.fill[0], cfg.fill[1], n),
        "offset": np.clip(rng.normal(0.0, 1.0, (n, 2)), -2.0, 2.0) * cfg.offset,
        "light": light,
        "ambient": rng.uniform(cfg.ambient[0], cfg.ambient[1], n),
        "background": rng.integers(0, len(cfg.backgrounds), n),
        "colors": rng.uniform(0.0, 1.0, (n, 3, 3)),  # two background colours, a body colour
        "dropout": rng.random((n, 24)) < cfg.keypoint_dropout,
        "two_d_only": rng.random(n) < cfg.two_d_only,
    }


def _background(kind: str, colors: np.ndarray, side: int, rng: np.random.Generator) -> np.ndarray:
    if kind == "solid":
        bg = np.broadcast_to(colors[0], (side, side, 3)).copy()
    elif kind == "gradient":
        angle = rng.uniform(0, 2 * np.pi)
        u = np.linspace(-1, 1, side)
        ramp = np.cos(angle) * u[None, :] + np.sin(angle) * u[:, None]
        t = ((ramp - ramp.min()) / (np.ptp(ramp) + 1e-9))[..., None]
        bg = (1 - t) * colors[0] + t * colors[1]
    else:
        cells = int(rng.integers(3, 9))
        low = rng.uniform(0.0, 1.0, (cells, cells, 3))
        bg = zoom(low, (side / cells, side / cells, 1), order=1, mode="nearest")[:side, :side]
    bg = bg + rng.normal(0.0, 0.02, bg.shape)
    return np.clip(bg, 0.0, 1.0)


def _render_chunk(job: dict[str, Any]) -> dict[str, np.ndarray]:
    """Pose, place and render images ``job["start"]`` onwards; writes their PNGs."""
    torch.set_num_threads(1)
    cfg = SyntheticImageConfig(**job["config"])
    p = job["params"]
    body = BodyModel(job["model_file"], dtype=torch.float64)
    faces = body.faces.numpy()
    labels = face_part_labels(faces, body.smpl.lbs_weights.numpy())
    part_colors = BODY_PART_PALETTE[labels]
    side, center, _ = crop_geometry(cfg.res, cfg.margin)
    focal = focal_length_for(cfg.res)
    with torch.no_grad():
        out = body.forward_axis_angle(
            torch.as_tensor(p["global_orient"]), torch.as_tensor(p["body_pose"]),
            torch.as_tensor(p["betas"]), eval_joints=True,
        )
        assert out.eval_joints is not None  # eval_joints=True
        kp3d = keypoints_from_body(out.joints, out.eval_joints, out.vertices, body).numpy()
    vertices = out.vertices.numpy()
    m = len(vertices)
    # Weak-perspective camera: the body's 2D extent fills `fill` of the crop (side 2 in
    # normalized units), its centre offset by `offset`.
    lo, hi = vertices[..., :2].min(1), vertices[..., :2].max(1)
    s = 2.0 * p["fill"] / (hi - lo).max(1)
    txy = -(lo + hi) / 2.0 + p["offset"] / s[:, None]
    cam = np.concatenate([s[:, None], txy], 1)
    transl = np.concatenate([txy, (2.0 * focal / (cfg.res * s))[:, None]], 1)
    part = np.zeros((m, 24, 3))
    out_dir = Path(job["out_dir"])
    for i in range(m):
        index = job["start"] + i
        rng = np.random.default_rng([cfg.seed, 2, index])
        verts = vertices[i] + transl[i]
        kind = cfg.backgrounds[int(p["background"][i])]
        bg = _background(kind, p["colors"][i], side, rng)
        if cfg.renderer == "parts":
            colors, ambient = part_colors, p["ambient"][i]
        else:
            colors = np.broadcast_to(p["colors"][i, 2], (len(faces), 3))
            ambient = 1.0 if cfg.renderer == "silhouette" else p["ambient"][i]
        image, _, depth = render_mesh(verts, faces, focal, side, face_colors=colors,
                                      background=bg, light_dir=p["light"][i], ambient=ambient)
        points = kp3d[i] + transl[i]
        pixels = focal * points[:, :2] / points[:, 2:] + center
        inside = (np.abs(pixels - center) <= cfg.res / 2.0).all(1)
        col, row = np.clip(np.rint(pixels), 0, side - 1).astype(int).T
        surface = depth[row, col]
        hidden = (surface > 0) & (surface < points[:, 2] - cfg.occlusion_m)
        conf = inside & ~hidden & ~p["dropout"][i]
        part[i] = np.concatenate([pixels, conf[:, None]], 1)
        pixels_u8 = (np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8)
        Image.fromarray(pixels_u8).save(out_dir / IMAGE_DIR / f"{index:06d}.png",
                                        compress_level=1)
    return {"cam": cam, "part": part, "kp3d": kp3d}


def make_synthetic_image_set(
    cfg: SyntheticImageConfig, out_dir: str | Path, body_model: str | Path | None = None
) -> SyntheticImageSet:
    """Generate the set into ``out_dir`` (images, SPIN ``data.npz``, ``extra.npz``).

    ``body_model`` is the SMPL file or folder (default: ``$CONDFLOW_SMPL_PATH`` or the
    synthetic model); it needs a Human3.6M evaluation regressor next to it. The result
    depends only on ``cfg`` (not on ``cfg.workers``) and the body model.
    """
    out = Path(out_dir)
    (out / IMAGE_DIR).mkdir(parents=True, exist_ok=True)
    model_file = str(resolve_model_file(body_model))
    params = _draw_parameters(cfg)
    chunk = 250
    jobs = [
        {
            "config": dataclasses.asdict(cfg),
            "params": {k: v[lo : lo + chunk] for k, v in params.items()},
            "model_file": model_file,
            "start": lo,
            "out_dir": str(out),
        }
        for lo in range(0, cfg.size, chunk)
    ]
    if cfg.workers > 1 and len(jobs) > 1:
        with ProcessPoolExecutor(min(cfg.workers, len(jobs)), mp_context=get_context("spawn")
                                 ) as pool:
            results = list(progress(pool.map(_render_chunk, jobs), total=len(jobs),
                                    desc=f"render {cfg.size} images", unit="chunk"))
    else:
        results = [_render_chunk(job) for job in progress(jobs, desc=f"render {cfg.size} images",
                                                           unit="chunk")]
    cam = np.concatenate([r["cam"] for r in results])
    part = np.concatenate([r["part"] for r in results])
    kp3d = np.concatenate([r["kp3d"] for r in results])
    has_smpl = (~params["two_d_only"]).astype(np.float64)
    s_conf = np.broadcast_to(has_smpl[:, None, None], (cfg.size, 24, 1))
    _, center, scale = crop_geometry(cfg.res, cfg.margin)
    pose = np.concatenate([params["global_orient"], params["body_pose"].reshape(cfg.size, 69)], 1)
    write_spin_npz(
        out / NPZ_NAME,
        imgname=[f"{i:06d}.png" for i in range(cfg.size)],
        center=np.broadcast_to(center, (cfg.size, 2)),
        scale=np.full(cfg.size, scale),
        part=part,
        S=np.concatenate([kp3d, s_conf], 2),
        pose=pose,
        shape=params["betas"],
        has_smpl=has_smpl,
    )
    np.savez(out / EXTRA_NAME, cam=cam, family=params["family"])
    info = {"version": VERSION, "config": cfg.key(), "body_model": model_file}
    (out / "config.json").write_text(json.dumps(info, indent=2))
    return SyntheticImageSet(out)


def _set_folder(cfg: SyntheticImageConfig, model_file: str | Path) -> Path:
    key = {"version": VERSION, "config": cfg.key(), "body": file_digest(model_file)}
    return cache_path("data", "mesh-images", key)


def synthetic_image_set(
    cfg: SyntheticImageConfig, body_model: str | Path | None = None
) -> SyntheticImageSet:
    """The set for ``cfg``, generated on first use under
    ``<cache>/data/mesh-images-<hash of the config and the body model file's bytes>/``.

    Generation happens in a temporary folder renamed into place when complete, so
    concurrent callers (e.g. several training processes) never see a partial set.
    """
    final = _set_folder(cfg, resolve_model_file(body_model))
    if (final / "config.json").is_file():
        return SyntheticImageSet(final)
    tmp = final.with_name(f".{final.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        make_synthetic_image_set(cfg, tmp, body_model)
        try:
            os.rename(tmp, final)
        except OSError:  # another process finished first
            if not (final / "config.json").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return SyntheticImageSet(final)

