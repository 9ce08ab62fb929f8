import pytest
import torch

from condflow.losses.keypoints import keypoint_2d_loss, keypoint_3d_loss
from condflow.losses.likelihood import nll_loss
from condflow.losses.orth import orthonormality_loss
from condflow.losses.parameters import betas_loss, rotmat_loss
from condflow.spaces.rotations import axis_angle_to_matrix, matrix_to_rotation_6d


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _gt2d(b: int, k: int, seed: int = 0) -> torch.Tensor:
    xy = torch.randn(b, k, 2, generator=_gen(seed))
    conf = torch.rand(b, k, 1, generator=_gen(seed + 1)) + 0.1
    return torch.cat([xy, conf], -1)


def _gt3d(b: int, k: int, seed: int = 0) -> torch.Tensor:
    xyz = torch.randn(b, k, 3, generator=_gen(seed))
    return torch.cat([xyz, torch.ones(b, k, 1)], -1)


def test_keypoint_2d_hand_worked_confidences():
    pred = torch.tensor([[[0.0, 0.0], [1.0, 1.0]]])
    gt = torch.tensor([[[1.0, 0.0, 0.5], [1.0, 3.0, 2.0]]])
    # l1: 0.5 * (1 + 0) + 2 * (0 + 2) = 4.5; l2: 0.5 * 1 + 2 * 4 = 8.5
    torch.testing.assert_close(keypoint_2d_loss(pred, gt), torch.tensor([4.5]))
    torch.testing.assert_close(keypoint_2d_loss(pred, gt, kind="l2"), torch.tensor([8.5]))
    gt_no_conf = gt.clone()
    gt_no_conf[0, 1, 2] = 0.0
    torch.testing.assert_close(keypoint_2d_loss(pred, gt_no_conf), torch.tensor([0.5]))


@pytest.mark.parametrize("kind", ["l1", "l2"])
def test_keypoint_2d_zero_at_gt_and_grows(kind):
    gt = _gt2d(3, 5)
    pred = gt[..., :2]
    assert keypoint_2d_loss(pred, gt, kind=kind).abs().max() == 0
    d = torch.randn(3, 5, 2, generator=_gen(7))
    losses = [keypoint_2d_loss(pred + s * d, gt, kind=kind) for s in (0.1, 0.5, 1.0)]
    assert (losses[0] > 0).all() and (losses[1] > losses[0]).all()
    assert (losses[2] > losses[1]).all()


def test_keypoint_2d_sample_axis():
    gt = _gt2d(2, 4)
    pred = torch.randn(2, 3, 4, 2, generator=_gen(3))
    out = keypoint_2d_loss(pred, gt)
    assert out.shape == (2, 3)
    for i in range(3):
        torch.testing.assert_close(out[:, i], keypoint_2d_loss(pred[:, i], gt))


def test_keypoint_3d_is_root_aligned():
    gt = _gt3d(2, 6).double()
    shifted = gt[..., :3] + torch.tensor([0.3, -1.0, 2.0], dtype=torch.float64)
    assert keypoint_3d_loss(shifted, gt, pelvis_ids=0).abs().max() < 1e-12
    assert keypoint_3d_loss(shifted, gt, pelvis_ids=[2, 3]).abs().max() < 1e-12
    assert (keypoint_3d_loss(shifted, gt, pelvis_ids=None) > 1).all()


def test_keypoint_3d_hand_worked():
    gt = torch.zeros(1, 3, 4)
    gt[0, :, 3] = torch.tensor([1.0, 0.5, 0.0])
    gt[0, 1, :3] = torch.tensor([1.0, 0.0, 0.0])
    pred = torch.zeros(1, 3, 3)
    pred[0, 1] = torch.tensor([2.0, 1.0, 0.0])
    pred[0, 2] = torch.tensor([9.0, 9.0, 9.0])  # confidence 0: ignored
    # joint 1 relative to pelvis 0: pred (2,1,0) vs gt (1,0,0): l1 = 2, times conf 0.5 = 1
    torch.testing.assert_close(keypoint_3d_loss(pred, gt, 0), torch.tensor([1.0]))
    torch.testing.assert_close(keypoint_3d_loss(pred, gt, 0, kind="l2"), torch.tensor([1.0]))


def test_masks_remove_supervision_exactly_with_gradients():
    mask = torch.tensor([True, False, True])
    gt2, gt3 = _gt2d(3, 4), _gt3d(3, 4)
    gt_r = axis_angle_to_matrix(0.3 * torch.randn(3, 24, 3, generator=_gen(4)))
    gt_b = torch.randn(3, 10, generator=_gen(5))
    preds = {
        "2d": (1e6 * torch.randn(3, 2, 4, 2, generator=_gen(6))).requires_grad_(True),
        "3d": (1e6 * torch.randn(3, 4, 3, generator=_gen(7))).requires_grad_(True),
        "rot": torch.randn(3, 24, 3, 3, generator=_gen(8)).requires_grad_(True),
        "betas": torch.randn(3, 2, 10, generator=_gen(9)).requires_grad_(True),
    }
    outs = {
        "2d": keypoint_2d_loss(preds["2d"], gt2, mask=mask),
        "3d": keypoint_3d_loss(preds["3d"], gt3, 0, mask=mask.float()),
        "rot": rotmat_loss(preds["rot"], gt_r, mask=mask),
        "betas": betas_loss(preds["betas"], gt_b, mask=mask),
    }
    unmasked = {
        "2d": keypoint_2d_loss(preds["2d"], gt2),
        "3d": keypoint_3d_loss(preds["3d"], gt3, 0),
        "rot": rotmat_loss(preds["rot"], gt_r),
        "betas": betas_loss(preds["betas"], gt_b),
    }
    for name, out in outs.items():
        assert (out[1] == 0).all(), name
        torch.testing.assert_close(out[[0, 2]], unmasked[name][[0, 2]])
        out.sum().backward()
        grad = preds[name].grad
        assert (grad[1] == 0).all(), name
        assert grad[0].abs().sum() > 0 and torch.isfinite(grad).all(), name


def test_parameter_losses_hand_worked():
    gt = axis_angle_to_matrix(0.5 * torch.randn(2, 24, 3, generator=_gen(10)))
    assert rotmat_loss(gt, gt).abs().max() == 0
    pred = gt.clone()
    pred[1, 3, 0, 2] += 0.2
    torch.testing.assert_close(rotmat_loss(pred, gt), torch.tensor([0.0, 0.04]))
    gt_b = torch.zeros(1, 10)
    pred_b = torch.zeros(1, 3, 10)
    pred_b[0, 1, :2] = torch.tensor([1.0, 2.0])
    torch.testing.assert_close(betas_loss(pred_b, gt_b), torch.tensor([[0.0, 5.0, 0.0]]))


def test_orthonormality_loss_hand_worked_and_zero_on_rotations():
    r = axis_angle_to_matrix(torch.randn(5, 3, generator=_gen(11), dtype=torch.float64))
    x = matrix_to_rotation_6d(r)
    assert orthonormality_loss(x) < 1e-25
    # Scaling both columns by s moves the vector by (s - 1) per unit column: 2 (s - 1)^2.
    for s in (0.5, 2.0, 3.0):
        torch.testing.assert_close(orthonormality_loss(s * x),
                                   torch.tensor(2 * (s - 1) ** 2, dtype=torch.float64))
    xg = (1.5 * x).requires_grad_(True)
    orthonormality_loss(xg).backward()
    assert torch.isfinite(xg.grad).all() and xg.grad.abs().sum() > 0


def test_nll_loss_masks_and_averages_over_available():
    lp = torch.tensor([-1.0, -2.0, -3.0], requires_grad=True)
    torch.testing.assert_close(nll_loss(lp), torch.tensor(2.0))
    out = nll_loss(lp, mask=torch.tensor([1.0, 0.0, 1.0]))
    torch.testing.assert_close(out, torch.tensor(2.0))
    out.backward()
    torch.testing.assert_close(lp.grad, torch.tensor([-0.5, 0.0, -0.5]))
    lp_bad = torch.tensor([-1.0, float("-inf")])
    torch.testing.assert_close(nll_loss(lp_bad, torch.tensor([True, False])), torch.tensor(1.0))
    assert nll_loss(lp, torch.zeros(3, dtype=torch.bool)) == 0


def test_term_losses_reject_bad_shapes():
    with pytest.raises(ValueError, match="pred, gt"):
        keypoint_2d_loss(torch.zeros(2, 4, 2), torch.zeros(2, 5, 3))
    with pytest.raises(ValueError, match="gt: expected"):
        keypoint_2d_loss(torch.zeros(2, 4, 2), torch.zeros(3, 4, 3))
    with pytest.raises(ValueError, match="pelvis_ids"):
        keypoint_3d_loss(torch.zeros(2, 4, 3), torch.zeros(2, 4, 4), pelvis_ids=7)
    with pytest.raises(ValueError, match="kind"):
        keypoint_2d_loss(torch.zeros(2, 4, 2), torch.zeros(2, 4, 3), kind="huber")
    with pytest.raises(ValueError, match="pred_rotmat"):
        rotmat_loss(torch.zeros(2, 23, 3, 3), torch.zeros(2, 24, 3, 3))
    with pytest.raises(ValueError, match="mask"):
        betas_loss(torch.zeros(2, 10), torch.zeros(2, 10), mask=torch.ones(3))
    with pytest.raises(ValueError, match="x6d"):
        orthonormality_loss(torch.zeros(4, 9))
    with pytest.raises(ValueError, match="log_prob"):
        nll_loss(torch.tensor(1.0))
