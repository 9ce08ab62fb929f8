"""Test-time applications on the synthetic sets: the paper's Table 3 and Table 4 shapes.

Table 3 (keypoint fitting): the regression (the mode f(0; c)) vs fitting with the learned
image-conditioned prior (:func:`condflow.fitting.fit_keypoints`) vs fitting with a generic
prior (:func:`condflow.fitting.fit_keypoints_generic`: a GMM over training skeletons for the
lifting model, SMPLify for the mesh model), with clean and with noisy/occluded 2D keypoints;
MPJPE and PA-MPJPE (mm).

Table 4 (multi-view, mesh model): N renders of the same posed body from different azimuths;
single-view modes vs the rotation average of their body poses vs fusion with the learned
prior (eq. 12); MPJPE and PA-MPJPE (mm) per view. Table 4 for lifting: the same people-×-views
design with calibrated cameras, single-view modes vs the mean of the views' modes vs the mode of
the product of the views' densities.

    python benchmarks/fitting_tables.py table3 --task lifting [--checkpoint CKPT]
    python benchmarks/fitting_tables.py table3 --task mesh --checkpoint CKPT
    python benchmarks/fitting_tables.py table4 --checkpoint CKPT
    python benchmarks/fitting_tables.py table4 --task lifting --checkpoint CKPT
    python benchmarks/fitting_tables.py table4 --task image_to_skeleton --checkpoint CKPT

Without ``--checkpoint`` the lifting table trains a small lifting model first (1500 steps,
coupling width 256, 20000 training examples; ~10 minutes on 2 CPU cores). Tables are printed
as markdown and written as JSON (``--out``). Every method of a table uses the same data
term (λ_J, σ) and optimizer; each example is fitted independently.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from condflow.fitting import (
    FitConfig,
    FusionConfig,
    GenericFitConfig,
    OptimizerConfig,
    fit_keypoints,
    fit_keypoints_generic,
    fuse_calibrated_views,
    fuse_views,
    pose_prior,
    rotation_average_views,
    skeleton_prior,
)
from condflow.metrics import j14_joints as j14
from condflow.metrics import mpjpe, pa_mpjpe

RESULTS = Path(__file__).resolve().parent / "results"


def errors(pred: Tensor, gt: Tensor, root: int | None = 0) -> dict[str, float]:
    """Mean MPJPE (aligned at joint ``root``; ``None``: as given) and PA-MPJPE, mm."""
    return {"mpjpe": mpjpe(pred, gt, root).mean().item(), "pa_mpjpe": pa_mpjpe(pred, gt)
            .mean().item()}


def in_chunks(fn, n: int, chunk: int):
    """Concatenate ``fn(slice)`` over chunks of ``n`` examples (results: dicts of tensors)."""
    parts = [fn(slice(lo, min(lo + chunk, n))) for lo in range(0, n, chunk)]
    return {k: torch.cat([p[k] for p in parts]) for k in parts[0]}


def markdown(rows: dict[str, dict[str, dict[str, float]]], settings: list[str]) -> str:
    head = "| method | " + " | ".join(f"{s}: MPJPE | {s}: PA-MPJPE" for s in settings) + " |"
    lines = [head, "|---|" + "---:|---:|" * len(settings)]
    for method, by_setting in rows.items():
        cells = []
        for s in settings:
            e = by_setting.get(s)
            cells += ["–", "–"] if e is None else [f"{e['mpjpe']:.1f}", f"{e['pa_mpjpe']:.1f}"]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_json(path: Path, payload: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, default=str))
    print(f"\nJSON: {path}")


def optimizer(args: argparse.Namespace) -> OptimizerConfig:
    return OptimizerConfig(method=args.method, max_iters=args.iters, tol=args.tol,
                           lr=1.0 if args.method == "lbfgs" else 0.01)


# ---------------------------------------------------------------------------------------------
# Table 3, lifting


def train_small_lifting(steps: int) -> Path:
    """Train the small lifting model of this benchmark into a temporary folder."""
    from condflow.tasks import load_config
    from condflow.train import train

    out = Path(tempfile.mkdtemp(prefix="condflow-fitting-lifting-"))
    cfg = load_config({"task": "lifting", "seed": 0, "output_dir": str(out),
                       "data": {"train_size": 20000}, "model": {"flow_hidden": 256},
                       "train": {"steps": steps}})
    print(f"training a lifting model ({steps} steps) into {out} ...", flush=True)
    return train(cfg, progress=False)


def lifting_sets(cfg: Any, n: int, seed: int) -> dict[str, dict[str, Tensor]]:
    """The test bodies and cameras of ``seed`` under three keypoint conditions: clean (exact
    projections, all joints), noisy (the training set's noise and occlusions) and heavy
    (10 px noise, 10% occluded joints, 10% occluded limbs)."""
    from condflow.body.model import BodyModel
    from condflow.data.synthetic_lifting import LiftingSetConfig, make_lifting_set

    body = BodyModel(cfg.data.body_model)
    base = {**vars(cfg.data.synthetic), "size": n, "seed": seed}
    variants = {
        "clean": {"noise_px": 0.0, "joint_dropout": 0.0, "limb_dropout": 0.0},
        "noisy": {},
        "heavy": {"noise_px": 10.0, "joint_dropout": 0.1, "limb_dropout": 0.1},
    }
    sets = {k: make_lifting_set(LiftingSetConfig(**{**base, **v}), body)
            for k, v in variants.items()}
    # The same bodies and cameras in every variant (only noise/occlusion parameters differ).
    assert all(torch.equal(s["joints_3d"], sets["clean"]["joints_3d"]) for s in sets.values())
    return sets


def select_weight(args: argparse.Namespace, run, settings: list[str], methods: list[str],
                  val_gt: Tensor, root: int | None) -> tuple[dict, dict]:
    """λ_J per (method, setting): the candidate of ``args.weights`` with the lowest MPJPE on
    the validation data (``run(setting, method, weight) -> joints``); a single candidate is
    used as it is. Returns the choice and the validation errors."""
    chosen: dict[str, dict[str, float]] = {m: {} for m in methods}
    sweep: dict[str, Any] = {}
    for setting in settings:
        for method in methods:
            if len(args.weights) == 1:
                chosen[method][setting] = args.weights[0]
                continue
            scores = {}
            for w in args.weights:
                scores[w] = errors(run(setting, method, w), val_gt, root)
                print(f"  validation {setting:12s} {method:30s} λ_J={w:g}: {scores[w]}",
                      flush=True)
            chosen[method][setting] = min(scores, key=lambda w: scores[w]["mpjpe"])
            sweep[f"{method} / {setting}"] = {f"{w:g}": e for w, e in scores.items()}
    return chosen, sweep


def table3_lifting(args: argparse.Namespace) -> None:
    from condflow.saving import load_with_config
    from condflow.tasks import task_for

    torch.manual_seed(0)
    checkpoint = Path(args.checkpoint) if args.checkpoint else train_small_lifting(
        args.train_steps)
    cfg, model = load_with_config(checkpoint)
    task = task_for(cfg)
    train_joints = task.datasets()[0].tensors["joints_3d"]
    t0 = time.perf_counter()
    prior = skeleton_prior(model.space.from_joints(train_joints) / 1000.0, args.gmm_components)
    print(f"skeleton GMM ({args.gmm_components} components) on {len(train_joints)} training "
          f"skeletons: {time.perf_counter() - t0:.1f} s")
    synthetic = cfg.data.synthetic
    adapter = model.fitting_adapter(focal=2.0 * synthetic.focal_px / synthetic.image_size)
    # Settings: (network input, keypoints fitted). GT 2D: the network sees the usual noisy
    # input (as an image would be), the fit explains exact keypoints of all joints.
    settings = {"GT 2D": ("noisy", "clean"), "noisy 2D": ("noisy", "noisy"),
                "heavy noise": ("heavy", "heavy")}
    methods = ["fit, learned prior", "fit, generic prior"]

    def runner(sets: dict[str, dict[str, Tensor]]):
        contexts = {}
        with torch.no_grad():
            for inp in {v[0] for v in settings.values()}:
                contexts[inp] = model.context(sets[inp]["keypoints_2d"])

        def run(setting: str, method: str, weight: float, info: dict | None = None) -> Tensor:
            inp, target = settings[setting]
            c, kp = contexts[inp], sets[target]["keypoints_2d"]
            learned = FitConfig(keypoint_weight=weight, sigma=args.sigma,
                                optimizer=optimizer(args))
            generic = GenericFitConfig(keypoint_weight=weight, sigma=args.sigma,
                                       optimizer=optimizer(args))

            def one(sl: slice) -> dict[str, Tensor]:
                if method == methods[0]:
                    f = fit_keypoints(adapter, c[sl], kp[sl], learned)
                else:
                    f = fit_keypoints_generic(adapter, c[sl], kp[sl], prior, generic)
                return {"joints": f.outputs["joints_mm"], "iters": f.iterations.float(),
                        "e_j": f.keypoint_energy, "converged": f.converged.float()}

            t = time.perf_counter()
            out = in_chunks(one, len(c), args.chunk)
            if info is not None:
                info.update(seconds=time.perf_counter() - t,
                            mean_iterations=out["iters"].mean().item(),
                            converged=out["converged"].mean().item(),
                            mean_keypoint_energy=out["e_j"].mean().item())
            return out["joints"]

        return run, contexts

    val_sets = lifting_sets(cfg, args.val_examples, cfg.seed + 2500)
    val_run, _ = runner(val_sets)
    chosen, sweep = select_weight(args, val_run, list(settings), methods,
                                  val_sets["clean"]["joints_3d"], 0)
    sets = lifting_sets(cfg, args.examples, cfg.seed + 2000)
    gt = sets["clean"]["joints_3d"]
    run, contexts = runner(sets)
    rows: dict[str, dict[str, dict[str, float]]] = {"mode (regression)": {}}
    rows.update({m: {} for m in methods})
    details: dict[str, Any] = {}
    for name, (inp, _) in settings.items():
        with torch.no_grad():
            rows["mode (regression)"][name] = errors(model.mode(contexts[inp]).joints[:, 0], gt)
        for method in methods:
            info: dict[str, Any] = {"keypoint_weight": chosen[method][name]}
            rows[method][name] = errors(run(name, method, chosen[method][name], info), gt)
            details[f"{method} / {name}"] = info
            print(f"{name:12s} {method:20s} {rows[method][name]} {info}", flush=True)
    print(f"\nTable 3 (lifting, synthetic test set, {len(gt)} examples; mm)\n")
    print(markdown(rows, list(settings)))
    print("\nλ_J per method and setting (chosen on the validation set): "
          + "; ".join(f"{m}: " + ", ".join(f"{s} {w:g}" for s, w in chosen[m].items())
                      for m in methods))
    write_json(Path(args.out or RESULTS / "fitting_table3_lifting.json"), {
        "table": rows, "details": details, "keypoint_weights": chosen,
        "validation_sweep": sweep, "validation_examples": args.val_examples,
        "checkpoint": str(checkpoint), "examples": len(gt), "sigma": args.sigma,
        "optimizer": asdict(optimizer(args)), "gmm_components": args.gmm_components,
        "settings": {k: {"network_input": v[0], "fitted_keypoints": v[1]}
                     for k, v in settings.items()}})


# ---------------------------------------------------------------------------------------------
# Mesh model helpers


def load_mesh(checkpoint: str) -> tuple[Any, Any, Any]:
    from condflow.saving import load_with_config
    from condflow.tasks import SMPLTask, describe, task_for

    cfg, model = load_with_config(checkpoint)
    task = task_for(cfg)
    if not isinstance(task, SMPLTask):
        raise ValueError(f"--checkpoint: expected a mesh model, got {describe(cfg)}")
    return cfg, task, model


def corrupt(kp: Tensor, args: argparse.Namespace, seed: int) -> Tensor:
    """Detector-like keypoints: Gaussian noise (``args.noise``, normalized crop units), hidden
    keypoints (``args.dropout``) and outliers anywhere in the crop (``args.outliers``)."""
    g = torch.Generator().manual_seed(seed)
    out = kp.clone()
    out[..., :2] += args.noise * torch.randn(out[..., :2].shape, generator=g)
    hide = torch.rand(out.shape[:2], generator=g) < args.dropout
    outlier = (torch.rand(out.shape[:2], generator=g) < args.outliers) & ~hide
    anywhere = torch.rand(out[..., :2].shape, generator=g) * 2 - 1
    out[..., :2] = torch.where(outlier[..., None], anywhere, out[..., :2])
    out[..., 2] = out[..., 2] * ~hide
    return out


def table3_mesh(args: argparse.Namespace) -> None:
    from torch.utils.data import DataLoader, Subset

    from condflow.losses.mesh import gt_rotmat

    cfg, task, model = load_mesh(args.checkpoint)
    test = task.datasets()[1]
    n_val = min(args.val_examples, len(test) // 2) if len(args.weights) > 1 else 0
    n = min(args.examples, len(test) - n_val)

    def load(indices: range) -> dict[str, Any]:
        batch = next(iter(DataLoader(Subset(test, indices), batch_size=len(indices))))
        with torch.no_grad():
            gt = j14(model.keypoints(gt_rotmat(batch), batch["betas"])[1])
            c = model.context(batch["img"])
        clean = batch["keypoints_2d"]
        return {"gt": gt, "c": c, "GT 2D": clean,
                "noisy 2D": corrupt(clean, args, indices.start)}

    prior = pose_prior(args.gmm_components)
    methods = ["fit, learned prior", "fit, SMPLify (generic prior)"]
    settings = ["GT 2D", "noisy 2D"]

    def runner(data: dict[str, Any]):
        def run(setting: str, method: str, weight: float, info: dict | None = None) -> Tensor:
            c, kp = data["c"], data[setting]
            learned = FitConfig(keypoint_weight=weight, sigma=args.sigma,
                                shape_weight=args.shape_weight, optimizer=optimizer(args))
            generic = GenericFitConfig(keypoint_weight=weight, sigma=args.sigma,
                                       shape_weight=args.shape_weight,
                                       bend_weight=args.bend_weight, optimizer=optimizer(args))

            def one(sl: slice) -> dict[str, Tensor]:
                if method == methods[0]:
                    f = fit_keypoints(model, c[sl], kp[sl], learned)
                else:
                    f = fit_keypoints_generic(model, c[sl], kp[sl], prior, generic)
                joints = model.keypoints(f.outputs["rotmat"], f.extras["betas"])[1]
                return {"joints": j14(joints), "iters": f.iterations.float(),
                        "e_j": f.keypoint_energy, "converged": f.converged.float()}

            t = time.perf_counter()
            out = in_chunks(one, len(c), args.chunk)
            if info is not None:
                info.update(seconds=time.perf_counter() - t,
                            mean_iterations=out["iters"].mean().item(),
                            converged=out["converged"].mean().item(),
                            mean_keypoint_energy=out["e_j"].mean().item())
            return out["joints"]

        return run

    chosen, sweep = {m: {s: args.weights[0] for s in settings} for m in methods}, {}
    if n_val:
        val = load(range(0, n_val))
        chosen, sweep = select_weight(args, runner(val), settings, methods, val["gt"], None)
    data = load(range(n_val, n_val + n))
    run = runner(data)
    with torch.no_grad():
        mode = model.mode(data["c"])
    rows: dict[str, dict[str, dict[str, float]]] = {"mode (regression)": {}}
    rows.update({m: {} for m in methods})
    details: dict[str, Any] = {}
    for name in settings:
        rows["mode (regression)"][name] = errors(j14(mode.eval_joints[:, 0]), data["gt"], None)
        for method in methods:
            info: dict[str, Any] = {"keypoint_weight": chosen[method][name]}
            rows[method][name] = errors(run(name, method, chosen[method][name], info),
                                        data["gt"], None)
            details[f"{method} / {name}"] = info
            print(f"{name:10s} {method:30s} {rows[method][name]} {info}", flush=True)
    print(f"\nTable 3 (mesh, synthetic test images, {n} examples; 14 LSP joints, mm)\n")
    print(markdown(rows, settings))
    print("\nλ_J per method and setting (chosen on validation images): "
          + "; ".join(f"{m}: " + ", ".join(f"{s} {w:g}" for s, w in chosen[m].items())
                      for m in methods))
    write_json(Path(args.out or RESULTS / "fitting_table3_mesh.json"), {
        "table": rows, "details": details, "keypoint_weights": chosen,
        "validation_sweep": sweep, "validation_examples": n_val,
        "checkpoint": args.checkpoint, "examples": n, "sigma": args.sigma,
        "shape_weight": args.shape_weight, "bend_weight": args.bend_weight,
        "noise": {"std": args.noise, "dropout": args.dropout, "outliers": args.outliers},
        "optimizer": asdict(optimizer(args)), "gmm_components": args.gmm_components})


# ---------------------------------------------------------------------------------------------
# Table 4, multi-view mesh


def render_views(cfg: Any, people: int, views: int, seed: int, out_dir: Path
                 ) -> dict[str, Tensor]:
    """Render ``people`` bodies (pose-generator draws) each from ``views`` azimuths evenly
    spaced from a random start, with the synthetic image set's renderer and camera placement
    (fresh lighting and background per view). Returns network inputs ``images [P, V, 3, r, r]``
    and ground truth ``rotmat [P, V, 24, 3, 3]`` (camera-frame global orientation per view),
    ``betas [P, 10]`` and ``view_rotation [P, V, 3, 3]``, each view's rotation from the
    body's frame (that of the pose generator's orientation, y up) to its camera's."""
    from PIL import Image
    from scipy.spatial.transform import Rotation

    from condflow.body.model import resolve_model_file
    from condflow.body.poses import PoseGenerator
    from condflow.data.augment import crop_image
    from condflow.data.image_datasets import IMAGENET_MEAN, IMAGENET_STD
    from condflow.data.synthetic_images import SyntheticImageConfig, _render_chunk, crop_geometry
    from condflow.spaces.rotations import axis_angle_to_matrix

    d = cfg.data
    scfg = SyntheticImageConfig(**{**vars(d.synthetic), "res": d.res, "size": people * views,
                                   "seed": seed, "workers": 1})
    rng = np.random.default_rng(seed)
    poses = PoseGenerator(seed, families=scfg.families, random_orient=True,
                          betas_std=scfg.betas_std).sample(people)
    yaw = rng.uniform(0, 360, people)[:, None] + 360.0 * np.arange(views)[None] / views
    flip = Rotation.from_euler("x", 180.0, degrees=True)
    base = Rotation.from_rotvec(np.repeat(poses.global_orient.double().numpy(), views, 0))
    turned = Rotation.from_euler("y", yaw.reshape(-1, 1), degrees=True) * base
    global_orient = (flip * turned).as_rotvec()
    m = people * views
    params = {
        "global_orient": global_orient,
        "body_pose": np.repeat(poses.body_pose.double().numpy(), views, 0),
        "betas": np.repeat(poses.betas.double().numpy(), views, 0),
        "fill": rng.uniform(scfg.fill[0], scfg.fill[1], m),
        "offset": np.clip(rng.normal(0.0, 1.0, (m, 2)), -2.0, 2.0) * scfg.offset,
        "light": np.stack([rng.uniform(-1, 1, m), rng.uniform(-1, 1, m),
                           -rng.uniform(0.5, 1.5, m)], 1),
        "ambient": rng.uniform(scfg.ambient[0], scfg.ambient[1], m),
        "background": rng.integers(0, len(scfg.backgrounds), m),
        "colors": rng.uniform(0.0, 1.0, (m, 3, 3)),
        "dropout": np.zeros((m, 24), dtype=bool),
        "two_d_only": np.zeros(m, dtype=bool),
    }
    (out_dir / "images").mkdir(parents=True, exist_ok=True)
    _render_chunk({"config": asdict(scfg), "params": params,
                   "model_file": str(resolve_model_file(d.body_model)), "start": 0,
                   "out_dir": str(out_dir)})
    _, center, scale = crop_geometry(d.res, scfg.margin)
    images = []
    for i in range(m):
        with Image.open(out_dir / "images" / f"{i:06d}.png") as im:
            crop = crop_image(np.asarray(im.convert("RGB")), center, scale, d.res) / 255.0
        images.append(((crop - IMAGENET_MEAN) / IMAGENET_STD).transpose(2, 0, 1))
    aa = torch.cat([torch.as_tensor(global_orient)[:, None],
                    torch.as_tensor(params["body_pose"])], 1).float()
    view_rotation = (flip * Rotation.from_euler("y", yaw.reshape(-1, 1), degrees=True)).as_matrix()
    return {
        "images": torch.as_tensor(np.stack(images)).float().reshape(people, views, 3, d.res,
                                                                     d.res),
        "rotmat": axis_angle_to_matrix(aa).reshape(people, views, 24, 3, 3),
        "betas": poses.betas.float(),
        "view_rotation": torch.as_tensor(view_rotation).float().reshape(people, views, 3, 3),
    }


def _within_rank_correlation(a: Tensor, b: Tensor) -> float:
    """Spearman correlation between ``a`` and ``b`` along dim 1 (``[P, V]``), averaged over P."""
    ra, rb = (x.argsort(1).argsort(1).float() for x in (a, b))
    ra, rb = ra - ra.mean(1, keepdim=True), rb - rb.mean(1, keepdim=True)
    return ((ra * rb).sum(1) / (ra.norm(dim=1) * rb.norm(dim=1)).clamp_min(1e-9)).mean().item()


@torch.no_grad()
def view_reliability(model: Any, contexts: Tensor, mode: Any, gt: Tensor,
                     num_samples: int = 25) -> dict[str, float]:
    """Do the per-view densities tell which view is reliable? Fusion can only beat equal
    weights if they do. ``contexts [P, V, C]``, ``mode`` the model's mode prediction for the
    ``P·V`` flattened contexts, ``gt [P·V, 14, 3]``.

    Two per-view confidences: the spread of ``num_samples`` samples around the mode (mean
    joint distance, mm) and −log p(mode | c) (one constant for every view with ProHMR's
    blocks, whose log-dets depend neither on z nor on c; per view with the conditional
    volume). Returned: the mean within-person rank correlation of each with the view's mode
    PA-MPJPE, and the PA-MPJPE of the mode of the most confident view, of an average view
    and of the best view.
    """
    p, v = contexts.shape[:2]
    flat = contexts.reshape(p * v, -1)
    mode_j = j14(model.keypoints(mode.rotmat[:, 0], mode.betas[:, 0])[1])
    err = pa_mpjpe(mode_j, gt).reshape(p, v)
    gen = torch.Generator(device=flat.device).manual_seed(0)
    s = model.sample(num_samples, flat, gen)
    s_j = j14(model.keypoints(s.rotmat.flatten(0, 1), s.betas.flatten(0, 1))[1])
    spread = (s_j.reshape(p * v, num_samples, 14, 3) - mode_j[:, None]).norm(dim=-1)
    spread = spread.mean((1, 2)).reshape(p, v)
    rows = torch.arange(p)
    out = {
        "mode_log_prob_std_nats": mode.log_prob.std().item(),
        "spread_mm": spread.mean().item(),
        "spearman_spread_vs_error": _within_rank_correlation(spread, err),
        "pa_mpjpe_tightest_view": err[rows, spread.argmin(1)].mean().item(),
        "pa_mpjpe_average_view": err.mean().item(),
        "pa_mpjpe_best_view": err.min(1).values.mean().item(),
    }
    if model.flow.volume_depends_on_context:
        neg_log_prob = -mode.log_prob[:, 0].reshape(p, v)
        out["spearman_neg_mode_log_prob_vs_error"] = _within_rank_correlation(neg_log_prob, err)
        out["pa_mpjpe_densest_view"] = err[rows, neg_log_prob.argmin(1)].mean().item()
    return out


def table4(args: argparse.Namespace) -> None:
    cfg, _, model = load_mesh(args.checkpoint)
    p, v = args.people, args.views
    with tempfile.TemporaryDirectory(prefix="condflow-multiview-") as tmp:
        t = time.perf_counter()
        data = render_views(cfg, p, v, cfg.seed + 3000, Path(tmp))
        print(f"rendered {p} people x {v} views in {time.perf_counter() - t:.0f} s")
    b_gt = data["betas"][:, None].expand(p, v, 10).reshape(p * v, 10)
    with torch.no_grad():
        gt = j14(model.keypoints(data["rotmat"].reshape(p * v, 24, 3, 3), b_gt)[1])
        contexts = model.context(data["images"].reshape(p * v, 3, *data["images"].shape[-2:]))
        contexts = contexts.reshape(p, v, -1)

    def evaluate(rotmat: Tensor, betas: Tensor) -> dict[str, float]:
        """Per-view joints of ``rotmat [P, V, 24, 3, 3]`` with ``betas [P, V, 10]``."""
        with torch.no_grad():
            joints = j14(model.keypoints(rotmat.reshape(p * v, 24, 3, 3),
                                         betas.reshape(p * v, 10))[1])
        return errors(joints, gt, None)

    rows: dict[str, dict[str, dict[str, float]]] = {}
    with torch.no_grad():
        flat = contexts.reshape(p * v, -1)
        mode = model.mode(flat)
    rows["single view (mode)"] = {"all views": evaluate(mode.rotmat.reshape(p, v, 24, 3, 3),
                                                        mode.betas.reshape(p, v, 10))}
    avg = rotation_average_views(model, contexts)
    avg_betas = avg.betas[:, None].expand(p, v, 10)
    rows["rotation averaging"] = {"all views": evaluate(avg.rotmat, avg_betas)}
    details: dict[str, Any] = {}
    for lam in args.consistency:
        t = time.perf_counter()
        fused = fuse_views(model, contexts, config=FusionConfig(consistency_weight=lam,
                                                                optimizer=optimizer(args)))
        rows[f"fusion, λ = {lam:g}"] = {"all views": evaluate(fused.rotmat, avg_betas)}
        details[f"fusion, λ = {lam:g}"] = {
            "seconds": time.perf_counter() - t,
            "mean_iterations": fused.iterations.float().mean().item(),
            "mean_consistency": fused.consistency.mean().item(),
            "mean_neg_log_prob": fused.neg_log_prob.mean().item()}
        print(f"fusion λ={lam:g}: {rows[f'fusion, λ = {lam:g}']['all views']}", flush=True)
    print(f"\nTable 4 (mesh, {p} synthetic people x {v} views; 14 LSP joints, mm)\n")
    print(markdown(rows, ["all views"]))
    reliability = view_reliability(model, contexts, mode, gt)
    print("\nDo the per-view densities rank the views? "
          + ", ".join(f"{k} {x:.3g}" for k, x in reliability.items()))
    write_json(Path(args.out or RESULTS / "fitting_table4_mesh.json"), {
        "table": rows, "details": details, "view_reliability": reliability,
        "checkpoint": args.checkpoint, "people": p,
        "views": v, "optimizer": asdict(optimizer(args))})


# ---------------------------------------------------------------------------------------------
# Table 4, lifting (calibrated views)


def calibrated_table4(args: argparse.Namespace, model: Any, contexts: Tensor, rot: Tensor,
                      gt: Tensor, title: str, default_out: str) -> None:
    """Single views vs the mean of the views' modes vs the mode of the product of the views'
    densities (:func:`fuse_calibrated_views`) for ``contexts [P, V, C]`` of views with camera
    rotations ``rot [P, V, 3, 3]`` and ground truth ``gt [P·V, J, 3]`` (mm, root-relative,
    each view's camera frame); every view's estimate is scored in its camera frame."""
    p, v = contexts.shape[:2]
    with torch.no_grad():
        mode = model.mode(contexts.flatten(0, 1))
    in_views = lambda world: torch.einsum("pvij,pkj->pvki", rot, world).flatten(0, 1)  # noqa: E731
    rows: dict[str, dict[str, dict[str, float]]] = {
        "single view (mode)": {"all views": errors(mode.joints_mm[:, 0], gt)}}
    t = time.perf_counter()
    fused = in_chunks(lambda sl: vars(fuse_calibrated_views(
        model, contexts[sl], rot[sl], optimizer(args))), p, args.chunk)
    seconds = time.perf_counter() - t
    rows["mean of the views' modes"] = {"all views": errors(in_views(fused["mean_of_modes"]),
                                                            gt)}
    rows["fusion (product of densities)"] = {"all views": errors(fused["joints"].flatten(0, 1),
                                                                 gt)}
    print(f"\nTable 4 ({title}, {p} synthetic people x {v} calibrated views; "
          f"{gt.shape[1]} joints, mm)\n")
    print(markdown(rows, ["all views"]))
    err = pa_mpjpe(mode.joints_mm[:, 0], gt).reshape(p, v)
    neg_log_prob = -mode.log_prob[:, 0].reshape(p, v)
    reliability = {
        "mode_log_prob_std_nats": mode.log_prob.std().item(),
        "pa_mpjpe_average_view": err.mean().item(),
        "pa_mpjpe_best_view": err.min(1).values.mean().item()}
    if model.flow.volume_depends_on_context:
        reliability["spearman_neg_mode_log_prob_vs_error"] = _within_rank_correlation(
            neg_log_prob, err)
        reliability["pa_mpjpe_densest_view"] = err[torch.arange(p), neg_log_prob.argmin(1)
                                                   ].mean().item()
    print("\nDo the per-view densities rank the views? "
          + ", ".join(f"{k} {x:.3g}" for k, x in reliability.items()))
    write_json(Path(args.out or RESULTS / default_out), {
        "table": rows, "view_reliability": reliability, "checkpoint": args.checkpoint,
        "conditional_volume": model.flow.volume_depends_on_context,
        "fusion": {"seconds": seconds, "mean_iterations": fused["iterations"].float().mean()
                   .item(), "converged": fused["converged"].float().mean().item(),
                   "mean_objective_nats": fused["objective"].mean().item()},
        "people": p, "views": v, "optimizer": asdict(optimizer(args))})


def table4_lifting(args: argparse.Namespace) -> None:
    """Table 4 on the lifting set: P people each seen by V calibrated cameras around them
    (:func:`~condflow.data.synthetic_lifting.make_multiview_lifting_set`)."""
    from condflow.body.model import BodyModel
    from condflow.data.synthetic_lifting import LiftingSetConfig, make_multiview_lifting_set
    from condflow.saving import load_with_config

    cfg, model = load_with_config(args.checkpoint)
    p, v = args.people, args.views
    data = make_multiview_lifting_set(
        LiftingSetConfig(**{**vars(cfg.data.synthetic), "size": p, "seed": cfg.seed + 3000}),
        v, BodyModel(cfg.data.body_model))
    with torch.no_grad():
        contexts = model.context(data["keypoints_2d"].flatten(0, 1)).reshape(p, v, -1)
    calibrated_table4(args, model, contexts, data["rotation"], data["joints_3d"].flatten(0, 1),
                      "lifting", "fitting_table4_lifting.json")


def table4_image_to_skeleton(args: argparse.Namespace) -> None:
    """Table 4 for an image → skeleton model: the renders of :func:`render_views` (V azimuths
    of each of P bodies), whose camera rotations are known."""
    from condflow.body.keypoints import BodyKeypoints
    from condflow.body.model import BodyModel
    from condflow.saving import load_with_config

    cfg, model = load_with_config(args.checkpoint)
    p, v = args.people, args.views
    with tempfile.TemporaryDirectory(prefix="condflow-multiview-") as tmp:
        data = render_views(cfg, p, v, cfg.seed + 3000, Path(tmp))
    keypoints = BodyKeypoints(BodyModel(cfg.data.body_model))
    with torch.no_grad():
        betas = data["betas"][:, None].expand(p, v, 10).reshape(p * v, 10)
        _, eval_joints, _ = keypoints(data["rotmat"].flatten(0, 1).to(keypoints.joint_template),
                                      betas.to(keypoints.joint_template))
        gt = (1000.0 * (eval_joints - eval_joints[:, :1])).float()
        contexts = model.context(data["images"].flatten(0, 1)).reshape(p, v, -1)
    calibrated_table4(args, model, contexts, data["view_rotation"], gt, "image → skeleton",
                      "fitting_table4_image_to_skeleton.json")


# ---------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="mode", required=True)
    for name in ("table3", "table4"):
        p = sub.add_parser(name)
        p.add_argument("--checkpoint", default=None)
        p.add_argument("--out", default=None, help="JSON path (default benchmarks/results/)")
        p.add_argument("--method", choices=("lbfgs", "adam"), default="lbfgs")
        p.add_argument("--iters", type=int, default=500)
        p.add_argument("--tol", type=float, default=1e-7)
        p.add_argument("--chunk", type=int, default=250, help="examples per batched fit")
        p.add_argument("--threads", type=int, default=None)
        if name == "table3":
            p.add_argument("--task", choices=("lifting", "mesh"), default="lifting")
            p.add_argument("--examples", type=int, default=500,
                           help="test examples (mesh: at most the test set minus validation)")
            p.add_argument("--train-steps", type=int, default=1500)
            p.add_argument("--weights", type=float, nargs="+", default=None,
                           help="candidate λ_J, chosen per method and setting on a "
                                "validation set (default: lifting 1e3 3e3 1e4 3e4, mesh "
                                "1e2 3e2 1e3 3e3)")
            p.add_argument("--val-examples", type=int, default=150)
            p.add_argument("--sigma", type=float, default=None,
                           help="Geman–McClure scale (default: lifting 0.05, mesh 0.1)")
            p.add_argument("--shape-weight", type=float, default=1.0)
            p.add_argument("--bend-weight", type=float, default=1.0)
            p.add_argument("--gmm-components", type=int, default=8)
            p.add_argument("--noise", type=float, default=0.03,
                           help="mesh: keypoint noise std, normalized crop units")
            p.add_argument("--dropout", type=float, default=0.1, help="mesh: hidden keypoints")
            p.add_argument("--outliers", type=float, default=0.05,
                           help="mesh: keypoints moved anywhere in the crop")
        else:
            p.add_argument("--task", choices=("mesh", "lifting", "image_to_skeleton"),
                           default="mesh",
                           help="mesh: uncalibrated renders, eq. 12; lifting and "
                                "image_to_skeleton: calibrated cameras, the product of the "
                                "views' densities")
            p.add_argument("--people", type=int, default=None,
                           help="default: mesh 100, lifting 500")
            p.add_argument("--views", type=int, default=4)
            p.add_argument("--consistency", type=float, nargs="+", default=[1.0, 10.0, 100.0],
                           help="mesh: the λ of eq. 12 to try")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.mode == "table3":
        lifting = args.task == "lifting"
        if args.weights is None:
            args.weights = [1e3, 3e3, 1e4, 3e4] if lifting else [1e2, 3e2, 1e3, 3e3]
        if args.sigma is None:
            args.sigma = 0.05 if lifting else 0.1
        if lifting:
            table3_lifting(args)
        else:
            if not args.checkpoint:
                raise SystemExit("--checkpoint: required for the mesh table")
            table3_mesh(args)
    else:
        if not args.checkpoint:
            raise SystemExit("--checkpoint: required for table4")
        if args.people is None:
            args.people = 500 if args.task == "lifting" else 100
        {"mesh": table4, "lifting": table4_lifting,
         "image_to_skeleton": table4_image_to_skeleton}[args.task](args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
