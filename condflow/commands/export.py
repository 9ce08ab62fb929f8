"""``condflow export MODEL --out PATH [--format pt2|onnx|torchscript] [--samples N]``."""

from __future__ import annotations

import argparse

from condflow.commands import outputs as output_guard
from condflow.export import export_file, format_for_path, read_metadata

__all__ = ["register", "run"]


def run(args: argparse.Namespace) -> int:
    fmt = args.format or format_for_path(args.out)
    path = export_file(args.model, output_guard(args).claim(args.out), fmt, args.samples)
    meta = read_metadata(path)
    inputs = ", ".join(f"{k} {v}" for k, v in meta["inputs"].items())
    outputs = ", ".join(f"{k} {v}" for k, v in meta["outputs"].items())
    print(f"{fmt} {meta['graph']}: {path}\n  inputs: {inputs}\n  outputs: {outputs}\n"
          "  (input normalization and output units: condflow.export.read_metadata)")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="export a model's mode predictor (or, with --samples, its sampler) as a "
        "torch.export program (.pt2), ONNX, or TorchScript",
        description="Export a model's mode predictor (or, with --samples, its sampler) with "
        "a dynamic batch axis, verified against the eager model. pt2: torch.export's "
        "ExportedProgram (torch.export.load(path).module()); onnx: the torch.export-based "
        "ONNX exporter (needs: pip install onnx onnxscript onnxruntime); torchscript: "
        "torch.jit.trace, a fallback. The file's metadata records the input normalization "
        "and the output names and units.",
    )
    p.add_argument("model", help="model file (condflow.save) or training checkpoint")
    p.add_argument("--out", required=True, help="output file (.pt2, .onnx or .pt)")
    p.add_argument(
        "--format",
        choices=("pt2", "onnx", "torchscript"),
        default=None,
        help="default: from the suffix of --out (.pt2, .onnx, .pt)",
    )
    p.add_argument(
        "--samples",
        type=int,
        default=None,
        metavar="N",
        help="export the sampler: inputs and noise [B, N, d] → mode, N samples, log p",
    )
    p.set_defaults(func=run)
