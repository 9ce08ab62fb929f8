"""``condflow fuse MODEL IMAGE IMAGE [IMAGE ...] [--out DIR]``: one body pose from several
uncalibrated views of the same person (multi-view fusion with the learned prior, the paper's
eq. 12, :func:`condflow.fitting.fuse_views`), and the rotation-averaging baseline.

Every image is one view. The person is cropped like ``condflow predict`` does: around the
first person of an OpenPose JSON next to the image (``<stem>_keypoints.json`` or
``<stem>.json``), else the whole image. With ``--keypoints`` the views' 2D keypoints (from
those JSON files; BODY_25 keypoints without a SPIN counterpart get confidence 0) join the
objective, with a shared shape and a camera per view.

Fusion starts at every view's mode and minimizes Σₙ ½‖zₙ‖² + λ Σₙ ‖Rᵇₙ − mean Rᵇ‖²: a view
whose density is concentrated (small volume) costs more to move, so it weighs more in the
consensus; with ``model.conditional_volume: true`` that volume is per image.

Writes ``fuse.npz`` and ``fuse.json`` into ``--out``: the consensus body pose (23 rotation
matrices and axis-angle), each view's fused rotations (joint 0: that view's orientation),
shape, cameras, −log p(θₙ | cₙ) per view, log p(mode | cₙ) per view and the
rotation-averaging baseline's body pose.
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

from condflow.commands import outputs
from condflow.data.augment import transform_keypoints
from condflow.data.image_datasets import person_boxes, person_crop
from condflow.data.keypoint_files import keypoints_json_for, load_keypoints, to_spin24
from condflow.distributed import resolve_device
from condflow.fitting import FusionConfig, OptimizerConfig, fuse_views, rotation_average_views
from condflow.heads.prohmr import ProHMRHead
from condflow.saving import load_head
from condflow.spaces.rotations import matrix_to_axis_angle

__all__ = ["register", "run"]


def _views(paths: list[Path], res: int, with_keypoints: bool
           ) -> tuple[np.ndarray, np.ndarray | None, list[str | None]]:
    """Crops ``[N, res, res, 3]`` (normalized), keypoints ``[N, 24, 3]`` in crop coordinates
    (with ``with_keypoints``) and the JSON file each box came from."""
    crops, kps, sources = [], [], []
    for path in paths:
        if not path.is_file():
            raise FileNotFoundError(f"IMAGES: no such file {path}")
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


def run(args: argparse.Namespace) -> int:
    if len(args.images) < 2:
        raise ValueError(f"IMAGES: fusion needs at least 2 views, got {len(args.images)}")
    if args.iters < 1:
        raise ValueError(f"--iters: expected an integer >= 1, got {args.iters}")
    if not args.consistency >= 0:
        raise ValueError(f"--consistency: expected a number >= 0, got {args.consistency}")
    device = resolve_device(args.device, arg="--device")
    cfg, head = load_head(args.model, device)
    guard = outputs(args)
    out = guard.directory(args.out)
    for name in ("fuse.npz", "fuse.json"):
        guard.claim(out / name)
    if head.input_kind != "images" or not head.probabilistic:
        raise ValueError("MODEL: fusion needs a probabilistic mesh model (task mesh, "
                         "model.kind: flow)")
    model = cast(ProHMRHead, head)  # a probabilistic head reading images: the mesh task's
    paths = [Path(p) for p in args.images]
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
    arrays_np = {k: v.detach().cpu().numpy() for k, v in arrays.items()}
    guard.write(out / "fuse.npz", lambda f: np.savez(f, allow_pickle=True, **arrays_np))
    info: dict[str, Any] = {
        "model": str(args.model), "views": [str(p) for p in paths], "boxes_from": sources,
        "keypoints": bool(args.keypoints), "consistency_weight": args.consistency,
        "volume_depends_on_context": model.volume_depends_on_context,
        "iterations": int(fused.iterations[0]), "converged": bool(fused.converged[0]),
        "consistency": float(fused.consistency[0]),
        "units": "rotations camera frame per view (joint 0) and body frame (joints 1..23); "
                 "body_pose: SMPL axis-angle of joints 1..23; cam: weak-perspective "
                 "(s, tx, ty); log-densities over the 144-d 6D pose",
        **{k: np.round(v, 6).tolist() for k, v in arrays_np.items()},
    }
    guard.write_text(out / "fuse.json", json.dumps(info, indent=1))
    for i, path in enumerate(paths):
        print(f"view {i} ({path.name}): log p(mode | c) {float(mode_log_prob[i]):.2f}, "
              f"-log p(fused) {float(fused.neg_log_prob[0, i]):.2f}")
    print(f"consistency {info['consistency']:.3g} after {info['iterations']} iterations; "
          f"wrote {out / 'fuse.npz'}, {out / 'fuse.json'}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "fuse", help="fuse several views of one person into one body pose (mesh models)",
        description=__doc__.split("\n\n", 1)[1] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("model", help="a saved mesh model or training checkpoint")
    p.add_argument("images", nargs="+", metavar="IMAGES", help="one image per view")
    p.add_argument("--out", default="fuse", help="output folder (default ./fuse)")
    p.add_argument("--keypoints", action="store_true",
                   help="add the views' OpenPose keypoints to the objective")
    p.add_argument("--consistency", type=float, default=100.0,
                   help="λ, the weight of the cross-view agreement (default 100)")
    p.add_argument("--iters", type=int, default=300, help="maximum L-BFGS iterations")
    p.add_argument("--device", default="cpu")
    p.set_defaults(func=run)
