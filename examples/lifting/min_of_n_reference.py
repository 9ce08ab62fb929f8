"""What min-of-n can be expected to gain over the mode, for two idealized posteriors.

A perfectly calibrated model predicts p(x | c) and the truth is itself a draw from it. Then:

- **Continuous uncertainty** (a Gaussian around the mode, independent over the 16 joints ×
  3 coordinates): MPJPE averages many independent per-joint errors, so a sample's error
  concentrates near √2 × the mode's, and even the best of 100 samples stays worse than the
  mode.
- **Discrete ambiguity** (k limbs whose depth is a 50/50 flip): a sample gets each limb
  right with probability ½; min-of-n falls to zero once n ≫ 2^k and stays high for large k.

Real lifting posteriors mix both, so the ratio min-of-n / mode measures how much of the
mode's error is discrete ambiguity that samples can resolve.

    python examples/lifting/min_of_n_reference.py
"""

from __future__ import annotations

import torch

NS = (1, 5, 10, 25, 100)


def gaussian_ratios(num: int = 4000, joints: int = 16, seed: int = 0) -> list[float]:
    """min-of-n MPJPE / mode MPJPE for an isotropic Gaussian posterior over ``joints`` × 3."""
    g = torch.Generator().manual_seed(seed)
    truth = torch.randn(num, 1, joints, 3, generator=g)  # the mode is 0
    mode = truth.norm(dim=-1).mean()
    samples = torch.randn(num, max(NS), joints, 3, generator=g)
    err = (samples - truth).norm(dim=-1).mean(-1)  # [num, n]
    return [(err[:, :n].min(1).values.mean() / mode).item() for n in NS]


def flip_ratios(limbs: int, num: int = 4000, seed: int = 0) -> list[float]:
    """The same for ``limbs`` independent binary depth flips (error = fraction wrong)."""
    g = torch.Generator().manual_seed(seed)
    truth = torch.randint(0, 2, (num, 1, limbs), generator=g)
    samples = torch.randint(0, 2, (num, max(NS), limbs), generator=g)
    wrong = (samples != truth).float().mean(-1)
    mode = truth.float().mean()  # the mode picks one side of every flip
    return [(wrong[:, :n].min(1).values.mean() / mode).item() for n in NS]


def main() -> None:
    print("| posterior | " + " | ".join(f"min-of-{n} / mode" for n in NS) + " |")
    print("|---|" + "---:|" * len(NS))
    rows = {"Gaussian, 16 joints × 3": gaussian_ratios()}
    rows |= {f"{k} binary limb flips": flip_ratios(k) for k in (1, 2, 4, 8)}
    for name, ratios in rows.items():
        print(f"| {name} | " + " | ".join(f"{r:.2f}" for r in ratios) + " |")


if __name__ == "__main__":
    main()
