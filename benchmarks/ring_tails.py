"""Sample tails of ConditionalGlow on a ring: p(x | c) with ‖x‖ = c.

Data: c ~ U(0.5, 2), θ ~ U(0, 2π), x = c (cos θ, sin θ) + N(0, 0.05² I), so the support
ends near radius 2.15. Each variant trains ``ConditionalGlow(2, 1)`` (4 blocks, width
``--hidden``) by maximum likelihood with Adam, then draws ``--samples`` samples at each of
64 contexts evenly spread over [0.5, 2] in eval mode and reports the fraction beyond radius
3, the largest radius, and the mean test log-likelihood (fresh data). To see where tail
samples come from it also reports ‖z‖ of the tail samples and the flow's ActNorm scales.

    python benchmarks/ring_tails.py                     # all variants, default steps
    python benchmarks/ring_tails.py --variants default,shift_bound=2 --steps 500

Writes ``benchmarks/results/ring_tails.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine

from condflow import ConditionalGlow, CouplingNet

VARIANTS: dict[str, dict] = {
    "default": {},
    "lr=1e-4": {"lr": 1e-4},
    "lr=3e-3": {"lr": 3e-3},
    "layer_norm": {"batch_norm": "layer"},
    "no_norm": {"batch_norm": "none"},
    "shift_bound=1": {"shift_bound": 1.0},
    "shift_bound=2": {"shift_bound": 2.0},
    "shift_bound=2+layer_norm": {"shift_bound": 2.0, "batch_norm": "layer"},
}
TAIL_RADIUS = 3.0


def ring(n: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``(x [n, 2], c [n, 1])`` from the ring distribution."""
    c = 0.5 + 1.5 * torch.rand(n, 1, generator=gen)
    theta = 2 * math.pi * torch.rand(n, generator=gen)
    x = c * torch.stack([theta.cos(), theta.sin()], 1) + 0.05 * torch.randn(n, 2, generator=gen)
    return x, c


def run(name: str, steps: int, hidden: int, samples: int, seed: int) -> dict:
    opts = dict(VARIANTS[name])
    lr = opts.pop("lr", 1e-3)
    net = CouplingNet(hidden_features=hidden, batch_norm=opts.pop("batch_norm", "batch"))
    torch.manual_seed(seed)
    flow = ConditionalGlow(2, 1, num_blocks=4, coupling_net=net, seed=seed, **opts)
    opt = torch.optim.Adam(flow.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    start = time.perf_counter()
    flow.train()
    for _ in range(steps):
        x, c = ring(256, gen)
        loss = -flow.log_prob(x, c).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    train_s = time.perf_counter() - start
    flow.eval()
    with torch.no_grad():
        xt, ct = ring(4096, torch.Generator().manual_seed(10_000 + seed))
        test_ll = flow.log_prob(xt, ct).mean().item()
        c = torch.linspace(0.5, 2.0, 64).unsqueeze(1)
        noise = torch.randn(64, samples, 2, generator=torch.Generator().manual_seed(seed))
        x, _ = flow.generate(noise, c)
        r = x.norm(dim=-1)
        tail = r > TAIL_RADIUS
        scales = [b.actnorm.log_scale.exp().tolist() for b in flow.bijector.bijectors]
        zt = noise.norm(dim=-1)[tail]
    return {
        "variant": name,
        "lr": lr,
        **{k: v for k, v in opts.items()},
        "steps": steps,
        "seed": seed,
        "train_s": round(train_s, 1),
        "test_log_likelihood": test_ll,
        "tail_fraction": tail.float().mean().item(),
        "max_radius": r.max().item(),
        "median_abs_radius_error": (r - c).abs().median().item(),
        "tail_z_norm_median": zt.median().item() if len(zt) else None,
        "z_norm_median": noise.norm(dim=-1).median().item(),
        "actnorm_scales": scales,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variants", default=",".join(VARIANTS),
                        help=f"comma-separated subset of {list(VARIANTS)}")
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--samples", type=int, default=500, help="samples per context")
    parser.add_argument("--seeds", default="0", help="comma-separated seeds")
    parser.add_argument("--threads", type=int, default=None, help="torch threads")
    parser.add_argument("--json", type=Path,
                        default=Path(__file__).parent / "results" / "ring_tails.json")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    names = args.variants.split(",")
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        parser.error(f"--variants: unknown {unknown}; expected names from {list(VARIANTS)}")
    rows = []
    print(f"{'variant':26s} {'seed':>4s} {'test LL':>8s} {'> r=3':>8s} {'max r':>9s} "
          f"{'|z| tail':>8s} {'train s':>7s}", flush=True)
    for seed in (int(s) for s in args.seeds.split(",")):
        for name in names:
            row = run(name, args.steps, args.hidden, args.samples, seed)
            rows.append(row)
            zt = row["tail_z_norm_median"]
            print(f"{name:26s} {seed:4d} {row['test_log_likelihood']:8.3f} "
                  f"{100 * row['tail_fraction']:7.2f}% {row['max_radius']:9.2f} "
                  f"{'-' if zt is None else f'{zt:.2f}':>8s} {row['train_s']:7.1f}", flush=True)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"machine": machine(), "args": vars(args) | {
        "json": str(args.json)}, "rows": rows}, indent=1))
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
