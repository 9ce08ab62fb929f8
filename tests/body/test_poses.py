import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from condflow.body.model import BodyModel
from condflow.body.poses import (
    JOINT_LIMITS,
    POSE_FAMILIES,
    PoseGenerator,
    PoseSample,
    sample_poses,
)
from condflow.body.synthetic import generate_synthetic_smpl
from condflow.joints import SMPL_JOINT_NAMES

BODY = {name: i for i, name in enumerate(SMPL_JOINT_NAMES[1:])}  # index into body_pose


@pytest.fixture(scope="module")
def body(tmp_path_factory):
    out = tmp_path_factory.mktemp("synthetic")
    generate_synthetic_smpl(out)
    return BodyModel(out)


def _family(name, n=400, seed=0, **kwargs):
    return PoseGenerator(seed, families=[name], **kwargs).sample(n)


def _hip_flexion_deg(sample, side="left"):
    """Angle of the thigh in front of the vertical, in degrees (the leg rests along -y)."""
    rot = Rotation.from_rotvec(sample.body_pose[:, BODY[f"{side}_hip"]].double().numpy())
    thigh = rot.apply([0.0, -1.0, 0.0])
    return np.degrees(np.arctan2(thigh[:, 2], -thigh[:, 1]))


def test_shapes_and_dtypes():
    s = sample_poses(7, seed=1)
    assert isinstance(s, PoseSample) and len(s) == 7
    assert s.global_orient.shape == (7, 3) and s.global_orient.dtype == torch.float32
    assert s.body_pose.shape == (7, 23, 3) and s.betas.shape == (7, 10)
    assert s.family.dtype == torch.long
    assert ((s.family >= 0) & (s.family < len(POSE_FAMILIES))).all()


def test_reproducible_and_seed_dependent():
    a, b, c = sample_poses(50, seed=3), sample_poses(50, seed=3), sample_poses(50, seed=4)
    for field in ("global_orient", "body_pose", "betas", "family"):
        assert torch.equal(getattr(a, field), getattr(b, field))
    assert not torch.equal(a.body_pose, c.body_pose)
    gen = PoseGenerator(3)
    first, second = gen.sample(50), gen.sample(50)
    assert torch.equal(first.body_pose, a.body_pose)
    assert not torch.equal(first.body_pose, second.body_pose)


def test_all_families_are_drawn():
    s = sample_poses(600, seed=0)
    counts = torch.bincount(s.family, minlength=len(POSE_FAMILIES))
    assert (counts > 60).all()


@pytest.mark.parametrize("family", POSE_FAMILIES)
def test_hinge_joints_bend_one_way_within_limits(family):
    pose = _family(family, n=300).body_pose.double()
    for side in ("left", "right"):
        knee = pose[:, BODY[f"{side}_knee"]]
        assert torch.allclose(knee[:, 1:], torch.zeros_like(knee[:, 1:]), atol=1e-7)
        assert (knee[:, 0] >= 0).all() and (knee[:, 0] <= np.radians(145) + 1e-5).all()
        elbow = pose[:, BODY[f"{side}_elbow"]]
        assert torch.allclose(elbow[:, [0, 2]], torch.zeros_like(elbow[:, [0, 2]]), atol=1e-7)
        sign = -1.0 if side == "left" else 1.0  # left elbow flexes about -y, right about +y
        assert (sign * elbow[:, 1] >= 0).all()
        assert (elbow[:, 1].abs() <= np.radians(145) + 1e-5).all()


@pytest.mark.parametrize("family", POSE_FAMILIES)
def test_euler_angles_respect_joint_limits(family):
    pose = _family(family, n=300, seed=5).body_pose.double().numpy()
    for name, j in BODY.items():
        kind = name.removeprefix("left_").removeprefix("right_")
        kind = "spine" if kind.startswith("spine") else kind
        low, high = (np.array(v) for v in JOINT_LIMITS[kind])
        if kind == "shoulder":  # |az| may pass 90 degrees, where Euler angles are ambiguous
            continue
        rotvec = pose[:, j].copy()
        if name.startswith("right_"):
            rotvec[:, 1:] *= -1  # back to the left-side convention
        ay, az, ax = Rotation.from_rotvec(rotvec).as_euler("yzx", degrees=True).T
        angles = np.stack([ax, ay, az], 1)
        assert (angles >= low - 1e-3).all() and (angles <= high + 1e-3).all(), name  # float32


def test_families_differ_measurably():
    sitting = np.concatenate([_hip_flexion_deg(_family("sitting"), s) for s in ("left", "right")])
    standing = np.concatenate(
        [_hip_flexion_deg(_family("standing"), s) for s in ("left", "right")]
    )
    crouching = _hip_flexion_deg(_family("crouching"))
    assert abs(sitting.mean() - 90.0) < 5.0
    assert abs(standing.mean()) < 10.0
    assert crouching.mean() > 80.0
    knees = _family("crouching").body_pose[:, BODY["left_knee"], 0]
    assert np.degrees(knees.mean().item()) > 90.0


def test_walking_swings_opposite_limbs():
    s = _family("walking", n=500)
    left, right = _hip_flexion_deg(s, "left"), _hip_flexion_deg(s, "right")
    assert np.corrcoef(left, right)[0, 1] < -0.8
    # the left arm swings forward with the right leg: the left hand moves to +z
    rot = Rotation.from_rotvec(s.body_pose[:, BODY["left_shoulder"]].double().numpy())
    arm_forward = rot.apply([1.0, 0.0, 0.0])[:, 2]
    assert np.corrcoef(arm_forward, right)[0, 1] > 0.8


def test_reaching_raises_or_extends_an_arm():
    s = _family("reaching", n=300)
    hands = []
    for side, x in (("left", 1.0), ("right", -1.0)):
        rot = Rotation.from_rotvec(s.body_pose[:, BODY[f"{side}_shoulder"]].double().numpy())
        hands.append(rot.apply([x, 0.0, 0.0]))
    up_or_forward = np.maximum(hands[0][:, 1:].max(1), hands[1][:, 1:].max(1))
    assert (up_or_forward > 0.6).all()  # some upper arm points clearly up or forward


def test_global_orientation_options():
    fixed = _family("standing", n=100, random_orient=False)
    assert torch.equal(fixed.global_orient, torch.zeros(100, 3))
    free = _family("standing", n=2000)
    rot = Rotation.from_rotvec(free.global_orient.double().numpy())
    up = rot.apply([0.0, 1.0, 0.0])
    assert np.degrees(np.arccos(np.clip(up[:, 1], -1, 1))).max() < 22.0  # small pitch/roll
    facing = rot.apply([0.0, 0.0, 1.0])
    yaw = np.arctan2(facing[:, 0], facing[:, 2])
    assert yaw.min() < -3.0 and yaw.max() > 3.0  # yaw covers [-pi, pi]
    crouch = _family("crouching", n=200, random_orient=False)
    lean = Rotation.from_rotvec(crouch.global_orient.double().numpy()).apply([0.0, 1.0, 0.0])
    assert (lean[:, 2] > 0).all()  # the pelvis tilts forward


def test_betas_options():
    s = sample_poses(2000, seed=2)
    assert abs(s.betas.std().item() - 1.0) < 0.05 and s.betas.abs().max() <= 3.0
    assert torch.equal(sample_poses(5, betas_std=0.0).betas, torch.zeros(5, 10))
    assert sample_poses(500, betas_clip=0.5).betas.abs().max() <= 0.5


def test_invalid_arguments():
    with pytest.raises(ValueError, match="n"):
        PoseGenerator().sample(0)
    with pytest.raises(ValueError, match="families"):
        PoseGenerator(families=["dancing"])
    with pytest.raises(ValueError, match="family_weights"):
        PoseGenerator(families=["sitting", "walking"], family_weights=[1.0])
    with pytest.raises(ValueError, match="betas_std"):
        PoseGenerator(betas_std=-1.0)


def test_posed_bodies_are_finite_and_stand_on_their_feet(body):
    s = PoseGenerator(0, random_orient=False).sample(120)
    out = body.forward_axis_angle(s.global_orient, s.body_pose, s.betas)
    assert torch.isfinite(out.vertices).all() and torch.isfinite(out.joints).all()
    standing = s.family == POSE_FAMILIES.index("standing")
    assert standing.sum() > 5
    joints = out.joints[standing]
    ankles_y = joints[:, [7, 8], 1]
    assert (ankles_y < joints[:, :1, 1] - 0.6).all()  # both feet well below the pelvis
    assert (joints[:, 15, 1] > joints[:, 0, 1] + 0.4).all()  # head above the pelvis
