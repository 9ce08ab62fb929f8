import pytest
import torch

from condflow.losses.adversarial import adversarial_generator_loss
from condflow.losses.keypoints import keypoint_2d_loss
from condflow.losses.orth import orthonormality_loss
from condflow.losses.prohmr import (
    BodyPrediction,
    ProHMRLossWeights,
    SupervisionBatch,
    SupervisionWeights,
    expectation_loss,
    mode_loss,
    prohmr_loss,
)
from condflow.spaces.rotations import axis_angle_to_matrix

B, K2, K3 = 4, 6, 5
TERMS = ("keypoints_2d", "keypoints_3d", "rotmat", "betas")


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _batch(has_3d=None, has_smpl=None) -> SupervisionBatch:
    kp2 = torch.cat([torch.randn(B, K2, 2, generator=_gen(0)),
                     torch.rand(B, K2, 1, generator=_gen(1))], -1)
    kp3 = torch.cat([torch.randn(B, K3, 3, generator=_gen(2)), torch.ones(B, K3, 1)], -1)
    rot = axis_angle_to_matrix(0.4 * torch.randn(B, 24, 3, generator=_gen(3)))
    betas = torch.randn(B, 10, generator=_gen(4))
    return SupervisionBatch(kp2, kp3, rot, betas, has_3d=has_3d, has_smpl=has_smpl)


def _perfect(batch: SupervisionBatch, n: int) -> BodyPrediction:
    def rep(x):
        return x[:, None].expand(B, n, *x.shape[1:]).clone()

    return BodyPrediction(
        keypoints_2d=rep(batch.keypoints_2d[..., :2]),
        keypoints_3d=rep(batch.keypoints_3d[..., :3]) + 0.7,  # a translation is aligned away
        rotmat=rep(batch.rotmat),
        betas=rep(batch.betas),
    )


def _perturbed(pred: BodyPrediction, scale: float, seed: int) -> BodyPrediction:
    def noisy(x, s):
        return x + scale * torch.randn(x.shape, generator=_gen(seed + s))

    return BodyPrediction(noisy(pred.keypoints_2d, 0), noisy(pred.keypoints_3d, 1),
                          noisy(pred.rotmat, 2), noisy(pred.betas, 3))


def test_mode_loss_zero_at_ground_truth_and_grows():
    batch = _batch()
    pred = _perfect(batch, 1)
    terms = mode_loss(pred, batch)
    assert set(terms) == {*TERMS, "total"}
    for name, value in terms.items():
        assert abs(float(value)) < 1e-5, name
    small = mode_loss(_perturbed(pred, 0.1, 0), batch)
    large = mode_loss(_perturbed(pred, 0.5, 0), batch)
    for name in (*TERMS, "total"):
        assert 0 < small[name] < large[name], name


def test_total_is_the_weighted_sum():
    batch = _batch()
    weights = SupervisionWeights(keypoints_2d=2.0, keypoints_3d=0.5, rotmat=3.0, betas=0.25)
    terms = mode_loss(_perturbed(_perfect(batch, 1), 0.3, 1), batch, weights)
    expected = sum(getattr(weights, name) * terms[name] for name in TERMS)
    torch.testing.assert_close(terms["total"], expected)


def test_expectation_averages_over_samples():
    batch = _batch()
    pred = _perturbed(_perfect(batch, 1), 0.3, 2)
    exact = _perfect(batch, 1)
    both = BodyPrediction(*(torch.cat([getattr(exact, f), getattr(pred, f)], dim=1)
                            for f in ("keypoints_2d", "keypoints_3d", "rotmat", "betas")))
    weights = SupervisionWeights(1.0, 1.0, 1.0, 1.0)
    exp_terms = expectation_loss(both, batch, weights)
    mode_terms = mode_loss(pred, batch, weights)
    for name in (*TERMS, "total"):
        torch.testing.assert_close(exp_terms[name], mode_terms[name] / 2, atol=1e-6, rtol=1e-5)
    with pytest.raises(ValueError, match="one sample"):
        mode_loss(both, batch)


def test_availability_flags_remove_supervision_exactly():
    has = torch.tensor([True, False, True, False])
    batch = _batch(has_3d=has, has_smpl=has.float())
    pred = _perturbed(_perfect(batch, 2), 0.5, 3)
    for field in ("keypoints_3d", "rotmat", "betas"):
        getattr(pred, field).requires_grad_(True)
    terms = expectation_loss(pred, batch, SupervisionWeights(0.0, 1.0, 1.0, 1.0))
    terms["total"].backward()
    for field in ("keypoints_3d", "rotmat", "betas"):
        grad = getattr(pred, field).grad
        assert (grad[~has] == 0).all(), field
        assert (grad[has].abs().sum() > 0), field
    # Equal to the loss over the available examples, scaled by their share of the batch.
    sub = SupervisionBatch(*(getattr(batch, f)[has] for f in TERMS))
    sub_pred = BodyPrediction(*(getattr(pred, f)[has] for f in
                                ("keypoints_2d", "keypoints_3d", "rotmat", "betas")))
    sub_terms = expectation_loss(sub_pred, sub, SupervisionWeights(0.0, 1.0, 1.0, 1.0))
    torch.testing.assert_close(terms["total"], sub_terms["total"] / 2)


def test_missing_ground_truth_or_prediction():
    batch = SupervisionBatch(keypoints_2d=_batch().keypoints_2d)
    pred = BodyPrediction(keypoints_2d=torch.zeros(B, 1, K2, 2))
    terms = mode_loss(pred, batch)
    assert terms["rotmat"] == 0 and terms["betas"] == 0 and terms["keypoints_2d"] > 0
    with pytest.raises(ValueError, match="pred.keypoints_3d: required"):
        mode_loss(pred, _batch())
    with pytest.raises(ValueError, match="at least one"):
        SupervisionBatch()
    with pytest.raises(ValueError, match="batch sizes differ"):
        SupervisionBatch(keypoints_2d=torch.zeros(2, 3, 3), betas=torch.zeros(3, 10))
    bad = _batch().keypoints_3d.clone()
    bad[0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="keypoints_3d: contains NaN"):
        SupervisionBatch(keypoints_3d=bad)
    with pytest.raises(ValueError, match="keypoints_2d: expected shape"):
        SupervisionBatch(keypoints_2d=torch.zeros(2, 3, 2))
    with pytest.raises(ValueError, match="betas: expected a non-negative"):
        SupervisionWeights(betas=-1.0)


def test_prohmr_loss_combines_every_term():
    has = torch.tensor([True, True, False, True])
    batch = _batch(has_smpl=has)
    mode = _perturbed(_perfect(batch, 1), 0.2, 4)
    samples = _perturbed(_perfect(batch, 3), 0.4, 5)
    log_prob = torch.tensor([-1.0, -2.0, -100.0, -3.0])
    pose_6d = 1.3 * torch.randn(B, 4, 24, 6, generator=_gen(6))
    disc_out = torch.rand(B * 3, 25, generator=_gen(7))
    w = ProHMRLossWeights()
    out = prohmr_loss(batch, mode, samples, log_prob=log_prob, pose_6d=pose_6d,
                      disc_out=disc_out, weights=w)
    torch.testing.assert_close(out["nll"], torch.tensor(2.0))
    torch.testing.assert_close(out["orth"], orthonormality_loss(pose_6d))
    torch.testing.assert_close(out["adversarial"], adversarial_generator_loss(disc_out))
    mode_terms = mode_loss(mode, batch, w.mode)
    exp_terms = expectation_loss(samples, batch, w.exp)
    torch.testing.assert_close(out["exp/keypoints_2d"], exp_terms["keypoints_2d"])
    expected = (mode_terms["total"] + exp_terms["total"] + w.nll * 2.0
                + w.orth * out["orth"] + w.adversarial * out["adversarial"])
    torch.testing.assert_close(out["total"], expected)
    # Without samples or extras, only L_mode remains.
    only_mode = prohmr_loss(batch, mode, weights=w)
    torch.testing.assert_close(only_mode["total"], mode_terms["total"])
    assert only_mode["exp/keypoints_2d"] == 0 and only_mode["nll"] == 0


def test_defaults_follow_prohmr():
    w = ProHMRLossWeights()
    assert (w.nll, w.orth, w.adversarial) == (0.001, 0.1, 0.0005)
    assert (w.mode.keypoints_2d, w.mode.keypoints_3d, w.mode.rotmat, w.mode.betas) == (
        0.01, 0.05, 0.001, 0.0005)
    assert (w.exp.keypoints_2d, w.exp.keypoints_3d) == (0.001, 0.0)
    kp = keypoint_2d_loss(torch.zeros(1, 2, 2), torch.ones(1, 2, 3))
    assert kp.item() == 4.0  # l1 by default, summed over joints and coordinates
