"""The shared evaluation loop: per-example means over uneven batches, the task's own terms,
and what a regression baseline gets."""

import pytest
import torch

from condflow.bijectors import CouplingNet
from condflow.encoders.mlp_lifter import MLPLifter
from condflow.heads.skeleton import SkeletonHead, SkeletonRegressionHead
from condflow.metrics import mpjpe, pa_mpjpe
from condflow.spaces.skeleton import H36M_17, SkeletonSpace
from condflow.tasks import EvalConfig as LiftingEval
from condflow.tasks.evaluation import Measurement, evaluate_head

SPACE = SkeletonSpace(H36M_17, drop_root=True)
N = 10  # examples; batches of 4 leave a last batch of 2


def data() -> list[dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    joints = torch.randn(N, 17, 3, generator=g) * 100
    joints[:, 0] = 0
    kp = torch.randn(N, 16, 3, generator=g)
    return [{"kp": kp[i], "joints": joints[i], "index": torch.tensor(float(i))}
            for i in range(N)]


def measurement(**kw) -> Measurement:
    return Measurement("test", "kp", lambda model, batch: (batch["joints"], batch["joints"]),
                       region_joints=range(1, 17), **kw)


def flow_head() -> SkeletonHead:
    torch.manual_seed(0)
    enc = MLPLifter(16, 3, hidden=32, num_residual_blocks=1)
    return SkeletonHead(enc, SPACE, std=torch.full((SPACE.dim,), 100.0), num_blocks=2,
                        coupling_net=CouplingNet(hidden_features=16))


def regression_head() -> SkeletonRegressionHead:
    torch.manual_seed(0)
    enc = MLPLifter(16, 3, hidden=32, num_residual_blocks=1, out_features=SPACE.dim)
    return SkeletonRegressionHead(enc, SPACE, std=torch.full((SPACE.dim,), 100.0))


SETTINGS = LiftingEval(num_samples=[1, 3], batch_size=4, uncertainty_samples=3)


@pytest.mark.parametrize("make_head", [flow_head, regression_head])
def test_metrics_are_means_over_examples_across_uneven_batches(make_head):
    head = make_head().eval()
    items = data()
    metrics = evaluate_head(head, items, torch.device("cpu"), measurement(
        extra_terms=lambda model, batch, mode, target, gt: {"index": batch["index"]}),
        SETTINGS, seed=0)
    assert metrics["examples"] == N
    assert metrics["index"] == pytest.approx((N - 1) / 2, abs=1e-12)
    # The same metrics as one batch over the whole set.
    kp = torch.stack([x["kp"] for x in items])
    gt = torch.stack([x["joints"] for x in items])
    with torch.no_grad():
        c = head.context(kp)
        mode = head.mode(c).joints_mm[:, 0]
        assert metrics["mode/mpjpe"] == pytest.approx(mpjpe(mode, gt).mean().item(), rel=1e-5)
        assert metrics["mode/pa_mpjpe"] == pytest.approx(pa_mpjpe(mode, gt).mean().item(),
                                                         rel=1e-5)
        if head.probabilistic:
            nll = -head.log_prob(gt, c).mean().item()
            assert metrics["nll"] == pytest.approx(nll, rel=1e-5)


def test_a_regression_baseline_gets_the_deterministic_metrics_only():
    metrics = evaluate_head(regression_head().eval(), data(), torch.device("cpu"),
                            measurement(), SETTINGS, seed=0)
    assert set(metrics) == {"mode/mpjpe", "mode/pa_mpjpe", "examples"}


def test_a_flow_gets_min_of_n_and_the_uncertainty_metrics_seeded():
    run = [evaluate_head(flow_head().eval(), data(), torch.device("cpu"), measurement(),
                         SETTINGS, seed=3) for _ in range(2)]
    assert run[0] == run[1]
    for key in ("nll", "min_of_1/mpjpe", "min_of_3/pa_mpjpe", "spread_mm",
                "spearman/spread_vs_error", "mode_log_prob/mean", "calibration/coverage"):
        assert key in run[0], key
    # More samples never raise the min.
    assert run[0]["min_of_3/mpjpe"] <= run[0]["min_of_1/mpjpe"]
