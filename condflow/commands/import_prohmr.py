"""``condflow import-prohmr CKPT OUT [--model-cfg YAML] [--body-model SMPL] [--overwrite]``:
turn ProHMR's checkpoint into a condflow one-file model (:mod:`condflow.interop.prohmr`)."""

from __future__ import annotations

import argparse

from condflow.commands import outputs
from condflow.interop.prohmr import import_prohmr_file

__all__ = ["register", "run"]


def run(args: argparse.Namespace) -> int:
    out = outputs(args).claim(args.out, "OUT")  # never an input, never another's file
    result = import_prohmr_file(args.ckpt, out, args.model_cfg, args.body_model, overwrite=True)
    s = result.settings
    print(f"ProHMR model (ResNet-{s.backbone_depth}, flow {s.flow_blocks} x "
          f"{s.flow_hidden} x {s.flow_residual_blocks}, context {s.context_features}, "
          f"{s.image_size} px, f = {s.focal_length:g} px) -> {args.out}")
    for note in result.notes:
        print(f"  note: {note}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "import-prohmr",
        help="convert a ProHMR checkpoint (.ckpt) into a condflow model file",
        description="Reads ProHMR's Lightning checkpoint with torch.load(weights_only=True) "
        "and writes a condflow one-file model computing the same backbone features, flow "
        "(log-densities, samples, mode), shape and camera. The discriminator and SMPL buffers "
        "of the checkpoint are ignored.",
    )
    p.add_argument("ckpt", metavar="CKPT", help="ProHMR checkpoint (.ckpt / .pt)")
    p.add_argument("out", metavar="OUT", help="condflow model file to write")
    p.add_argument("--model-cfg", default=None, metavar="YAML",
                   help="ProHMR's model config (its demo's --model_cfg); default: ProHMR's "
                   "prohmr.yaml settings (224 px, focal length 5000 px)")
    p.add_argument("--body-model", default=None, metavar="SMPL",
                   help="SMPL model file or folder recorded in the model's config (default: "
                   "$CONDFLOW_SMPL_PATH, else the synthetic body model)")
    p.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    p.set_defaults(func=run)
