"""``condflow predict MODEL INPUTS... [--out DIR] [--samples N]``: run a trained model on files.

What a model reads follows from its encoder, what it writes from its output space (a
skeleton: root-relative 3D joints in mm; SMPL: body, keypoints and camera). Keypoint models
read 2D keypoints — OpenPose BODY_25 JSON, COCO-style JSON (17 keypoints) or plain
``.npy``/``.csv`` arrays, read by :mod:`condflow.data.keypoint_files` and mapped to the
encoder's joints (Human3.6M-16, or SPIN's 24 for keypoints → mesh). Pixel coordinates are
normalized by the size of the image they belong to: ``--image-size``, else read from
``<stem>.jpg``/``.png`` given among the inputs or lying next to ``<stem>[_keypoints].json``,
else (with a warning) the training images' size; ``<stem>.json`` records the size used. Image
models read images, cropped around each person of an OpenPose JSON found next to the image
(``<stem>_keypoints.json`` or ``<stem>.json``, or given among the inputs), else the whole
image, like the evaluation crop of :mod:`condflow.data.image_datasets`; models imported from
ProHMR (``condflow import-prohmr``) get ProHMR demo's box and crop instead
(:mod:`condflow.data.prohmr_crop`).

For every input ``<stem>.<ext>`` the command writes ``<stem>.npz`` (arrays), ``<stem>.json``
(the same as lists, without vertices) and ``<stem>.png`` (a picture) into ``--out``: the mode
f(0; c) and ``--samples`` samples with their log-densities, per person. Directories are
expanded to the files they hold.

Per-person confidence, two numbers (``[P]`` each):

- ``spread_mm``: mean distance of the samples' joints from the mode's (mm; needs
  ``--samples`` ≥ 1). It varies with every model: larger means less certain.
- ``mode_log_prob`` (mesh: ``log_prob``): log p(mode | c). With ProHMR's Glow blocks it is
  the same number for every input (their log|det J| depends neither on z nor on c), so it
  says nothing about confidence; a model trained with ``model.conditional_volume: true``
  gives each input its own volume, and then a higher value means a more concentrated
  density. ``volume_depends_on_context`` in the JSON says which case applies.

A missing or unreadable input is reported on stderr by name and the others still run; the
exit status is 1 if any input failed. An output that would replace an input, or an
existing file (without ``--overwrite``), counts as a failure of that input.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from tqdm import tqdm

from condflow._outputs import OutputGuard
from condflow._progress import progress, set_progress
from condflow.commands import outputs
from condflow.data.image_datasets import person_boxes, person_crop
from condflow.data.keypoint_files import keypoints_json_for, load_keypoints
from condflow.data.prohmr_crop import prohmr_inputs
from condflow.data.screen import lifting_inputs
from condflow.distributed import resolve_device
from condflow.heads.base import Head
from condflow.heads.prohmr import MeshHead
from condflow.metrics import sample_spread
from condflow.saving import load_head
from condflow.tasks import describe, task_for
from condflow.viz.mesh import plot_mesh_predictions
from condflow.viz.skeleton import plot_skeleton_rows, space_layout

__all__ = ["register", "run"]

KEYPOINT_SUFFIXES = (".json", ".npy", ".csv")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")


# -- inputs -----------------------------------------------------------------------------------
def expand_inputs(paths: list[str], suffixes: tuple[str, ...]) -> list[Path]:
    """Files named by ``paths``, directories replaced by their files with ``suffixes``
    (sorted). Missing paths are kept, to be reported when read."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out.extend(sorted(f for f in p.iterdir() if f.suffix.lower() in suffixes))
        else:
            out.append(p)
    return out


# -- outputs ----------------------------------------------------------------------------------
def _unique_stem(path: Path, taken: set[str]) -> str:
    stem, i = path.stem, 1
    while stem in taken:
        i += 1
        stem = f"{path.stem}_{i}"
    taken.add(stem)
    return stem


def _write(s: Settings, stem: str, arrays: dict[str, Tensor | np.ndarray], info: dict) -> None:
    arrays = {k: np.asarray(v.detach().cpu() if isinstance(v, Tensor) else v)
              for k, v in arrays.items()}
    s.outputs.write(s.out / f"{stem}.npz", lambda f: np.savez(f, allow_pickle=True, **arrays))
    listed = {k: np.round(v, 6).tolist() for k, v in arrays.items() if "vertices" not in k}
    s.outputs.write_text(s.out / f"{stem}.json", json.dumps({**info, **listed}))


def _claim(s: Settings, stem: str) -> None:
    """Refuse, before any work, outputs that would replace an input or an existing file."""
    for suffix in (".npz", ".json") + ((".png",) if s.picture else ()):
        s.outputs.claim(s.out / f"{stem}{suffix}")


# -- running ----------------------------------------------------------------------------------
@dataclass
class Settings:
    out: Path
    num_samples: int
    seed: int
    device: torch.device
    picture: bool
    picture_rows: int
    image_size: tuple[float, float] | None  # --image-size; None: from the image, else training
    training_image_size: tuple[float, float]
    normalized: bool
    center: bool
    min_confidence: float
    outputs: OutputGuard
    crop: str = "condflow"  # "prohmr": ProHMR demo's box and crop (models imported from it)


def paired_image(keypoints: Path, given: dict[str, Path]) -> Path | None:
    """The image a keypoint file was detected on: one given among the inputs or lying next to
    it, named like the file (OpenPose's ``<stem>_keypoints.json`` belongs to ``<stem>.jpg``)."""
    stems = [keypoints.stem] + ([keypoints.stem[: -len("_keypoints")]]
                                if keypoints.stem.endswith("_keypoints") else [])
    for stem in stems:
        if stem in given:
            return given[stem]
        for suffix in IMAGE_SUFFIXES:
            for candidate in (keypoints.with_name(stem + suffix),
                              keypoints.with_name(stem + suffix.upper())):
                if candidate.is_file():
                    return candidate
    return None


def image_size_for(
    keypoints: Path, s: Settings, images: dict[str, Path]
) -> tuple[tuple[float, float], str]:
    """The image size ``(W, H)`` (pixels) that normalizes ``keypoints`` and where it came
    from: ``--image-size``, else the file's image (:func:`paired_image`), else the training
    images' size, with a warning on stderr."""
    if s.image_size is not None:
        return s.image_size, "--image-size"
    if s.normalized:
        return s.training_image_size, "unused (--normalized)"
    image = paired_image(keypoints, images)
    if image is not None:
        with Image.open(image) as im:  # reads the header only
            return (float(im.width), float(im.height)), str(image)
    w, h = s.training_image_size
    tqdm.write(f"condflow predict: warning: {keypoints}: no --image-size and no image named "
               f"like it; normalizing by the training images' size {w:g}x{h:g} px",
               file=sys.stderr)
    return s.training_image_size, "training images (no image given)"


def keypoint_inputs(model: Head, path: Path, s: Settings, info: dict,
                    images: dict[str, Path], boxes_from: Path | None
                    ) -> tuple[Tensor, dict[str, Any], dict]:
    """The inputs ``[P, K, 3]`` of one keypoint file (K = the encoder's keypoints), the
    arrays and info to record with them."""
    kp = load_keypoints(path)
    size, size_from = image_size_for(path, s, images)
    info = {**info, "image_size": list(size), "image_size_from": size_from}
    x = lifting_inputs(kp, size, s.normalized, s.center, s.min_confidence,
                       model.input_shape[0]).to(s.device)
    return x, {"keypoints_2d": x}, info


def image_inputs(model: Head, path: Path, s: Settings, info: dict,
                 images: dict[str, Path], boxes_from: Path | None
                 ) -> tuple[Tensor, dict[str, Any], dict]:
    """The crops ``[P, 3, R, R]`` of the people of one image (R the encoder's crop size),
    their boxes and the info to record with them."""
    if not path.is_file():
        raise FileNotFoundError(f"no such file {path}")
    with Image.open(path) as im:
        img = np.asarray(im.convert("RGB"))
    res = model.input_shape[-1]
    if s.crop == "prohmr":
        people = None if boxes_from is None else load_keypoints(boxes_from).keypoints
        crops, centers, sides = prohmr_inputs(img, people, res)
        boxes = list(zip(centers, sides / 200.0, strict=True))
        x = torch.from_numpy(crops).to(s.device)
    else:
        boxes = person_boxes(boxes_from, img.shape[1], img.shape[0])
        person_crops = [person_crop(img, c, sc, res) for c, sc in boxes]
        x = torch.from_numpy(np.stack(person_crops).transpose(0, 3, 1, 2)).float().to(s.device)
    arrays: dict[str, Any] = {
        "box_center": np.array([c for c, _ in boxes]).reshape(-1, 2),
        "box_scale": np.array([sc for _, sc in boxes]),
    }
    return x, arrays, {**info, "boxes_from": None if boxes_from is None else str(boxes_from)}


def skeleton_outputs(model: Head, x: Tensor, stem: str, s: Settings, arrays: dict[str, Any],
                     info: dict) -> None:
    """The joints of a joint-space head's mode and samples for inputs ``x``; writes
    ``stem``.npz/.json/.png into ``s.out``."""
    samples = log_prob = None
    with torch.no_grad():
        c = model.context(x)
        arrays["mode"] = model.mode(c).joints_mm[:, 0]
        if model.probabilistic:  # else the regression baseline: one deterministic prediction
            arrays["mode_log_prob"] = model.log_prob(arrays["mode"], c)
            if s.num_samples > 0:
                gen = torch.Generator(device=s.device).manual_seed(s.seed)
                samples, log_prob = model.sample_and_log_prob(s.num_samples, c, gen)
                arrays["samples"], arrays["log_prob"] = samples, log_prob
                arrays["spread_mm"] = sample_spread(samples, arrays["mode"])
            info["volume_depends_on_context"] = model.volume_depends_on_context
    info = {**info, "joint_names": list(model.space.joint_names),
            "units": "millimetres, root-relative, camera frame; log_prob over mm"}
    _write(s, stem, arrays, info)
    if s.picture:
        r = s.picture_rows
        plot_skeleton_rows(x[:r].cpu(), arrays["mode"][:r].cpu(), s.out / f"{stem}.png",
                           None if samples is None else samples[:r].cpu(),
                           None if log_prob is None else log_prob[:r].cpu(),
                           point_label=model.point_label, input_kind=model.input_kind,
                           layout=space_layout(model.space))


def mesh_outputs(model: MeshHead, x: Tensor, stem: str, s: Settings, arrays: dict[str, Any],
                 info: dict) -> None:
    """The body, keypoints and camera of an SMPL head's mode and samples for inputs ``x``;
    writes ``stem``.npz/.json/.png into ``s.out``."""
    fields = ("vertices", "eval_joints", "keypoints_2d", "rotmat", "betas", "cam", "log_prob")
    with torch.no_grad():
        c = model.context(x)
        mode = model.mode(c, vertices=True)
        arrays.update({f"mode_{f}" if f == "keypoints_2d" and f in arrays else f:
                       getattr(mode, f)[:, 0] for f in fields})
        if s.num_samples > 0:
            gen = torch.Generator(device=s.device).manual_seed(s.seed)
            samples = model.sample(s.num_samples, c, gen, vertices=True)
            arrays.update({f"sample_{f}": getattr(samples, f) for f in fields
                           if f not in ("betas", "cam")})
            arrays["spread_mm"] = 1000.0 * sample_spread(samples.eval_joints,
                                                         mode.eval_joints[:, 0])
        if model.probabilistic:
            info["volume_depends_on_context"] = model.volume_depends_on_context
    info = {**info,
            "units": "metres, body frame (vertices, eval_joints); keypoints_2d in normalized "
            "crop coordinates; cam = weak-perspective (s, tx, ty); log_prob over the 6D pose; "
            "vertices in the .npz only"}
    _write(s, stem, arrays, info)
    if s.picture:
        plot_mesh_predictions(model, x[: s.picture_rows], str(s.out / f"{stem}.png"),
                              num_samples=min(s.num_samples, 3), seed=s.seed)


def run(args: argparse.Namespace) -> int:
    if args.samples < 0:
        raise ValueError(f"--samples: expected an integer >= 0, got {args.samples}")
    if args.picture_rows < 1:
        raise ValueError(f"--picture-rows: expected an integer >= 1, got {args.picture_rows}")
    set_progress(not args.no_progress)
    device = resolve_device(args.device, arg="--device")
    cfg, model = load_head(args.model, device)
    readers = {"keypoints_2d": "keypoint files", "images": "images"}
    if model.input_kind not in readers:
        raise ValueError(f"model: predict reads {' or '.join(readers.values())}; this "
                         f"{type(model).__name__} reads {model.input_kind}")
    reads_keypoints = model.input_kind == "keypoints_2d"
    guard = outputs(args)
    out = guard.directory(args.out)
    image_size = None
    if args.image_size:
        if len(args.image_size) > 2 or min(args.image_size) <= 0:
            raise ValueError(f"--image-size: expected W [H] > 0, got {args.image_size}")
        image_size = (args.image_size[0], args.image_size[-1])
    side = float(task_for(cfg).keypoint_camera()[0])  # the training images' size
    center = (args.center if args.center is not None
              else task_for(cfg).source.root_centred_inputs)
    crop = "prohmr" if getattr(cfg.model.space, "flow_convention", None) == "prohmr" else "condflow"
    s = Settings(out, args.samples, args.seed, device, not args.no_picture, args.picture_rows,
                 image_size, (side, side), args.normalized, center, args.min_confidence, guard,
                 crop)
    if reads_keypoints:
        files = expand_inputs(args.inputs, KEYPOINT_SUFFIXES + IMAGE_SUFFIXES)
        images = {f.stem: f for f in files if f.suffix.lower() in IMAGE_SUFFIXES}
        files = [f for f in files if f.suffix.lower() not in IMAGE_SUFFIXES]
        boxes: dict[str, Path] = {}
    else:
        files = expand_inputs(args.inputs, IMAGE_SUFFIXES + (".json",))
        boxes = {f.stem: f for f in files if f.suffix.lower() == ".json"}
        images = {}
        files = [f for f in files if f.suffix.lower() != ".json"]
    if not files:
        raise ValueError("INPUTS: no input files found")
    read = keypoint_inputs if reads_keypoints else image_inputs
    guard.add_inputs([*files, *boxes.values()])
    failed: list[Path] = []
    taken: set[str] = set()
    for path in progress(files, desc="predict", unit="file"):
        stem = _unique_stem(path, taken)
        info = {"input": str(path), "model": str(args.model), "configuration": describe(cfg),
                "num_samples": s.num_samples, "seed": s.seed}
        try:
            box = None if reads_keypoints else keypoints_json_for(path, boxes)
            guard.add_inputs([box] if box else [])
            _claim(s, stem)
            x, arrays, info = read(model, path, s, info, images, box)
            if "joints" in model.mode_outputs:  # a joint space: joints in mm
                skeleton_outputs(model, x, stem, s, arrays, info)
            else:  # the SMPL space: body, keypoints and camera
                mesh_outputs(cast(MeshHead, model), x, stem, s, arrays, info)
        except Exception as err:  # noqa: BLE001 - report the file by name and go on
            failed.append(path)
            message = str(err) if str(path) in str(err) else f"{path}: {err}"
            tqdm.write(f"condflow predict: {message}", file=sys.stderr)
    done = len(files) - len(failed)
    print(f"predictions for {done} of {len(files)} input(s) in {out}"
          + (f"; failed: {', '.join(map(str, failed))}" if failed else ""))
    return 1 if failed else 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "predict",
        help="run a trained model on keypoint files or images (what its encoder reads)",
        description="Keypoint models read 2D keypoints (OpenPose BODY_25 JSON, COCO JSON, "
        ".npy/.csv); image models read images (cropped around the people of an OpenPose JSON "
        "named <stem>_keypoints.json or <stem>.json, else whole). Writes <stem>.npz, .json and "
        ".png per input: the mode and N samples with log-densities, and a per-person "
        "confidence (spread_mm; mode_log_prob varies only for conditional-volume models).",
    )
    p.add_argument("model", help="model file (condflow.save) or training checkpoint")
    p.add_argument("inputs", nargs="+", metavar="INPUTS", help="files or directories")
    p.add_argument("--out", default="predictions", help="output folder (default: predictions)")
    p.add_argument("--samples", type=int, default=10, metavar="N",
                   help="samples per person besides the mode (default 10; 0: mode only)")
    p.add_argument("--seed", type=int, default=0, help="seed of the samples")
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto (default cpu)")
    g = p.add_argument_group("lifting inputs")
    g.add_argument("--image-size", type=float, nargs="+", metavar=("W", "H"),
                   help="image size in pixels, for normalizing coordinates (default: read "
                   "from the image the keypoints belong to, <stem>.jpg/.png given among the "
                   "inputs or next to <stem>[_keypoints].json; without one, the training "
                   "images' size, with a warning); the size used is recorded in <stem>.json")
    g.add_argument("--normalized", action="store_true",
                   help="coordinates are already normalized model inputs")
    g.add_argument("--min-confidence", type=float, default=0.1,
                   help="keypoints below this confidence count as hidden (default 0.1)")
    g.add_argument("--center", dest="center", action="store_true", default=None,
                   help="move the hip to the image centre (default for models trained on "
                   "synthetic data, whose cameras look at the hip)")
    g.add_argument("--no-center", dest="center", action="store_false")
    o = p.add_argument_group("output")
    o.add_argument("--no-picture", action="store_true")
    o.add_argument("--picture-rows", type=int, default=4,
                   help="people shown per picture (default 4)")
    o.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run)
