"""``condflow export MODEL --format onnx|torchscript --out PATH [--samples N]``."""

from __future__ import annotations

import argparse

from condflow.commands import outputs as output_guard


def run(args: argparse.Namespace) -> int:
    from condflow.export import export_file, read_metadata

    path = export_file(args.model, output_guard(args).claim(args.out), args.format, args.samples)
    meta = read_metadata(path)
    inputs = ", ".join(f"{k} {v}" for k, v in meta["inputs"].items())
    outputs = ", ".join(f"{k} {v}" for k, v in meta["outputs"].items())
    print(f"{args.format} {meta['graph']}: {path}\n  inputs: {inputs}\n  outputs: {outputs}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="export a model's mode predictor (or, with --samples, its sampler) to ONNX or "
        "TorchScript",
    )
    p.add_argument("model", help="model file (condflow.save) or training checkpoint")
    p.add_argument("--format", choices=("onnx", "torchscript"), required=True)
    p.add_argument("--out", required=True, help="output file (.onnx or .pt)")
    p.add_argument(
        "--samples",
        type=int,
        default=None,
        metavar="N",
        help="export the sampler: inputs and noise [B, N, d] → mode, N samples, log p",
    )
    p.set_defaults(func=run)
