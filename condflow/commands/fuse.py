"""``condflow fuse MODEL VIEW VIEW [VIEW ...] [--out DIR]``: one estimate from several views of
the same person.

**Mesh models** (SMPL): uncalibrated views (multi-view fusion with the learned prior, the
paper's eq. 12, :func:`condflow.fitting.fuse_views`), and the rotation-averaging baseline.
**Skeleton models**: calibrated views, ``--rotations R.npy`` (``[N, 3, 3]``, each view's
camera rotation world → camera, in the order of the views): the mode of the product of the
views' densities (:func:`condflow.fitting.fuse_calibrated_views`), and the mean of the
views' modes as the baseline. A view is what the model reads: a keypoint file (the first
person in it; pixel coordinates normalized by ``--image-size`` unless ``--normalized``) or
an image.

Images are cropped like ``condflow predict`` does: around the first person of an OpenPose
JSON next to the image (``<stem>_keypoints.json`` or ``<stem>.json``), else the whole image;
keypoints are centred on the hip when the model's training cameras looked at it, as in
``condflow predict``.

Mesh fusion starts at every view's mode and minimizes Σₙ ½‖zₙ‖² + λ Σₙ ‖Rᵇₙ − mean Rᵇ‖²: a
view whose density is concentrated (small volume) costs more to move, so it weighs more in
the consensus; with ``model.conditional_volume: true`` that volume is per image. With
``--keypoints`` the views' 2D keypoints (from those JSON files; BODY_25 keypoints without a
SPIN counterpart get confidence 0) join the objective, with a shared shape and a camera per
view. Skeleton fusion starts at the mean of the views' modes and maximizes Σₙ log p(Rₙ X |
cₙ) over the world skeleton X: along its depth axis a view's density is broad, so the views
that see that axis across the image decide it.

Writes ``fuse.npz`` and ``fuse.json`` into ``--out``. Mesh: the consensus body pose (23
rotation matrices and axis-angle), each view's fused rotations (joint 0: that view's
orientation), shape, cameras, −log p(θₙ | cₙ) per view, log p(mode | cₙ) per view and the
rotation-averaging baseline's body pose. Skeleton: the fused joints in the world frame and
in each view's camera frame (mm, root-relative), −log p per view of the fused joints and
log p of each view's mode, each view's mode and the baseline's joints.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from condflow._outputs import OutputGuard
from condflow.commands import outputs
from condflow.data.augment import transform_keypoints
from condflow.data.image_datasets import person_boxes, person_crop
from condflow.data.keypoint_files import keypoints_json_for, load_keypoints, to_spin24
from condflow.data.screen import lifting_inputs
from condflow.distributed import resolve_device
from condflow.fitting import (
    FusionConfig,
    OptimizerConfig,
    fuse_calibrated_views,
    fuse_views,
    rotation_average_views,
)
from condflow.heads.base import Head
from condflow.heads.prohmr import ProHMRHead
from condflow.saving import load_head
from condflow.spaces.rotations import matrix_to_axis_angle
from condflow.tasks import task_for

__all__ = ["register", "run"]


def _views(paths: list[Path], res: int, with_keypoints: bool
           ) -> tuple[np.ndarray, np.ndarray | None, list[str | None]]:
    """Crops ``[N, res, res, 3]`` (normalized), keypoints ``[N, 24, 3]`` in crop coordinates
    (with ``with_keypoints``) and the JSON file each box came from."""
    crops, kps, sources = [], [], []
    for path in paths:
        if not path.is_file():
            raise FileNotFoundError(f"VIEWS: no such file {path}")
        with Image.open(path) as im:
            img = np.asarray(im.convert("RGB"))
        box_json = keypoints_json_for(path, {})
        if with_keypoints and box_json is None:
            raise ValueError(f"--keypoints: no OpenPose JSON next to {path} "
                             f"({path.stem}_keypoints.json or {path.stem}.json)")
        center, scale = person_boxes(box_json, img.shape[1], img.shape[0])[0]
        crops.append(person_crop(img, center, scale, res))
        if with_keypoints and box_json is not None:  # (checked above)
            kps.append(transform_keypoints(to_spin24(load_keypoints(box_json))[0], center, scale))
        sources.append(None if box_json is None else str(box_json))
    return np.stack(crops), (np.stack(kps) if with_keypoints else None), sources


def _rotations(path: str | None, views: int) -> Tensor:
    """The views' camera rotations ``[N, 3, 3]`` from a ``.npy`` file (no pickles)."""
    if path is None:
        raise ValueError("--rotations: a skeleton model fuses calibrated views; give each "
                         "view's camera rotation (world → camera) as a .npy of shape "
                         f"[{views}, 3, 3]")
    if not Path(path).is_file():
        raise FileNotFoundError(f"--rotations: no such file {path}")
    try:
        rot = np.load(path, allow_pickle=False)
    except ValueError as err:
        raise ValueError(f"--rotations: {path} is not a numeric .npy array ({err})") from err
    if rot.shape != (views, 3, 3) or not np.issubdtype(rot.dtype, np.floating):
        raise ValueError(f"--rotations: expected a float array of shape [{views}, 3, 3] (one "
                         f"rotation per view), got {rot.dtype} {list(rot.shape)} in {path}")
    return torch.from_numpy(rot.astype(np.float32))


def _skeleton_views(args: argparse.Namespace, cfg: Any, head: Head, paths: list[Path]
                    ) -> Tensor:
    """The network inputs of the views, one person each (``[N, ...]``)."""
    if head.input_kind == "images":
        crops, _, _ = _views(paths, head.input_shape[-1], False)
        return torch.from_numpy(crops.transpose(0, 3, 1, 2)).float()
    if args.image_size is None and not args.normalized:
        raise ValueError("--image-size: keypoint views need the image size W H in pixels "
                         "to normalize their coordinates (or --normalized)")
    size = (0.0, 0.0) if args.image_size is None else (args.image_size[0],
                                                       args.image_size[-1])
    if args.image_size is not None and (len(args.image_size) > 2 or min(size) <= 0):
        raise ValueError(f"--image-size: expected W [H] > 0, got {args.image_size}")
    center = task_for(cfg).source.root_centred_inputs
    inputs = []
    for path in paths:
        if not path.is_file():
            raise FileNotFoundError(f"VIEWS: no such file {path}")
        x = lifting_inputs(load_keypoints(path), size, args.normalized, center,
                           args.min_confidence, head.input_shape[0])
        if len(x) == 0:
            raise ValueError(f"VIEWS: no person in {path}")
        inputs.append(x[0])
    return torch.stack(inputs)


def _fuse_skeleton(args: argparse.Namespace, cfg: Any, head: Head, paths: list[Path],
                   guard: OutputGuard, out: Path, device: torch.device) -> int:
    if args.keypoints:
        raise ValueError("--keypoints: only for mesh models (a skeleton model's views are "
                         "their keypoints already)")
    rot = _rotations(args.rotations, len(paths)).to(device)[None]
    x = _skeleton_views(args, cfg, head, paths).to(device)
    with torch.no_grad():
        contexts = head.context(x)[None]  # [1, N, C]
        mode = head.mode(contexts[0])
    fused = fuse_calibrated_views(head, contexts, rot, OptimizerConfig(
        method="lbfgs", max_iters=args.iters, lr=1.0))
    arrays = {
        "joints_world": fused.joints_world[0], "view_joints": fused.joints[0],
        "neg_log_prob": fused.neg_log_prob[0], "mode_log_prob": mode.outputs()["log_prob"][:, 0],
        "mode_joints": mode.native[:, 0],
        "average_joints_world": fused.mean_of_modes[0],
    }
    info = {
        "rotations": str(args.rotations), "joint_names": list(head.space.joint_names),
        "units": f"joints: {head.space.units}, root-relative; joints_world and "
                 "average_joints_world in the world frame of --rotations, view_joints and "
                 "mode_joints in each view's camera frame; log-densities in nats over the "
                 "joint coordinates",
    }
    return _write(args, guard, out, paths, head, fused.iterations[0], fused.converged[0],
                  arrays, info, "fused")


def _write(args: argparse.Namespace, guard: OutputGuard, out: Path, paths: list[Path],
           head: Head, iterations: Tensor, converged: Tensor, arrays: dict[str, Tensor],
           info: dict[str, Any], done: str) -> int:
    """``fuse.npz`` and ``fuse.json`` (``arrays`` with their ``mode_log_prob`` and
    ``neg_log_prob`` per view, and ``info``), and a line per view and one for the fit."""
    arrays_np = {k: v.detach().cpu().numpy() for k, v in arrays.items()}
    guard.write(out / "fuse.npz", lambda f: np.savez(f, allow_pickle=False, **arrays_np))
    info = {
        "model": str(args.model), "views": [str(p) for p in paths], **info,
        "volume_depends_on_context": head.volume_depends_on_context,
        "iterations": int(iterations), "converged": bool(converged),
        **{k: np.round(v, 6).tolist() for k, v in arrays_np.items()},
    }
    guard.write_text(out / "fuse.json", json.dumps(info, indent=1))
    for i, path in enumerate(paths):
        print(f"view {i} ({path.name}): log p(mode | c) {float(arrays_np['mode_log_prob'][i]):.2f}"
              f", -log p(fused) {float(arrays_np['neg_log_prob'][i]):.2f}")
    state = "" if info["converged"] else f" (not converged; raise --iters from {args.iters})"
    print(f"{done} after {info['iterations']} iterations{state}; wrote {out / 'fuse.npz'}, "
          f"{out / 'fuse.json'}")
    return 0


def run(args: argparse.Namespace) -> int:
    if len(args.views) < 2:
        raise ValueError(f"VIEWS: fusion needs at least 2 views, got {len(args.views)}")
    if args.iters < 1:
        raise ValueError(f"--iters: expected an integer >= 1, got {args.iters}")
    if not args.consistency >= 0:
        raise ValueError(f"--consistency: expected a number >= 0, got {args.consistency}")
    device = resolve_device(args.device, arg="--device")
    cfg, head = load_head(args.model, device)
    if not head.probabilistic:
        raise ValueError(f"MODEL: fusion needs a probabilistic model (model.kind: flow); "
                         f"{args.model} is a {type(head).__name__}")
    paths = [Path(p) for p in args.views]
    guard = outputs(args)
    guard.add_inputs([*paths, *([args.rotations] if args.rotations else [])])
    out = guard.directory(args.out)
    for name in ("fuse.npz", "fuse.json"):
        guard.claim(out / name)
    if "joints" in head.mode_outputs:  # a joint space: calibrated views
        return _fuse_skeleton(args, cfg, head, paths, guard, out, device)
    if head.input_kind != "images":
        raise ValueError("MODEL: mesh fusion reads images; this model reads "
                         f"{head.input_kind}")
    if args.rotations is not None:
        raise ValueError("--rotations: mesh fusion is uncalibrated (each view keeps its "
                         "own global orientation); --rotations is for skeleton models")
    model = cast(ProHMRHead, head)  # a probabilistic SMPL head reading images
    crops, kps, sources = _views(paths, model.img_res, args.keypoints)
    x = torch.from_numpy(crops.transpose(0, 3, 1, 2)).float().to(device)
    keypoints = None if kps is None else torch.from_numpy(kps).float().to(device)[None]
    with torch.no_grad():
        contexts = model.context(x)[None]  # [1, N, C]
        _, mode_log_prob = model.flow.mode_and_log_prob(contexts[0])
    config = FusionConfig(consistency_weight=args.consistency, optimizer=OptimizerConfig(
        method="lbfgs", max_iters=args.iters, lr=1.0))
    fused = fuse_views(model, contexts, keypoints, config)
    average = rotation_average_views(model, contexts)
    arrays: dict[str, Tensor] = {
        "body_pose_rotmat": fused.body_pose[0],
        "body_pose": matrix_to_axis_angle(fused.body_pose[0]).reshape(-1),
        "view_rotmat": fused.rotmat[0], "betas": fused.betas[0], "cam": fused.cam[0],
        "z": fused.z[0], "neg_log_prob": fused.neg_log_prob[0],
        "mode_log_prob": mode_log_prob,
        "rotation_average_body_pose_rotmat": average.body_pose[0],
    }
    consistency = float(fused.consistency[0])
    info = {
        "boxes_from": sources, "keypoints": bool(args.keypoints),
        "consistency_weight": args.consistency, "consistency": consistency,
        "units": "rotations camera frame per view (joint 0) and body frame (joints 1..23); "
                 "body_pose: SMPL axis-angle of joints 1..23; cam: weak-perspective "
                 "(s, tx, ty); log-densities over the 144-d 6D pose",
    }
    return _write(args, guard, out, paths, model, fused.iterations[0], fused.converged[0],
                  arrays, info, f"consistency {consistency:.3g}")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "fuse", help="fuse several views of one person into one estimate (mesh: "
        "uncalibrated images; skeleton: calibrated views with --rotations)",
        description=__doc__.split("\n\n", 1)[1] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("model", help="a saved model or training checkpoint")
    p.add_argument("views", nargs="+", metavar="VIEWS",
                   help="one input per view: an image, or a keypoint file for keypoint models")
    p.add_argument("--out", default="fuse", help="output folder (default ./fuse)")
    p.add_argument("--keypoints", action="store_true",
                   help="mesh: add the views' OpenPose keypoints to the objective")
    p.add_argument("--consistency", type=float, default=100.0,
                   help="mesh: λ, the weight of the cross-view agreement (default 100)")
    p.add_argument("--rotations", default=None, metavar="R.npy",
                   help="skeleton: the views' camera rotations, world → camera, [N, 3, 3]")
    p.add_argument("--image-size", type=float, nargs="+", metavar=("W", "H"),
                   help="keypoint views: the image size in pixels")
    p.add_argument("--normalized", action="store_true",
                   help="keypoint views: coordinates are already normalized model inputs")
    p.add_argument("--min-confidence", type=float, default=0.1,
                   help="keypoint views: below this confidence a keypoint is hidden")
    p.add_argument("--iters", type=int, default=300, help="maximum L-BFGS iterations")
    p.add_argument("--device", default="cpu")
    p.set_defaults(func=run)
