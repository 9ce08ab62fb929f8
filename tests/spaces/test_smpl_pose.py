import pytest
import torch
from scipy.spatial.transform import Rotation

from condflow.spaces.smpl_pose import (
    NUM_SMPL_JOINTS,
    SMPL_JOINT_NAMES,
    SMPL_PARENTS,
    SMPL_POSE_DIM,
    SMPLPoseSpace,
)

space = SMPLPoseSpace()


def _random_axis_angle(batch: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    rv = Rotation.random(batch * NUM_SMPL_JOINTS, random_state=seed).as_rotvec()
    aa = torch.tensor(rv, dtype=torch.float64).reshape(batch, NUM_SMPL_JOINTS, 3)
    return aa[:, 0], aa[:, 1:]


def test_constants_describe_the_smpl_tree():
    assert SMPL_POSE_DIM == 144 == space.dim
    assert len(SMPL_JOINT_NAMES) == len(SMPL_PARENTS) == NUM_SMPL_JOINTS
    assert SMPL_PARENTS[0] == -1
    assert all(0 <= p < j for j, p in enumerate(SMPL_PARENTS) if j > 0)
    name = dict(enumerate(SMPL_JOINT_NAMES))
    assert name[SMPL_PARENTS[SMPL_JOINT_NAMES.index("left_knee")]] == "left_hip"
    assert name[SMPL_PARENTS[SMPL_JOINT_NAMES.index("right_wrist")]] == "right_elbow"
    assert name[SMPL_PARENTS[SMPL_JOINT_NAMES.index("head")]] == "neck"


def test_axis_angle_round_trip_and_joint_order():
    go, bp = _random_axis_angle(5, seed=0)
    x = space.from_axis_angle(go, bp)
    assert x.shape == (5, 144)
    go2, bp2 = space.to_axis_angle(x)
    assert go2.shape == (5, 3) and bp2.shape == (5, 23, 3)
    torch.testing.assert_close(go2, go)
    torch.testing.assert_close(bp2, bp)
    # Features of joint j are the 6D representation of joint j's rotation.
    r = space.to_rotmat(x)
    expected = torch.tensor(Rotation.from_rotvec(bp[2, 4].numpy()).as_matrix())
    torch.testing.assert_close(r[2, 5], expected)


def test_flat_body_pose_is_accepted():
    go, bp = _random_axis_angle(2, seed=1)
    torch.testing.assert_close(space.from_axis_angle(go, bp.reshape(2, 69)),
                               space.from_axis_angle(go, bp))


def test_rotmat_round_trip_and_split_with_sample_axis():
    x = torch.randn(3, 4, 144, generator=torch.Generator().manual_seed(2))
    r = space.to_rotmat(x)
    assert r.shape == (3, 4, 24, 3, 3)
    x_orth = space.from_rotmat(r)
    torch.testing.assert_close(space.to_rotmat(x_orth), r, atol=1e-5, rtol=0)
    go, bp = space.split(x)
    assert go.shape == (3, 4, 6) and bp.shape == (3, 4, 138)
    torch.testing.assert_close(torch.cat([go, bp], -1), x)


def test_identity_pose_is_zero_axis_angle():
    x = space.from_rotmat(torch.eye(3).expand(2, 24, 3, 3))
    go, bp = space.to_axis_angle(x)
    assert go.abs().max() == 0 and bp.abs().max() == 0


@pytest.mark.parametrize(
    ("method", "arg", "bad"),
    [
        ("to_rotmat", "x", torch.zeros(2, 143)),
        ("split", "x", torch.zeros(2, 72)),
        ("to_axis_angle", "x", torch.zeros(2, 24, 6)),
        ("from_rotmat", "rotmat", torch.zeros(2, 23, 3, 3)),
    ],
)
def test_wrong_size_raises(method, arg, bad):
    with pytest.raises(ValueError, match=f"{arg}: expected shape"):
        getattr(space, method)(bad)


def test_nan_and_mismatch_raise():
    x = torch.zeros(2, 144)
    x[1, 7] = float("nan")
    with pytest.raises(ValueError, match="x: contains NaN"):
        space.to_rotmat(x)
    with pytest.raises(ValueError, match="body_pose"):
        space.from_axis_angle(torch.zeros(2, 3), torch.zeros(2, 24, 3))
    with pytest.raises(ValueError, match="leading dimensions"):
        space.from_axis_angle(torch.zeros(2, 3), torch.zeros(3, 23, 3))
    with pytest.raises(ValueError, match="global_orient: expected a floating"):
        space.from_axis_angle(torch.zeros(2, 3, dtype=torch.long), torch.zeros(2, 23, 3))
