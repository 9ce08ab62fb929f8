"""MPJPE, PA-MPJPE and min-of-n: hand-worked cases and scipy references."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.linalg import orthogonal_procrustes
from scipy.optimize import minimize
from scipy.spatial import procrustes as scipy_procrustes
from scipy.spatial.transform import Rotation

from condflow.metrics import (
    CALIBRATION_LEVELS,
    j14_joints,
    mean_pose,
    min_of_n,
    min_of_n_mpjpe,
    mpjpe,
    pa_mpjpe,
    procrustes_align,
    rank,
    region_coverage,
    sample_errors,
    sample_spread,
    spearman,
)


def random_pose(generator: np.random.Generator, num_joints: int = 17) -> np.ndarray:
    return generator.normal(scale=200.0, size=(num_joints, 3))


def test_mpjpe_two_joint_hand_example():
    pred = torch.tensor([[10.0, 0.0, 0.0], [13.0, 4.0, 0.0]])
    gt = torch.zeros(2, 3)
    # Root-aligned: pred becomes [[0,0,0],[3,4,0]] → errors 0 and 5.
    assert mpjpe(pred, gt).item() == pytest.approx(2.5)
    assert mpjpe(pred, gt, root_index=1).item() == pytest.approx((math.hypot(3, 4) + 0.0) / 2)
    assert mpjpe(pred, gt, root_index=None).item() == pytest.approx((10 + math.sqrt(185)) / 2)


def test_similarity_transform_pa_zero_mpjpe_computed():
    rng = np.random.default_rng(0)
    gt = random_pose(rng)
    v = gt - gt[0]
    # 180° about z with unit scale: each root-relative joint error is 2·|(vx, vy)|.
    rot_z = Rotation.from_euler("z", 180, degrees=True).as_matrix()
    pred = gt @ rot_z.T + np.array([100.0, -50.0, 3000.0])
    expected = (2 * np.linalg.norm(v[:, :2], axis=1)).mean()
    p, g = torch.tensor(pred, dtype=torch.float32), torch.tensor(gt, dtype=torch.float32)
    assert mpjpe(p, g).item() == pytest.approx(expected, rel=1e-5)
    assert pa_mpjpe(p, g).item() < 1e-3
    # Pure scale 1.3 about the root: error |s − 1|·|v|.
    pred = 1.3 * v + gt[0]
    p = torch.tensor(pred, dtype=torch.float32)
    assert mpjpe(p, g).item() == pytest.approx(0.3 * np.linalg.norm(v, axis=1).mean(), rel=1e-5)
    assert pa_mpjpe(p, g).item() < 1e-3
    # Random rotation, scale and translation, far from the origin, in float32.
    rot = Rotation.random(random_state=1).as_matrix()
    pred = 0.7 * gt @ rot.T + np.array([5000.0, -4000.0, 6000.0])
    p = torch.tensor(pred, dtype=torch.float32)
    assert mpjpe(p, g).item() > 10.0
    pa = pa_mpjpe(p, g)
    assert pa.dtype == torch.float32 and pa.item() < 1e-2


def test_reflection_is_not_removed():
    rng = np.random.default_rng(2)
    gt = random_pose(rng)
    mirrored = gt * np.array([-1.0, 1.0, 1.0])
    g, m = torch.tensor(gt), torch.tensor(mirrored)
    # An orthogonal (reflection-allowed) alignment removes the mirror completely ...
    x0, y0 = mirrored - mirrored.mean(0), gt - gt.mean(0)
    r, _ = orthogonal_procrustes(x0, y0)
    assert np.linalg.det(r) < 0 and np.abs(x0 @ r - y0).max() < 1e-8
    # ... but PA-MPJPE uses rotations only, so a large error remains.
    assert pa_mpjpe(m, g).item() > 20.0
    # The closed form is the optimum over rotations, scales and translations: compare with
    # a numerical minimization from several starts.
    residual = ((procrustes_align(m, g).numpy() - gt) ** 2).sum()

    def objective(params):
        rot = Rotation.from_rotvec(params[:3]).as_matrix()
        return ((np.exp(params[3]) * mirrored @ rot.T + params[4:] - gt) ** 2).sum()

    best = min(
        minimize(
            objective,
            np.concatenate([Rotation.random(random_state=k).as_rotvec(), np.zeros(4)]),
            method="BFGS",
        ).fun
        for k in range(4)
    )
    assert residual == pytest.approx(best, rel=1e-5)


def test_procrustes_align_matches_scipy():
    rng = np.random.default_rng(3)
    for seed in range(5):
        gt = random_pose(rng)
        rot = Rotation.random(random_state=seed).as_matrix()
        pred = 1.4 * gt @ rot.T + rng.normal(size=3) * 500 + rng.normal(scale=30.0, size=gt.shape)
        x0, y0 = pred - pred.mean(0), gt - gt.mean(0)
        r, sum_singular = orthogonal_procrustes(x0, y0)
        assert np.linalg.det(r) > 0  # reference optimum is a proper rotation here
        reference = sum_singular / (x0**2).sum() * x0 @ r + gt.mean(0)
        ours = procrustes_align(torch.tensor(pred), torch.tensor(gt)).numpy()
        np.testing.assert_allclose(ours, reference, atol=1e-8)
        # scipy.spatial.procrustes' disparity is the squared residual over |gt − mean|².
        _, _, disparity = scipy_procrustes(gt, pred)
        assert ((ours - gt) ** 2).sum() / (y0**2).sum() == pytest.approx(disparity, rel=1e-8)


def test_batched_leading_dims_match_single_examples():
    rng = np.random.default_rng(4)
    gt = torch.tensor(rng.normal(scale=200.0, size=(2, 3, 17, 3)), dtype=torch.float32)
    pred = gt + torch.tensor(rng.normal(scale=40.0, size=(2, 3, 17, 3)), dtype=torch.float32)
    pa, mp = pa_mpjpe(pred, gt), mpjpe(pred, gt)
    assert pa.shape == mp.shape == (2, 3)
    for i in range(2):
        for j in range(3):
            assert pa[i, j].item() == pytest.approx(pa_mpjpe(pred[i, j], gt[i, j]).item())
            assert mp[i, j].item() == pytest.approx(mpjpe(pred[i, j], gt[i, j]).item())
    assert (pa <= mp + 1e-4).all()  # alignment can only reduce the error


def test_degenerate_prediction_is_finite():
    gt = torch.randn(2, 17, 3) * 100
    pred = torch.zeros(2, 17, 3)
    out = pa_mpjpe(pred, gt)
    # A collapsed pose is aligned to gt's centroid.
    expected = (gt - gt.mean(1, keepdim=True)).norm(dim=-1).mean(-1)
    assert torch.allclose(out, expected, rtol=1e-5)


def test_min_of_n_picks_minimum():
    errors = torch.tensor([[3.0, 1.0, 2.0], [5.0, 4.0, 6.0]])
    assert torch.equal(min_of_n(errors), torch.tensor([1.0, 4.0]))


def test_min_of_n_mpjpe_uses_first_n_samples():
    gt = torch.randn(1, 17, 3) * 100
    shifts = torch.tensor([5.0, 2.0, 7.0, 1.0])
    samples = gt.unsqueeze(1) + shifts.view(1, 4, 1, 1) * torch.tensor([1.0, 0.0, 0.0])
    out = min_of_n_mpjpe(samples, gt, ns=(1, 2, 3, 4), root_index=None)
    assert out == pytest.approx({1: 5.0, 2: 2.0, 3: 2.0, 4: 1.0})
    # Root-aligned or Procrustes-aligned, a translation is no error at all.
    assert min_of_n_mpjpe(samples, gt, ns=(1,))[1] == pytest.approx(0.0, abs=1e-4)
    assert min_of_n_mpjpe(samples, gt, ns=(4,), metric="pa_mpjpe")[4] == pytest.approx(
        0.0, abs=1e-3
    )


def test_min_of_n_mpjpe_batch_average_and_monotone():
    gt = torch.randn(3, 17, 3) * 100
    samples = gt.unsqueeze(1) + 30 * torch.randn(3, 10, 17, 3)
    out = min_of_n_mpjpe(samples, gt, ns=(1, 5, 10))
    per = mpjpe(samples, gt.unsqueeze(1).expand_as(samples))  # [3, 10]
    assert out[5] == pytest.approx(per[:, :5].min(1).values.mean().item(), rel=1e-6)
    assert out[1] >= out[5] >= out[10]


def test_bad_inputs():
    with pytest.raises(ValueError, match="gt: expected the same shape"):
        mpjpe(torch.zeros(2, 17, 3), torch.zeros(2, 16, 3))
    with pytest.raises(ValueError, match=r"pred: expected shape \[\.\.\., J, 3\]"):
        pa_mpjpe(torch.zeros(17, 2), torch.zeros(17, 2))
    with pytest.raises(ValueError, match="pred: contains NaN"):
        mpjpe(torch.full((17, 3), float("nan")), torch.zeros(17, 3))
    with pytest.raises(ValueError, match="root_index"):
        mpjpe(torch.zeros(17, 3), torch.zeros(17, 3), root_index=17)
    samples, gt = torch.zeros(2, 5, 17, 3), torch.zeros(2, 17, 3)
    with pytest.raises(ValueError, match="ns: largest n = 10 exceeds the 5 samples"):
        min_of_n_mpjpe(samples, gt, ns=(1, 10))
    with pytest.raises(ValueError, match="metric"):
        min_of_n_mpjpe(samples, gt, ns=(1,), metric="pck")
    with pytest.raises(ValueError, match=r"gt: expected shape \[2, 17, 3\]"):
        min_of_n_mpjpe(samples, torch.zeros(3, 17, 3), ns=(1,))


# -- uncertainty metrics ----------------------------------------------------------------------


def test_rank_averages_ties():
    ranks = rank(torch.tensor([3.0, 1.0, 3.0, 2.0]))
    assert ranks.tolist() == [2.5, 0.0, 2.5, 1.0]


def test_spearman_hand_examples_and_scipy():
    from scipy.stats import spearmanr

    a = torch.tensor([1.0, 2.0, 3.0, 4.0])
    assert spearman(a, 10 * a) == pytest.approx(1.0)
    assert spearman(a, -a) == pytest.approx(-1.0)
    # Ranks (0, 2, 1, 3) against (0, 1, 2, 3): centred dot product 4, norms √5 each.
    assert spearman(a, torch.tensor([1.0, 3.0, 2.0, 4.0])) == pytest.approx(0.8)
    assert math.isnan(spearman(a, torch.ones(4)))
    gen = torch.Generator().manual_seed(0)
    x = torch.randint(0, 6, (200,), generator=gen).double()  # many ties
    y = x + torch.randn(200, generator=gen, dtype=torch.float64) * 3
    assert spearman(x, y) == pytest.approx(spearmanr(x.numpy(), y.numpy()).statistic, abs=1e-12)


def test_region_coverage_hand_example():
    # Samples at x = ±1..±5: mean 0, distances 1,1,2,2,3,3,4,4,5,5; the linearly
    # interpolated quantiles at q = 0.1, 0.5, 0.9 are 1, 3 and 5.
    offsets = torch.tensor([-5, -4, -3, -2, -1, 1, 2, 3, 4, 5], dtype=torch.float64)
    joint = torch.zeros(10, 3, dtype=torch.float64)
    joint[:, 0] = offsets
    samples = torch.stack([joint, joint], 1)[None]  # [1, 10, 2, 3]
    gt = torch.tensor([[[0.0, 2.9, 0.0], [0.0, 0.0, -4.5]]], dtype=torch.float64)
    cover = region_coverage(samples, gt, (0.1, 0.5, 0.9))
    assert cover.tolist() == [0.0, 0.5, 1.0]
    with pytest.raises(ValueError, match="levels"):
        region_coverage(samples, gt, (0.5, 1.0))


def test_region_coverage_is_calibrated_for_the_true_distribution_only():
    gen = torch.Generator().manual_seed(0)
    center = 100 * torch.randn(2000, 1, 4, 3, generator=gen)
    samples = center + 20 * torch.randn(2000, 200, 4, 3, generator=gen)
    gt = center[:, 0] + 20 * torch.randn(2000, 4, 3, generator=gen)
    levels = torch.tensor(CALIBRATION_LEVELS, dtype=torch.float64)
    assert (region_coverage(samples, gt) - levels).abs().max() < 0.03
    narrow = center + 10 * torch.randn(2000, 200, 4, 3, generator=gen)
    assert bool((region_coverage(narrow, gt) < levels - 0.05).all())  # over-confident


def test_sample_spread_hand_example():
    center = torch.zeros(1, 2, 3)
    samples = torch.zeros(1, 2, 2, 3)
    samples[0, 0, :, 0], samples[0, 0, :, 1] = 3.0, 4.0  # 5 mm from the centre
    assert sample_spread(samples, center).tolist() == [2.5]


def test_sample_errors_in_chunks_match_one_batch():
    gen = torch.Generator().manual_seed(3)
    samples = 50 * torch.randn(3, 10, 5, 3, generator=gen)
    gt = 50 * torch.randn(3, 5, 3, generator=gen)
    drawn = [0]

    def draw(k: int) -> torch.Tensor:
        out = samples[:, drawn[0] : drawn[0] + k]
        drawn[0] += k
        return out

    errors = sample_errors(draw, gt, 10, chunk=4)
    assert errors["mpjpe"].shape == (3, 10)
    whole = min_of_n_mpjpe(samples, gt, (1, 5, 10), "pa_mpjpe")
    for n in (1, 5, 10):
        assert min_of_n(errors["pa_mpjpe"][:, :n]).mean().item() == pytest.approx(whole[n])
    with pytest.raises(ValueError, match=r"draw\(k\)"):
        sample_errors(lambda k: samples[:, :1], gt, 10, chunk=4)


def test_j14_joints_hand_worked():
    # Human3.6M joint k at (k mm, -2k mm, 7 mm), given in metres.
    k = torch.arange(17, dtype=torch.float64)
    eval_joints = torch.stack([k, -2 * k, torch.full_like(k, 7.0)], -1) / 1000.0
    out = j14_joints(eval_joints[None])
    # The LSP joints are H36M joints 6, 5, 4, 1, 2, 3, 16, 15, 14, 11, 12, 13, 8, 10; the
    # hips (LSP 2 and 3) are H36M 4 and 1, so the mid-hip is at (2.5, -5, 7) mm.
    picked = torch.tensor([6, 5, 4, 1, 2, 3, 16, 15, 14, 11, 12, 13, 8, 10], dtype=torch.float64)
    expected = torch.stack([picked - 2.5, -2 * picked + 5.0, torch.zeros(14, dtype=torch.float64)],
                           -1)
    assert out.shape == (1, 14, 3)
    torch.testing.assert_close(out[0], expected, rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match=r"eval_joints: expected shape \[\*, 17, 3\]"):
        j14_joints(torch.zeros(2, 24, 3))


def test_mean_pose_hand_worked():
    def about_z(angle: float) -> torch.Tensor:
        return torch.as_tensor(Rotation.from_euler("z", angle).as_matrix())

    eye = torch.eye(3, dtype=torch.float64)
    # Two examples, two joints: joint 0 turned by 0.2 and 1.0 rad about z (mean 0.6 rad: the
    # chordal mean of two rotations about one axis is the middle one), joint 1 at rest.
    body_pose = torch.stack([torch.stack([about_z(0.2), eye]), torch.stack([about_z(1.0), eye])])
    betas = torch.tensor([[1.0, -2.0], [3.0, 4.0]], dtype=torch.float64)
    rot, mean_betas = mean_pose(body_pose, betas)
    assert rot.shape == (2, 3, 3) and rot.dtype == torch.float64
    torch.testing.assert_close(rot[0], about_z(0.6), rtol=0, atol=1e-12)
    torch.testing.assert_close(rot[1], eye, rtol=0, atol=1e-12)
    torch.testing.assert_close(mean_betas, torch.tensor([2.0, 1.0], dtype=torch.float64))
    # float32 in, float32 out.
    rot32, betas32 = mean_pose(body_pose.float(), betas.float())
    assert rot32.dtype == torch.float32 and betas32.dtype == torch.float32
    torch.testing.assert_close(rot32, rot.float(), rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="betas"):
        mean_pose(body_pose, betas[:1])
    with pytest.raises(ValueError, match="body_pose"):
        mean_pose(body_pose[:0], betas[:0])
