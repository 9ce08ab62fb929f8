"""Flow micro-benchmarks: condflow's ConditionalGlow against the same architecture in nflows
and zuko (see peers.py), on the ProHMR-sized flow and the lifting flow.

Cases are (flow, op, B contexts, n samples per context). All contenders of a case are timed
round-robin in one process (medians of interleaved repeats). Each case reports matmul FLOPs,
achieved FLOP/s and its share of the ``torch.mm`` rate measured in the same run (the roofline).
Fast paths (bf16 autocast, TF32, torch.compile) are checked against a float64 reference
before they are timed. Run ``python benchmarks/bench_flow.py --help``.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import re
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (
    FlowShape,
    compile_for,
    machine,
    matmul_rate,
    median,
    path_context,
    rel_err,
    time_interleaved,
)
from peers import NflowsGlow, ZukoGlow

from condflow import ConditionalGlow, CouplingNet
from condflow._checks import set_finite_checks

FLOWS = {"prohmr": FlowShape(features=144, context=2048), "lifting": FlowShape(48, 1024)}
OPS = ("log_prob", "sample", "sample_and_log_prob", "mode")
PEERS = {"nflows": NflowsGlow, "zuko": ZukoGlow}
# Relative error allowed for each path against float64 (see README: how errors are measured).
TOLERANCE = {"fp32": 1e-4, "tf32": 1e-2, "bf16": 3e-2, "compile": 1e-4, "compile+bf16": 3e-2}
CPU_MAX_ROWS = 6400  # default CPU grid: B·n up to this (--full lifts it)


@dataclass(frozen=True)
class Case:
    flow: str
    op: str
    B: int
    n: int | None  # None for mode

    @property
    def name(self) -> str:
        return f"{self.flow}/{self.op}/B{self.B}" + (f"/n{self.n}" if self.n else "")

    @property
    def rows(self) -> int:
        return self.B * (self.n or 1)


def make_cases(args: argparse.Namespace, device: torch.device) -> list[Case]:
    if args.quick:
        cases = [Case(f, op, 16, 10) for f in FLOWS for op in ("log_prob", "sample_and_log_prob")]
        cases += [Case(f, "mode", 16, None) for f in FLOWS]
    else:
        cases = [Case(f, op, b, None if op == "mode" else n)
                 for f in args.flows for op in args.ops for b in args.B
                 for n in ([None] if op == "mode" else args.n)]
        cases = list(dict.fromkeys(cases))
        if device.type == "cpu" and not args.full:
            cases = [c for c in cases if c.rows <= CPU_MAX_ROWS]
    return [c for c in cases if re.search(args.cases, c.name)]


# -- models -----------------------------------------------------------------------------------
def randomize_(module: nn.Module, seed: int) -> nn.Module:
    """Weights of a plausible trained flow (the same recipe for every implementation): every
    linear layer at PyTorch's default init (so the near-zero output layers matter), every
    vector parameter (ActNorm, batch norm, LU diagonal) moved by 0.05·N(0, 1); LU matrices
    keep their well-conditioned init."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.Linear):
                m.reset_parameters()
        linear = {id(p) for m in module.modules() if isinstance(m, nn.Linear)
                  for p in m.parameters()}
        for name, p in module.named_parameters():  # nflows keeps LU off-diagonals flat
            if id(p) not in linear and p.dim() == 1 and not name.endswith("_entries"):
                p.add_(0.05 * torch.randn(p.shape, generator=gen))
    return module.eval()


def build(shape: FlowShape, device: torch.device) -> dict[str, nn.Module]:
    net = CouplingNet(hidden_features=shape.hidden, num_residual_blocks=shape.residual_blocks)
    flows = {"condflow": ConditionalGlow(shape.features, shape.context, num_blocks=shape.blocks,
                                         coupling_net=net)}
    for name, cls in PEERS.items():
        flows[name] = cls(shape.features, shape.context, num_blocks=shape.blocks,
                          hidden=shape.hidden, num_residual_blocks=shape.residual_blocks)
    return {k: randomize_(f, seed=i).to(device) for i, (k, f) in enumerate(flows.items())}


def param_counts(flow: nn.Module) -> tuple[int, int]:
    """(stored, effective): condflow's LU stores L and U as full [d, d] tensors of which
    only the strict triangles are used."""
    stored = sum(p.numel() for p in flow.parameters())
    unused = sum(p.numel() // 2 + p.shape[0] // 2 for n, p in flow.named_parameters()
                 if n.endswith((".lower", ".upper")))
    return stored, stored - unused


# -- paths ------------------------------------------------------------------------------------
def paths_for(args: argparse.Namespace, device: torch.device) -> list[str]:
    paths = ["fp32", "bf16"] + (["tf32"] if device.type == "cuda" else [])
    if args.compile:
        paths += ["compile", "compile+bf16"]
    return [p for p in paths if re.search(args.paths, p)]


def op_fn(flow: nn.Module, op: str, path: str, device: torch.device, compiled: dict):
    """A callable ``(x, context, n) -> output`` running ``op`` on ``path``."""
    method = {"log_prob": lambda x, c, n: flow.log_prob(x, c),
              "sample": lambda x, c, n: flow.sample(n, c),
              "sample_and_log_prob": lambda x, c, n: flow.sample_and_log_prob(n, c),
              "mode": lambda x, c, n: flow.mode(c)}[op]
    if path.startswith("compile"):
        key = (id(flow), op)
        if key not in compiled:
            compiled[key] = compile_for(method, device)
        method = compiled[key]

    def run(x: Tensor, c: Tensor, n: int):
        with path_context(path, device):
            return method(x, c, n)
    return run


def path_error(flow: nn.Module, ref: nn.Module, op: str, path: str,
               shape: FlowShape, device: torch.device, compiled: dict) -> float:
    """Error of ``op`` on ``path`` against the float64 copy ``ref``, on 8 contexts × 25
    samples. log_prob: at the same inputs. sample, mode: the same noise pushed through both.
    sample_and_log_prob: the returned log-prob vs the samples' log-prob recomputed in
    float64."""
    gen = torch.Generator(device=device).manual_seed(0)
    c = torch.randn(8, shape.context, device=device, generator=gen)
    noise = torch.randn(8, 25, shape.features, device=device, generator=gen)
    with torch.inference_mode():
        x = ref.generate(noise.double(), c.double())[0].float()
    run = op_fn(flow, op, path, device, compiled)
    if op == "log_prob":
        return rel_err(run(x, c, 25), ref.log_prob(x.double(), c.double()))
    if op == "sample_and_log_prob":
        xs, lp = run(x, c, 25)
        return rel_err(lp, ref.log_prob(xs.double(), c.double()))
    if op == "mode":
        return rel_err(run(x, c, 25), ref.mode(c.double()))
    with path_context(path, device):
        out = flow.generate(noise, c)[0]
    return rel_err(out, ref.generate(noise.double(), c.double())[0])


def self_consistency(flow: nn.Module, shape: FlowShape, device: torch.device) -> float:
    """fp32: sample_and_log_prob's log-prob vs log_prob of its own samples."""
    c = torch.randn(8, shape.context, device=device)
    with torch.inference_mode():
        x, lp = flow.sample_and_log_prob(25, c)
        return rel_err(lp, flow.log_prob(x, c))


# -- main -------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ints = lambda s: [int(v) for v in s.split(",")]  # noqa: E731
    p.add_argument("--flows", type=lambda s: s.split(","), default=list(FLOWS))
    p.add_argument("--ops", type=lambda s: s.split(","), default=list(OPS))
    p.add_argument("--B", type=ints, default=[1, 64, 1024], help="contexts per call")
    p.add_argument("--n", type=ints, default=[1, 25, 100], help="samples per context")
    p.add_argument("--cases", default="", help="regex over case names, e.g. 'prohmr/sample'")
    p.add_argument("--paths", default="", help="regex over paths (fp32, bf16, tf32, compile…)")
    p.add_argument("--peers", type=lambda s: [v for v in s.split(",") if v],
                   default=list(PEERS), help="comma list; '' for none")
    p.add_argument("--quick", action="store_true", help="a small subset (< 2 min on CPU)")
    p.add_argument("--full", action="store_true", help=f"on CPU, also B·n > {CPU_MAX_ROWS}")
    p.add_argument("--compile", action="store_true", help="add torch.compile paths")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--budget", type=float, default=30.0, help="seconds per case (≥ 3 rounds)")
    p.add_argument("--mm-rows", type=int, default=6400, help="rows of the roofline matmul")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--json", default=None, help="default benchmarks/results/flow_<device>.json")
    args = p.parse_args(argv)
    if args.quick:
        args.repeats = min(args.repeats, 3)
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    device = torch.device(args.device)
    set_finite_checks(False)  # peers do not check inputs either; see README
    torch._dynamo.config.recompile_limit = 64  # one compiled lambda per op serves every shape
    cases = make_cases(args, device)
    paths = paths_for(args, device)
    info = machine() | {"device": str(device)}
    print(" | ".join(f"{k}: {v}" for k, v in info.items()))

    rates = {}
    for path in paths:
        dtype = torch.bfloat16 if path.endswith("bf16") else torch.float32
        with path_context(path, device):
            rates[path] = matmul_rate(args.mm_rows, 1024, device, dtype)
        print(f"roofline {path}: torch.mm [{args.mm_rows}, 1024] x [1024, 1024] "
              f"{rates[path] / 1e9:.1f} GFLOP/s")

    results, checks, compiled = [], {}, {}
    for flow_name in dict.fromkeys(c.flow for c in cases):
        shape = FLOWS[flow_name]
        flows = {k: v for k, v in build(shape, device).items()
                 if k == "condflow" or k in args.peers}
        ref = copy.deepcopy(flows["condflow"]).double()
        print(f"\n## {flow_name}: {asdict(shape)}")
        for name, flow in flows.items():
            stored, effective = param_counts(flow)
            err = self_consistency(flow, shape, device)
            checks[f"{flow_name}/{name}/self_consistency"] = err
            print(f"{name:9s} parameters {stored:,} (effective {effective:,}); "
                  f"sample_and_log_prob vs log_prob rel err {err:.1e}")
        errors = {}
        for op in dict.fromkeys(c.op for c in cases if c.flow == flow_name):
            for path in paths:
                err = path_error(flows["condflow"], ref, op, path, shape, device, compiled)
                errors[op, path] = err
                checks[f"{flow_name}/{op}/{path}"] = err
                ok = err <= TOLERANCE[path]
                print(f"check {op:20s} {path:13s} rel err vs float64 {err:.1e} "
                      f"(tol {TOLERANCE[path]:.0e}) {'ok' if ok else 'FAILED: not timed'}")
        print("\n| case | impl | path | ms | GFLOP | GFLOP/s | % roof | × nflows | × zuko "
              "| rel err |\n|---|---|---|---:|---:|---:|---:|---:|---:|---:|")
        for case in (c for c in cases if c.flow == flow_name):
            results += run_case(case, shape, flows, paths, errors, rates, args, device, compiled)

    out = Path(args.json or Path(__file__).parent / "results" / f"flow_{device.type}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"machine": info, "roofline_flops": rates, "checks": checks,
                               "tolerance": TOLERANCE, "results": results}, indent=1))
    print(f"\nwrote {out}")


def run_case(case: Case, shape: FlowShape, flows: dict[str, nn.Module], paths: list[str],
             errors: dict, rates: dict, args: argparse.Namespace, device: torch.device,
             compiled: dict) -> list[dict]:
    gen = torch.Generator(device=device).manual_seed(1)
    c = torch.randn(case.B, shape.context, device=device, generator=gen)
    n = case.n or 1
    with torch.inference_mode():
        x = flows["condflow"].sample(n, c)
    fns = {}
    for name, flow in flows.items():
        for path in (paths if name == "condflow" else ["fp32"]):
            if name == "condflow" and errors[case.op, path] > TOLERANCE[path]:
                continue
            run = op_fn(flow, case.op, path, device, compiled)
            fns[name, path] = lambda run=run: run(x, c, n)
    times = time_interleaved(fns, device, args.repeats, budget_s=args.budget)

    condflow = flows["condflow"]
    chunks = 1 if case.op in ("log_prob", "mode") else math.ceil(n / max(1, condflow.max_rows
                                                                         // case.B))
    rows = []
    for (name, path), ts in times.items():
        t = median(ts)
        shared = name == "condflow"
        flop = shape.flops(case.B * chunks if shared else case.rows, case.rows)
        speed = {p: median(times[p, "fp32"]) / t for p in PEERS if (p, "fp32") in times}
        row = {"case": case.name, **asdict(case), "impl": name, "path": path, "ms": 1e3 * t,
               "times_s": ts, "gflop": flop / 1e9, "gflops": flop / t / 1e9,
               "roofline_pct": 100 * flop / t / rates[path],
               **{f"speedup_vs_{p}": s for p, s in speed.items()},
               "rel_err": errors[case.op, path] if shared else None}
        rows.append(row)
        fmt = lambda v: f"{v:.2f}" if v is not None else "—"  # noqa: E731
        err = f"{row['rel_err']:.1e}" if shared else "—"
        print(f"| {case.name} | {name} | {path} | {row['ms']:.1f} | {row['gflop']:.2f} "
              f"| {row['gflops']:.1f} | {row['roofline_pct']:.0f} | {fmt(speed.get('nflows'))} "
              f"| {fmt(speed.get('zuko'))} | {err} |", flush=True)
    return rows


if __name__ == "__main__":
    main()
