"""``condflow fit MODEL KEYPOINTS [--image IMAGE] [--out DIR]``: fit a trained model's learned
prior to 2D keypoints (test-time MAP, :func:`condflow.fitting.fit_keypoints`).

Lifting models: the keypoint file (OpenPose BODY_25 JSON, COCO-style JSON, ``.npy``/``.csv``;
see :mod:`condflow.data.keypoint_files` for the mapping to the 16 Human3.6M input joints) is
normalized like ``condflow predict`` does; the network sees it (giving c), and the fit
explains the same keypoints with a pinhole camera of focal length ``--focal`` pixels (default:
the training set's, scaled to the image width) and a free root translation.

Mesh models: ``--image`` is required; each person of the keypoint file (OpenPose BODY_25, or
SPIN's 24 keypoints as an array) is cropped from the image like ``condflow predict`` does
(the box of the seen keypoints, enlarged 1.2 times), and the fit explains the person's
keypoints in crop coordinates, with shape and camera fitted too. BODY_25 keypoints without a
SPIN counterpart get confidence 0.

Writes ``fit.npz`` (arrays), ``fit.json`` (the same as lists, plus per-person diagnostics)
and ``fit.png`` into ``--out``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from condflow.commands._help import plain_text

LIFTING_DEFAULTS = {"keypoint_weight": 1e4, "sigma": 0.05}
MESH_DEFAULTS = {"keypoint_weight": 1e4, "sigma": 0.05}


def _write(out: Path, arrays: dict[str, Any], info: dict[str, Any]) -> None:
    arrays = {k: v.detach().cpu().numpy() if isinstance(v, Tensor) else np.asarray(v)
              for k, v in arrays.items()}
    np.savez(out / "fit.npz", **arrays)
    info = {**info, **{k: v.tolist() for k, v in arrays.items()}}
    (out / "fit.json").write_text(json.dumps(info, indent=1))


def _fit_config(args: argparse.Namespace, defaults: dict[str, float]):  # noqa: ANN202
    from condflow.fitting import FitConfig, OptimizerConfig

    return FitConfig(
        keypoint_weight=defaults["keypoint_weight"] if args.keypoint_weight is None
        else args.keypoint_weight,
        sigma=defaults["sigma"] if args.sigma is None else (args.sigma or None),
        shape_weight=args.shape_weight,
        optimizer=OptimizerConfig(method=args.method, max_iters=args.iters,
                                  lr=1.0 if args.method == "lbfgs" else 0.01),
    )


# -- lifting ----------------------------------------------------------------------------------
def fit_lifting(model: nn.Module, cfg: Any, args: argparse.Namespace, out: Path) -> dict:
    from condflow.commands.predict import lifting_inputs
    from condflow.data.keypoint_files import load_keypoints
    from condflow.fitting import SkeletonAdapter, fit_keypoints
    from condflow.heads.skeleton import SkeletonHead
    from condflow.spaces.skeleton import H36M_17

    if not isinstance(model, SkeletonHead):
        raise ValueError("MODEL: fitting needs a probabilistic lifting model (model.kind: "
                         "flow), not the regression baseline")
    synthetic = cfg.data.synthetic
    if args.image_size:
        if len(args.image_size) > 2 or min(args.image_size) <= 0:
            raise ValueError(f"--image-size: expected W [H] > 0, got {args.image_size}")
        image_size = (args.image_size[0], args.image_size[-1])
    else:
        image_size = (float(synthetic.image_size),) * 2
    focal_px = args.focal or float(synthetic.focal_px) * image_size[0] / synthetic.image_size
    if not focal_px > 0:
        raise ValueError(f"--focal: expected a positive number, got {args.focal}")
    center = args.center if args.center is not None else cfg.data.source == "synthetic"
    kp = lifting_inputs(load_keypoints(args.keypoints), image_size, args.normalized, center,
                        args.min_confidence).to(next(model.parameters()).device)
    adapter = SkeletonAdapter(model, focal=2.0 * focal_px / image_size[0])
    with torch.no_grad():
        c = model.context(kp)
        mode = model.mode(c)
    fit = fit_keypoints(adapter, c, kp, _fit_config(args, LIFTING_DEFAULTS))
    with torch.no_grad():
        start = adapter.initial_extras(model.flow.mode(c), c, kp)
        mode_2d = adapter.project(model.flow.mode(c), start)
        fit_2d = adapter.project(fit.theta, fit.extras)
    arrays = {"keypoints_2d": kp, "mode": mode, "fit": fit.outputs["joints_mm"],
              "transl": fit.outputs["transl"], "z": fit.z, "mode_reprojection": mode_2d,
              "fit_reprojection": fit_2d}
    info = {"joint_names": list(H36M_17.joint_names), "normalized_focal": adapter.focal,
            "units": "mode/fit: millimetres, root-relative, camera frame; transl: metres; "
                     "keypoints and reprojections: normalized screen coordinates",
            "diagnostics": fit.diagnostics()}
    if not args.no_picture:
        _plot_lifting(kp.cpu(), mode_2d.cpu(), fit_2d.cpu(), mode.cpu(),
                      fit.outputs["joints_mm"].cpu(), out / "fit.png")
    return {"arrays": arrays, "info": info}


def _plot_lifting(kp: Tensor, mode_2d: Tensor, fit_2d: Tensor, mode: Tensor, fit: Tensor,
                  path: Path, rows: int = 4) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from condflow.spaces.skeleton import H36M_16, H36M_17

    n = min(rows, kp.shape[0])
    fig = plt.figure(figsize=(8, 4 * n))
    for i in range(n):
        ax = fig.add_subplot(n, 2, 2 * i + 1)
        seen = kp[i, :, 2] > 0
        for j, p in enumerate(H36M_16.parents):
            if p < 0:
                continue
            for pts, color in ((mode_2d[i], "tab:blue"), (fit_2d[i], "tab:red")):
                ax.plot(pts[[j, p], 0], pts[[j, p], 1], color=color, lw=1.5)
        ax.scatter(kp[i, seen, 0], kp[i, seen, 1], c="k", s=12, zorder=3, label="observed")
        ax.plot([], [], color="tab:blue", label="mode")
        ax.plot([], [], color="tab:red", label="fit")
        ax.invert_yaxis()
        ax.set_aspect("equal")
        ax.set_title(f"person {i}: 2D")
        ax.legend(fontsize=7)
        ax3 = fig.add_subplot(n, 2, 2 * i + 2, projection="3d")
        for joints, color in ((mode[i], "tab:blue"), (fit[i], "tab:red")):
            for j, p in enumerate(H36M_17.parents):
                if p >= 0:
                    ax3.plot(joints[[j, p], 0], joints[[j, p], 2], -joints[[j, p], 1],
                             color=color, lw=2)
        r = float(torch.cat([mode[i], fit[i]]).abs().max())
        ax3.set(xlim=(-r, r), ylim=(-r, r), zlim=(-r, r), xlabel="x", ylabel="z (depth)",
                zlabel="-y", title="3D (mm): mode blue, fit red")
        ax3.view_init(elev=15, azim=-70)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


# -- mesh -------------------------------------------------------------------------------------
def _spin24(path: Path) -> np.ndarray:
    from condflow.data.keypoint_files import body25_to_spin24, load_keypoints

    kf = load_keypoints(path)
    if kf.layout == "body25":
        return body25_to_spin24(kf.keypoints)
    if kf.layout == "spin24":
        return kf.keypoints
    raise ValueError(f"KEYPOINTS: {path} holds {kf.layout} keypoints; a mesh fit needs "
                     "OpenPose BODY_25 or SPIN's 24 keypoints")


def fit_mesh(model: nn.Module, args: argparse.Namespace, out: Path) -> dict:
    from PIL import Image

    from condflow.data.augment import crop_image, transform_keypoints
    from condflow.data.image_datasets import IMAGENET_MEAN, IMAGENET_STD
    from condflow.fitting import fit_keypoints
    from condflow.spaces.rotations import matrix_to_axis_angle

    if args.image is None:
        raise ValueError("--image: required for mesh models (the network's input)")
    image = Path(args.image)
    if not image.is_file():
        raise FileNotFoundError(f"--image: no such file {image}")
    with Image.open(image) as im:
        img = np.asarray(im.convert("RGB"))
    people = _spin24(Path(args.keypoints))
    res = model.img_res
    crops, kps, boxes = [], [], []
    for person in people:
        seen = person[person[:, 2] > 0, :2]
        if len(seen) < 2 or float(np.ptp(seen, 0).max()) <= 0:
            continue
        lo, hi = seen.min(0), seen.max(0)
        center, scale = (lo + hi) / 2, 1.2 * float((hi - lo).max()) / 200.0
        crops.append((crop_image(img, center, scale, res) / 255.0 - IMAGENET_MEAN) / IMAGENET_STD)
        kps.append(transform_keypoints(person, center, scale))
        boxes.append(np.r_[center, scale])
    if not crops:
        raise ValueError(f"KEYPOINTS: {args.keypoints}: no person with two or more seen "
                         "keypoints")
    device = next(model.parameters()).device
    x = torch.from_numpy(np.stack(crops).transpose(0, 3, 1, 2)).float().to(device)
    kp = torch.from_numpy(np.stack(kps)).float().to(device)
    with torch.no_grad():
        c = model.context(x)
        mode = model.mode(c)
    fit = fit_keypoints(model, c, kp, _fit_config(args, MESH_DEFAULTS))
    rotmat = fit.outputs["rotmat"]
    arrays = {
        "box": np.stack(boxes), "keypoints_2d": kp,
        "mode_rotmat": mode.rotmat[:, 0], "mode_betas": mode.betas[:, 0],
        "mode_cam": mode.cam[:, 0], "mode_keypoints_2d": mode.keypoints_2d[:, 0],
        "rotmat": rotmat, "pose": matrix_to_axis_angle(rotmat).reshape(-1, 72),
        "betas": fit.outputs["betas"], "cam": fit.outputs["cam"], "z": fit.z,
        "eval_joints_mm": fit.outputs["joints_mm"], "fit_keypoints_2d": fit.outputs["keypoints_2d"],
    }
    info = {"image": str(image),
            "units": "box: centre (px), scale (side/200 px); keypoints in normalized crop "
                     "coordinates; pose: SMPL axis-angle (global first); cam: weak-perspective "
                     "(s, tx, ty); eval_joints_mm: root-relative Human3.6M joints",
            "diagnostics": fit.diagnostics()}
    if not args.no_picture:
        _plot_mesh(np.stack(crops), kp.cpu(), mode.keypoints_2d[:, 0].cpu(),
                   fit.outputs["keypoints_2d"].cpu(), out / "fit.png")
    return {"arrays": arrays, "info": info}


def _plot_mesh(crops: np.ndarray, kp: Tensor, mode_2d: Tensor, fit_2d: Tensor, path: Path,
               rows: int = 4) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from condflow.data.image_datasets import IMAGENET_MEAN, IMAGENET_STD

    n = min(rows, len(crops))
    res = crops.shape[1]
    fig, axes = plt.subplots(1, n, figsize=(4 * n, 4), squeeze=False)
    for i in range(n):
        ax = axes[0, i]
        ax.imshow(np.clip(crops[i] * IMAGENET_STD + IMAGENET_MEAN, 0, 1))

        def px(u: Tensor) -> Tensor:
            return (u + 1) * res / 2 - 0.5

        seen = kp[i, :, 2] > 0
        ax.scatter(px(kp[i, seen, 0]), px(kp[i, seen, 1]), c="k", s=14, label="observed")
        ax.scatter(px(mode_2d[i, :, 0]), px(mode_2d[i, :, 1]), c="tab:blue", s=10, label="mode")
        ax.scatter(px(fit_2d[i, :, 0]), px(fit_2d[i, :, 1]), c="tab:red", s=10, label="fit")
        ax.set_axis_off()
        ax.set_title(f"person {i}")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


# -- command ----------------------------------------------------------------------------------
def run(args: argparse.Namespace) -> int:
    from condflow.distributed import resolve_device
    from condflow.saving import load_with_config

    if args.iters < 1:
        raise ValueError(f"--iters: expected an integer >= 1, got {args.iters}")
    cfg, model = load_with_config(args.model, resolve_device(args.device))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if cfg.task == "lifting":
        result = fit_lifting(model, cfg, args, out)
    elif cfg.task == "mesh":
        result = fit_mesh(model, args, out)
    else:
        raise ValueError(f"MODEL: fit supports lifting and mesh models, not {cfg.task!r}")
    info = {"model": str(args.model), "keypoints": str(args.keypoints), "task": cfg.task,
            **result["info"]}
    _write(out, result["arrays"], info)
    d = info["diagnostics"]
    for i, (e, nll, it) in enumerate(zip(d["keypoint_energy"], d["neg_log_prob"],
                                         d["iterations"], strict=True)):
        print(f"person {i}: E_J {e:.4g}, -log p {nll:.4g}, {it} iterations")
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
    p.add_argument("--image", default=None, help="the image (mesh models)")
    g = p.add_argument_group("lifting models: camera and keypoint normalization")
    g.add_argument("--image-size", type=float, nargs="+", default=None, metavar="W [H]",
                   help="image size in pixels (default: the training set's)")
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
    o.add_argument("--shape-weight", type=float, default=1.0, help="λ_β (mesh models)")
    o.add_argument("--method", choices=("lbfgs", "adam"), default="lbfgs")
    o.add_argument("--iters", type=int, default=300, help="maximum iterations")
    p.add_argument("--device", default="cpu")
    p.add_argument("--no-picture", action="store_true")
    p.set_defaults(func=run)
