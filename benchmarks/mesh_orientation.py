"""Where the mesh mode's MPJPE gap to the regression baseline comes from: the per-image
global-orientation error of each model's prediction (geodesic angle to the ground truth,
degrees), the share of near front/back flips (> 135°), and the MPJPE / PA-MPJPE on the
images each model flips and on those where both are right.

    python benchmarks/mesh_orientation.py --flow runs/mesh_cpu/checkpoints/last.pt \\
        --regression runs/mesh_cpu_regression/checkpoints/last.pt

Prints a table and writes JSON (``--out``). For the flow also: how often none of 25 samples
is within 90° of the true orientation (whether the density covers the right reading).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
from torch import Tensor
from torch.utils.data import DataLoader

from condflow.losses.mesh import gt_rotmat
from condflow.metrics import j14_joints as j14
from condflow.metrics import mpjpe, pa_mpjpe
from condflow.saving import load_with_config
from condflow.tasks import task_for

RESULTS = Path(__file__).resolve().parent / "results"


def angle_deg(r: Tensor, gt: Tensor) -> Tensor:
    """Geodesic angle between rotations ``[..., 3, 3]``, degrees."""
    cos = ((r.transpose(-1, -2) @ gt).diagonal(dim1=-2, dim2=-1).sum(-1) - 1) / 2
    return torch.rad2deg(torch.arccos(cos.clamp(-1.0, 1.0)))


@torch.no_grad()
def per_image(checkpoint: str, batch_size: int, samples: int) -> dict[str, Tensor]:
    cfg, model = load_with_config(checkpoint)
    model.eval()
    task = task_for(cfg)
    rows: dict[str, list[Tensor]] = {"angle": [], "mpjpe": [], "pa_mpjpe": [], "best": []}
    gen = torch.Generator().manual_seed(0)
    for batch in DataLoader(task.datasets()[1], batch_size=batch_size):
        gt = gt_rotmat(batch)
        gt_j = j14(model.keypoints(gt, batch["betas"])[1])
        c = model.context(batch[task.inputs.key])
        mode = model.mode(c)
        joints = j14(model.keypoints(mode.rotmat[:, 0], mode.betas[:, 0])[1])
        rows["angle"].append(angle_deg(mode.rotmat[:, 0, 0], gt[:, 0]))
        rows["mpjpe"].append(mpjpe(joints, gt_j, None))
        rows["pa_mpjpe"].append(pa_mpjpe(joints, gt_j))
        if model.probabilistic and samples:
            s = model.sample(samples, c, gen)
            rows["best"].append(angle_deg(s.rotmat[:, :, 0], gt[:, None, 0]).min(1).values)
    return {k: torch.cat(v) for k, v in rows.items() if v}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--flow", required=True, help="the flow model's checkpoint")
    parser.add_argument("--regression", required=True, help="the regression baseline's")
    parser.add_argument("--samples", type=int, default=25)
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", default=str(RESULTS / "mesh_orientation.json"))
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    f = per_image(args.flow, args.batch_size, args.samples)
    r = per_image(args.regression, args.batch_size, 0)
    flips, both_right = f["angle"] > 135, (f["angle"] < 45) & (r["angle"] < 45)
    summary: dict[str, dict[str, float]] = {}
    for name, m in (("flow mode", f), ("regression", r)):
        summary[name] = {
            "median_angle_deg": m["angle"].median().item(),
            "share_over_45_deg": (m["angle"] > 45).float().mean().item(),
            "share_over_135_deg": (m["angle"] > 135).float().mean().item(),
            "mpjpe": m["mpjpe"].mean().item(), "pa_mpjpe": m["pa_mpjpe"].mean().item(),
            "mpjpe_on_flow_flips": m["mpjpe"][flips].mean().item(),
            "mpjpe_without_flow_flips": m["mpjpe"][~flips].mean().item(),
            "mpjpe_both_within_45_deg": m["mpjpe"][both_right].mean().item(),
            "pa_mpjpe_both_within_45_deg": m["pa_mpjpe"][both_right].mean().item(),
        }
    gap = (f["mpjpe"] - r["mpjpe"]).mean().item()
    from_flips = ((f["mpjpe"] - r["mpjpe"]) * flips).sum().item() / len(flips)
    extra = {"images": len(flips), "flow_flips": int(flips.sum()),
             "both_within_45_deg": int(both_right.sum()), "mpjpe_gap_mm": gap,
             "mpjpe_gap_from_flow_flips_mm": from_flips,
             "regression_median_angle_on_flow_flips_deg": r["angle"][flips].median().item()}
    if "best" in f:
        extra["share_no_sample_within_90_deg"] = (f["best"] > 90).float().mean().item()
    print("| | " + " | ".join(summary) + " |\n|---|" + "---:|" * len(summary))
    for key in summary["regression"]:
        print(f"| {key} | " + " | ".join(f"{v[key]:.3g}" for v in summary.values()) + " |")
    print("\n" + ", ".join(f"{k} {v:.3g}" for k, v in extra.items()))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"summary": summary, **extra, "flow": args.flow,
                                          "regression": args.regression}, indent=2))
    print(f"\nJSON: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
