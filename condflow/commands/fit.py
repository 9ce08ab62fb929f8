"""``condflow fit MODEL KEYPOINTS [--image IMAGE] [--out DIR]``: fit a trained model's learned
prior to 2D keypoints (test-time MAP, :func:`condflow.fitting.fit_keypoints`).

Which fit follows from the model's output space (a skeleton: joints and a root translation;
SMPL: pose, shape and camera) and what it reads from its input (keypoint models read the
keypoint file they are fitted to; image models read ``--image``, cropped around each person).

Keypoint models (lifting, keypoints → mesh): the keypoint file (OpenPose BODY_25 JSON,
COCO-style JSON, ``.npy``/``.csv``; see :mod:`condflow.data.keypoint_files` for the mapping
to the 16 Human3.6M input joints, or SPIN's 24) is normalized like ``condflow predict`` does
(by ``--image-size``, else the size of ``--image``, else, with a warning, the training
images'; ``fit.json`` records the size used); the network sees it (giving c), and the fit
explains the same keypoints: a skeleton with a pinhole camera of focal length ``--focal``
pixels (default: the training set's, scaled to the image width) and a free root
translation, an SMPL body with its camera.

Image models (mesh recovery, image → skeleton): ``--image`` is required; each person of the
keypoint file (OpenPose BODY_25, or SPIN's 24 keypoints as an array) is cropped from the
image like ``condflow predict`` does (the box of the seen keypoints, enlarged 1.2 times),
and the fit explains the person's keypoints in crop coordinates (an SMPL body with shape and
camera fitted too; a skeleton seen by the data's crop camera). BODY_25 keypoints without a
SPIN counterpart get confidence 0. Models imported from ProHMR (``condflow import-prohmr``)
get ProHMR demo's box and crop, and ProHMR's fitting weights as defaults
(:data:`PROHMR_DEFAULTS`).

Writes ``fit.npz`` (arrays), ``fit.json`` (the same as lists, plus per-person diagnostics)
and ``fit.png`` into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from condflow._outputs import OutputGuard
from condflow._progress import progress, set_progress
from condflow.commands import outputs
from condflow.commands._help import plain_text
from condflow.data.augment import transform_keypoints
from condflow.data.image_datasets import keypoint_box, person_crop
from condflow.data.keypoint_files import load_keypoints, to_h36m16, to_spin24
from condflow.data.prohmr_crop import prohmr_box, prohmr_crop
from condflow.data.screen import lifting_inputs
from condflow.distributed import resolve_device
from condflow.fitting import FitConfig, OptimizerConfig, fit_keypoints
from condflow.heads.base import Head
from condflow.heads.prohmr import MeshHead
from condflow.saving import load_head
from condflow.spaces.rotations import matrix_to_axis_angle
from condflow.tasks import describe, task_for
from condflow.viz.mesh import MeshFitState, plot_mesh_fit
from condflow.viz.skeleton import plot_lifting_fit

__all__ = ["register", "run"]

LIFTING_DEFAULTS = {"keypoint_weight": 1e4, "sigma": 0.05, "shape_weight": 1.0}
MESH_DEFAULTS = {"keypoint_weight": 1e4, "sigma": 0.05, "shape_weight": 1.0}
#: ProHMR's crop fitting (KeypointFitting, keypoint_fitting_loss: (1000/224)² data weight,
#: σ = 100 px, 4² ‖z‖², 6² ‖β‖²) in our units: divided by 32 so the prior is ½‖z‖², residuals
#: in normalized crop coordinates (112 px per unit). See docs/COMING_FROM_PROHMR.md.
PROHMR_DEFAULTS = {"keypoint_weight": 7812.5, "sigma": 100.0 / 112.0, "shape_weight": 1.125}


def _write(guard: OutputGuard, out: Path, arrays: dict[str, Any], info: dict[str, Any]) -> None:
    arrays = {k: v.detach().cpu().numpy() if isinstance(v, Tensor) else np.asarray(v)
              for k, v in arrays.items()}
    guard.write(out / "fit.npz", lambda f: np.savez(f, **arrays))
    info = {**info, **{k: v.tolist() for k, v in arrays.items()}}
    guard.write_text(out / "fit.json", json.dumps(info, indent=1))


def _fit_with_progress(head: Any, c: Tensor, kp: Tensor, config: Any) -> Any:
    """:func:`condflow.fitting.fit_keypoints` with a progress bar over its iterations."""
    opt = config.optimizer
    total = opt.max_iters + (opt.lm_iters if opt.method == "lm+lbfgs" else 0)
    with progress(total=total, desc=f"fit {len(kp)} person(s)", unit="iter") as bar:
        callback = None if bar.disable else (lambda state: bar.update(1))
        return fit_keypoints(head, c, kp, config, callback=callback)


#: ``--fast`` preconditions L-BFGS from this many persons on (measured: it reached SMPLify's
#: error soonest at 64 persons, but ended in a worse minimum on one of five single persons).
FAST_PRECONDITION_PERSONS = 16


def _fit_config(args: argparse.Namespace, defaults: dict[str, float], persons: int
                ) -> FitConfig:
    """The fit's settings from the command line; ``--fast``: the frozen flow, two
    Levenberg–Marquardt iterations with the bfloat16 Jacobian, then L-BFGS (in their
    Gauss–Newton metric for :data:`FAST_PRECONDITION_PERSONS` persons or more)."""
    method = "lm+lbfgs" if args.fast else args.method
    return FitConfig(
        keypoint_weight=defaults["keypoint_weight"] if args.keypoint_weight is None
        else args.keypoint_weight,
        sigma=defaults["sigma"] if args.sigma is None else (args.sigma or None),
        shape_weight=defaults["shape_weight"] if args.shape_weight is None else args.shape_weight,
        optimizer=OptimizerConfig(
            method=method, max_iters=args.iters, lr=0.01 if method == "adam" else 1.0,
            lm_iters=2,
            precondition=args.fast and persons >= FAST_PRECONDITION_PERSONS),
        frozen_flow=args.fast,
        jacobian_dtype="bfloat16" if args.fast else None,
    )


# -- inputs -----------------------------------------------------------------------------------
def keypoint_inputs(model: Head, cfg: Any, args: argparse.Namespace
                    ) -> tuple[Tensor, dict[str, Any], float]:
    """The encoder's keypoints ``[P, K, 3]`` from the keypoint file (normalized like
    ``condflow predict``), what to record, and the normalized focal length 2 f / W of their
    camera."""
    task = task_for(cfg)
    train_px, train_focal = task.keypoint_camera()
    if args.image_size:
        if len(args.image_size) > 2 or min(args.image_size) <= 0:
            raise ValueError(f"--image-size: expected W [H] > 0, got {args.image_size}")
        image_size, size_from = (args.image_size[0], args.image_size[-1]), "--image-size"
    elif args.image is not None:
        if not Path(args.image).is_file():
            raise FileNotFoundError(f"--image: no such file {args.image}")
        with Image.open(args.image) as im:  # reads the header only
            image_size, size_from = (float(im.width), float(im.height)), str(args.image)
    else:
        image_size = (float(train_px),) * 2
        size_from = "unused (--normalized)" if args.normalized else "training images"
        if not args.normalized:
            print(f"condflow fit: warning: no --image-size or --image; normalizing by the "
                  f"training images' size {image_size[0]:g}x{image_size[1]:g} px",
                  file=sys.stderr)
    focal_px = args.focal or float(train_focal) * image_size[0] / train_px
    if not focal_px > 0:
        raise ValueError(f"--focal: expected a positive number, got {args.focal}")
    center = args.center if args.center is not None else task.source.root_centred_inputs
    kp = lifting_inputs(load_keypoints(args.keypoints), image_size, args.normalized, center,
                        args.min_confidence, model.input_shape[0])
    info = {"image_size": list(image_size), "image_size_from": size_from}
    return kp.to(next(model.parameters()).device), info, 2.0 * focal_px / image_size[0]


def image_inputs(model: Head, args: argparse.Namespace, prohmr: bool = False
                 ) -> tuple[Tensor, Tensor, np.ndarray, np.ndarray]:
    """Crops ``[P, 3, R, R]`` of the people of ``--image`` (R the encoder's crop size), their
    SPIN-24 keypoints in crop coordinates ``[P, 24, 3]``, their boxes ``[P, 3]`` (centre px,
    scale) and which people of the file they are."""
    if args.image is None:
        raise ValueError("--image: required for models that read images")
    image = Path(args.image)
    if not image.is_file():
        raise FileNotFoundError(f"--image: no such file {image}")
    with Image.open(image) as im:
        img = np.asarray(im.convert("RGB"))
    people = to_spin24(load_keypoints(Path(args.keypoints)))
    res = model.input_shape[-1]
    crops, kps, boxes, kept = [], [], [], []
    if prohmr:  # a model imported from ProHMR: its demo's box (of the raw keypoints) and crop
        raw = load_keypoints(Path(args.keypoints)).keypoints
    for i, person in enumerate(people):
        box = keypoint_box(person)
        if box is None:
            continue
        if prohmr:
            center, side = prohmr_box(raw[i])
            scale = float(side) / 200.0
            crops.append(prohmr_crop(img, center, side, res).transpose(1, 2, 0))
        else:
            center, scale = box
            crops.append(person_crop(img, center, scale, res))
        kps.append(transform_keypoints(person, center, scale))
        boxes.append(np.r_[center, scale])
        kept.append(i)
    if not crops:
        raise ValueError(f"KEYPOINTS: {args.keypoints}: no person with two or more seen "
                         "keypoints")
    device = next(model.parameters()).device
    x = torch.from_numpy(np.stack(crops).transpose(0, 3, 1, 2)).float().to(device)
    return (x, torch.from_numpy(np.stack(kps)).float().to(device), np.stack(boxes),
            np.asarray(kept))


# -- joint spaces -----------------------------------------------------------------------------
def fit_joints(model: Head, cfg: Any, args: argparse.Namespace, out: Path) -> dict:
    """Fit a joint-space head: its joints, seen by a pinhole camera with a free root
    translation, to the keypoints (of the file, or of the crop for image models)."""
    if not model.probabilistic:
        raise ValueError("MODEL: fitting needs a probabilistic model (model.kind: flow), not "
                         "the regression baseline")
    if model.input_kind == "images":
        x, _, boxes, kept = image_inputs(model, args)
        h36m = to_h36m16(load_keypoints(Path(args.keypoints)))[kept]
        kp = torch.stack([torch.from_numpy(transform_keypoints(p, b[:2], float(b[2]))).float()
                          for p, b in zip(h36m, boxes, strict=True)]).to(x.device)
        res, focal_px = task_for(cfg).keypoint_camera()  # the crop camera
        focal = 2.0 * focal_px / res  # crop coordinates: 2 f / R
        info: dict[str, Any] = {"image": str(args.image), "box": boxes.tolist()}
    else:
        x, info, focal = keypoint_inputs(model, cfg, args)
        kp = x
    adapter = model.fitting_adapter(focal=focal)
    with torch.no_grad():
        c = model.context(x)
        mode = model.mode(c).joints_mm[:, 0]
    fit = _fit_with_progress(adapter, c, kp, _fit_config(args, LIFTING_DEFAULTS, len(kp)))
    with torch.no_grad():
        start = adapter.initial_extras(model.flow.mode(c), c, kp)
        mode_2d = adapter.project(model.flow.mode(c), start)
        fit_2d = adapter.project(fit.theta, fit.extras)
    arrays = {"keypoints_2d": kp, "mode": mode, "fit": fit.outputs["joints_mm"],
              "transl": fit.outputs["transl"], "z": fit.z, "mode_reprojection": mode_2d,
              "fit_reprojection": fit_2d}
    info = {**info, "joint_names": list(model.space.joint_names), "normalized_focal": focal,
            "units": "mode/fit: millimetres, root-relative, camera frame; transl: metres; "
                     "keypoints and reprojections: normalized screen (or crop) coordinates",
            "diagnostics": fit.diagnostics()}
    if not args.no_picture:
        plot_lifting_fit(kp.cpu(), mode_2d.cpu(), fit_2d.cpu(), mode.cpu(),
                         fit.outputs["joints_mm"].cpu(), out / "fit.png")
    return {"arrays": arrays, "info": info}


# -- the SMPL space ---------------------------------------------------------------------------
def fit_mesh(model: MeshHead, cfg: Any, args: argparse.Namespace, out: Path,
             prohmr: bool = False) -> dict:
    """Fit an SMPL head: pose (in z), shape and camera to the SPIN-24 keypoints (of the crop,
    or of the file for keypoint models, which read the keypoints they are fitted to)."""
    if model.input_kind == "images":
        x, kp, boxes, _ = image_inputs(model, args, prohmr)
        info: dict[str, Any] = {"image": str(args.image)}
        arrays: dict[str, Any] = {"box": boxes}
    else:
        x, info, _ = keypoint_inputs(model, cfg, args)
        kp, arrays = x, {}
    with torch.no_grad():
        c = model.context(x)
        mode = model.mode(c)
    fit = _fit_with_progress(model, c, kp, _fit_config(args, PROHMR_DEFAULTS if prohmr
                                                       else MESH_DEFAULTS, len(kp)))
    rotmat = fit.outputs["rotmat"]
    arrays |= {
        "keypoints_2d": kp,
        "mode_rotmat": mode.rotmat[:, 0], "mode_betas": mode.betas[:, 0],
        "mode_cam": mode.cam[:, 0], "mode_keypoints_2d": mode.keypoints_2d[:, 0],
        "rotmat": rotmat, "pose": matrix_to_axis_angle(rotmat).reshape(-1, 72),
        "betas": fit.outputs["betas"], "cam": fit.outputs["cam"], "z": fit.z,
        "eval_joints_mm": fit.outputs["joints_mm"], "fit_keypoints_2d": fit.outputs["keypoints_2d"],
    }
    info = {**info,
            "units": "box: centre (px), scale (side/200 px); keypoints in normalized crop "
                     "coordinates; pose: SMPL axis-angle (global first); cam: weak-perspective "
                     "(s, tx, ty); eval_joints_mm: root-relative Human3.6M joints",
            "diagnostics": fit.diagnostics()}
    if not args.no_picture:
        with torch.no_grad():
            mode_vertices = model.body(mode.rotmat[:, 0, :1], mode.rotmat[:, 0, 1:],
                                   mode.betas[:, 0], eval_joints=False).vertices
            fit_vertices = model.body(rotmat[:, :1], rotmat[:, 1:], fit.outputs["betas"],
                                   eval_joints=False).vertices
        crops, focal = x.cpu(), model.focal_length
        if model.input_kind != "images":  # no crop: a blank 64 px canvas, the same camera
            crops, focal = torch.zeros(len(x), 3, 64, 64), focal * 64 / model.img_res
        plot_mesh_fit(
            crops, kp.cpu(), model.body.faces.cpu(), focal,
            MeshFitState(mode_vertices.cpu(), mode.cam[:, 0].cpu(), mode.keypoints_2d[:, 0].cpu()),
            MeshFitState(fit_vertices.cpu(), fit.outputs["cam"].cpu(),
                         fit.outputs["keypoints_2d"].cpu()),
            str(out / "fit.png"))
    return {"arrays": arrays, "info": info}


# -- command ----------------------------------------------------------------------------------
def run(args: argparse.Namespace) -> int:
    set_progress(not args.no_progress)
    if args.iters < 1:
        raise ValueError(f"--iters: expected an integer >= 1, got {args.iters}")
    if args.fast and args.method != "lbfgs":
        raise ValueError(f"--fast: chooses the optimizer itself; drop --method {args.method}")
    cfg, model = load_head(args.model, resolve_device(args.device, arg="--device"))
    guard = outputs(args)
    out = guard.directory(args.out)
    for name in ("fit.npz", "fit.json") + (() if args.no_picture else ("fit.png",)):
        guard.claim(out / name)
    if "joints" in model.mode_outputs:  # a joint space: joints and a root translation
        result = fit_joints(model, cfg, args, out)
    else:  # the SMPL space: pose, shape and camera
        result = fit_mesh(cast(MeshHead, model), cfg, args, out,
                          getattr(cfg.model.space, "flow_convention", None) == "prohmr")
    info = {"model": str(args.model), "keypoints": str(args.keypoints),
            "configuration": describe(cfg),
            **result["info"]}
    _write(guard, out, result["arrays"], info)
    d = info["diagnostics"]
    for i, (e, nll, it) in enumerate(zip(d["keypoint_energy"], d["neg_log_prob"],
                                         d["iterations"], strict=True)):
        print(f"person {i}: E_J {e:.4g}, -log p {nll:.4g}, {it} iterations")
    stopped = [i for i, ok in enumerate(d["converged"]) if not ok]
    if stopped:
        who = ("person " if len(stopped) == 1 else "persons ") + ", ".join(map(str, stopped))
        print(f"not converged: {who} stopped at the iteration limit (--iters {args.iters}) "
              "before reaching the tolerance; fit.json records converged: false for "
              f"{'it' if len(stopped) == 1 else 'them'} (raise --iters, or check the keypoints)")
    print(f"wrote {out / 'fit.npz'}, {out / 'fit.json'}"
          + ("" if args.no_picture else f", {out / 'fit.png'}"))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "fit", help="fit a trained model's learned prior to 2D keypoints (writes npz/JSON/PNG)",
        description=plain_text(__doc__.split("\n\n", 1)[1]) if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("model", help="a saved model or training checkpoint")
    p.add_argument("keypoints", help="keypoint file: OpenPose JSON, COCO-style JSON, .npy, .csv")
    p.add_argument("--out", default="fit", help="output folder (default ./fit)")
    p.add_argument("--image", default=None,
                   help="the image: the network's input (image models), or where the keypoints' "
                   "image size is read from (keypoint models)")
    g = p.add_argument_group("keypoint models: camera and keypoint normalization")
    g.add_argument("--image-size", type=float, nargs="+", default=None, metavar="W [H]",
                   help="image size in pixels (default: read from --image; without it, the "
                   "training set's, with a warning); fit.json records the size used")
    g.add_argument("--focal", type=float, default=None,
                   help="focal length in pixels (default: the training set's, scaled to W)")
    g.add_argument("--normalized", action="store_true",
                   help="keypoints are already normalized screen coordinates")
    g.add_argument("--center", dest="center", action="store_true", default=None,
                   help="move the hip to the image centre (default for synthetic-trained "
                        "models, whose cameras look at the hip)")
    g.add_argument("--no-center", dest="center", action="store_false")
    g.add_argument("--min-confidence", type=float, default=0.1,
                   help="keypoints below this confidence count as unseen")
    o = p.add_argument_group("objective and optimizer")
    o.add_argument("--keypoint-weight", type=float, default=None, help="λ_J (default 1e4)")
    o.add_argument("--sigma", type=float, default=None,
                   help="Geman–McClure scale in normalized units (default 0.05; 0: squared "
                        "error)")
    o.add_argument("--shape-weight", type=float, default=None,
                   help="λ_β (mesh models; default 1, models imported from ProHMR 1.125)")
    o.add_argument("--method", choices=("lbfgs", "adam"), default="lbfgs")
    o.add_argument("--iters", type=int, default=300, help="maximum iterations")
    o.add_argument("--fast", action="store_true",
                   help="the fastest settings measured on the CPU: the flow compiled for the "
                   "fit, 2 Levenberg–Marquardt iterations with a bfloat16 Jacobian, then "
                   "L-BFGS (benchmarks/README.md); needs a float32 Glow flow, replaces --method")
    p.add_argument("--device", default="cpu")
    p.add_argument("--no-picture", action="store_true")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run)
