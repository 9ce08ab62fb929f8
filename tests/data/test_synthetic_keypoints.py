"""The synthetic keypoints → SMPL set: the lifting set's people, their SMPL parameters in the
camera frame, and a crop camera that reproduces the 2D keypoints."""

import pytest
import torch

import condflow.data.synthetic_keypoints as synthetic_keypoints
from condflow.body.camera import weak_perspective_to_translation
from condflow.body.keypoints import KEYPOINT_PELVIS, KEYPOINT_SOURCES, BodyKeypoints
from condflow.body.model import BodyModel
from condflow.data.synthetic_keypoints import (
    SPIN_LIMBS,
    cached_keypoint_smpl_set,
    crop_camera,
    make_keypoint_smpl_set,
)
from condflow.data.synthetic_lifting import LiftingSetConfig, make_lifting_set
from condflow.heads.prohmr import project_to_crop
from condflow.joints import H36M_17_TO_16, SPIN_KEYPOINT_NAMES
from condflow.losses.prohmr import TERMS, BodyPrediction, SupervisionBatch, prohmr_loss
from condflow.spaces.rotations import axis_angle_to_matrix

CLEAN = {"noise_px": 0.0, "joint_dropout": 0.0, "limb_dropout": 0.0}


@pytest.fixture(scope="module")
def clean(body) -> tuple[LiftingSetConfig, dict[str, torch.Tensor]]:
    cfg = LiftingSetConfig(size=48, seed=2, **CLEAN)
    return cfg, make_keypoint_smpl_set(cfg, body)


def test_shapes_dtypes_and_flags(clean):
    cfg, data = clean
    n = cfg.size
    shapes = {"keypoints_2d": (n, 24, 3), "keypoints_3d": (n, 24, 4), "global_orient": (n, 3),
              "body_pose": (n, 23, 3), "betas": (n, 10), "has_smpl": (n,), "has_betas": (n,),
              "has_3d": (n,), "joints_3d": (n, 17, 3), "transl": (n, 3), "cam": (n, 3),
              "family": (n,)}
    assert {k: tuple(v.shape) for k, v in data.items()} == shapes
    for key, value in data.items():
        assert value.dtype == (torch.int64 if key == "family" else torch.float32), key
        assert torch.isfinite(value.float()).all(), key
    for key in ("has_smpl", "has_betas", "has_3d"):
        assert (data[key] == 1).all()
    assert (data["keypoints_3d"][..., 3] == 1).all()


def test_same_people_as_the_lifting_set(body):
    cfg = LiftingSetConfig(size=40, seed=7, joint_dropout=0.2, limb_dropout=0.2)
    data, lifting = make_keypoint_smpl_set(cfg, body), make_lifting_set(cfg, body)
    assert torch.equal(data["joints_3d"], lifting["joints_3d"])
    assert torch.equal(data["family"], lifting["family"])
    other = make_keypoint_smpl_set(LiftingSetConfig(size=40, seed=8), body)
    assert not torch.allclose(other["joints_3d"], data["joints_3d"])


def test_clean_keypoints_match_the_lifting_sets_keypoints(body, clean):
    """Before noise, the shared Human3.6M joints sit where the lifting set puts them."""
    cfg, data = clean
    lifting = make_lifting_set(cfg, body)["keypoints_2d"]
    spin_of_h36m = {int(key): i for i, (kind, key) in enumerate(KEYPOINT_SOURCES)
                    if kind == "h36m"}
    pairs = [(j16, spin_of_h36m[j17]) for j16, j17 in enumerate(H36M_17_TO_16)
             if j17 in spin_of_h36m]
    assert len(pairs) == 16  # every lifting joint is a SPIN keypoint
    j16, spin = map(list, zip(*pairs, strict=True))
    torch.testing.assert_close(data["keypoints_2d"][:, spin], lifting[:, j16], atol=1e-5,
                               rtol=0)


def test_smpl_parameters_give_back_the_camera_frame_joints(clean):
    _, data = clean
    body64 = BodyModel(dtype=torch.float64)
    out = body64.forward_axis_angle(data["global_orient"].double(), data["body_pose"].double(),
                                    data["betas"].double(), eval_joints=True)
    assert out.eval_joints is not None
    joints = 1000.0 * (out.eval_joints - out.eval_joints[:, :1])
    error = (joints - data["joints_3d"].double()).abs().max()
    assert error < 1e-3, f"{float(error)} mm"


def test_keypoints_3d_are_the_body_models_keypoints_in_the_body_frame(body, clean):
    """ImageDataset's convention: the keypoints of the body posed with the camera-frame
    orientation, without translation (what a mesh head predicts), in metres."""
    _, data = clean
    pose = torch.cat([data["global_orient"][:, None], data["body_pose"]], 1)
    _, _, keypoints = BodyKeypoints(body)(axis_angle_to_matrix(pose), data["betas"])
    torch.testing.assert_close(data["keypoints_3d"][..., :3], keypoints, atol=1e-6, rtol=0)
    # Camera frame: x right, y down, so an upright body's head is above (smaller y than) its
    # ankles, and the body lies in front of the camera.
    head, ankles = SPIN_KEYPOINT_NAMES.index("Top of Head (LSP)"), [0, 5]
    standing = data["family"] == 0
    assert standing.any()
    kp = data["keypoints_3d"][standing]
    assert (kp[:, head, 1] < kp[:, ankles, 1].mean(1)).all()
    assert ((data["keypoints_3d"][..., 2] + data["transl"][:, None, 2]) > 1.0).all()


def test_crop_camera_reproduces_the_clean_keypoints(clean):
    cfg, data = clean
    camera = crop_camera(cfg)
    assert (camera.img_res, camera.focal_length) == (cfg.image_size, cfg.focal_px)
    uv = project_to_crop(data["keypoints_3d"][..., :3], data["cam"], camera.focal_length,
                         camera.img_res)
    torch.testing.assert_close(uv, data["keypoints_2d"][..., :2], atol=1e-5, rtol=0)
    translation = weak_perspective_to_translation(data["cam"], camera.focal_length,
                                                  camera.img_res)
    torch.testing.assert_close(translation, data["transl"], atol=1e-5, rtol=1e-6)


def test_pixel_noise_and_occlusion(body, clean):
    cfg, data = clean
    noise_px = 4.0
    noisy = make_keypoint_smpl_set(LiftingSetConfig(size=cfg.size, seed=cfg.seed,
                                                    noise_px=noise_px, joint_dropout=0.0,
                                                    limb_dropout=0.0), body)
    # The same draws scaled: the pixel offsets are N(0, noise_px^2) draws.
    offsets = (noisy["keypoints_2d"][..., :2] - data["keypoints_2d"][..., :2]) * cfg.image_size / 2
    assert offsets.std().item() == pytest.approx(noise_px, rel=0.1)
    assert offsets.mean().abs().item() < 0.5

    occluded = make_keypoint_smpl_set(LiftingSetConfig(size=200, seed=3, joint_dropout=0.1,
                                                       limb_dropout=0.2), body)
    kp = occluded["keypoints_2d"]
    conf = kp[..., 2]
    assert set(conf.unique().tolist()) == {0.0, 1.0}
    hidden = conf == 0
    assert (kp[hidden][:, :2] == 0).all() and (kp[~hidden][:, :2] != 0).any(-1).all()
    for limb in SPIN_LIMBS:
        whole = hidden[:, list(limb)].all(1).float().mean().item()
        assert 0.12 < whole < 0.3  # 0.2 per limb, plus 0.1^3 by single-joint dropout
    single = hidden[:, [12, 13, 14, 15]].float().mean().item()  # not in any limb
    assert 0.05 < single < 0.15
    # Occlusion never touches the 3D targets.
    assert (occluded["keypoints_3d"][..., 3] == 1).all()


def test_cache_hit_returns_equal_tensors(body, monkeypatch):
    cfg = LiftingSetConfig(size=16, seed=21)
    first = cached_keypoint_smpl_set(cfg, body)

    def fail(*args, **kwargs):
        raise AssertionError("regenerated despite a cached copy")

    monkeypatch.setattr(synthetic_keypoints, "make_keypoint_smpl_set", fail)
    again = cached_keypoint_smpl_set(cfg, body)
    assert again.keys() == first.keys()
    for key in first:
        assert torch.equal(again[key], first[key]), key
    with pytest.raises(AssertionError, match="regenerated"):
        cached_keypoint_smpl_set(LiftingSetConfig(size=16, seed=22), body)


def test_true_parameters_have_zero_mesh_supervision_loss(body, clean):
    """The ProHMR objective's supervision reads the set as it reads an image set: the true
    pose, shape and camera predict its keypoints, so every term of the mode is zero."""
    cfg, data = clean
    rotmat = axis_angle_to_matrix(torch.cat([data["global_orient"][:, None],
                                             data["body_pose"]], 1))
    _, _, kp3d = BodyKeypoints(body)(rotmat, data["betas"])
    camera = crop_camera(cfg)
    kp2d = project_to_crop(kp3d, data["cam"], camera.focal_length, camera.img_res)
    truth = SupervisionBatch(keypoints_2d=data["keypoints_2d"], keypoints_3d=data["keypoints_3d"],
                             rotmat=rotmat, betas=data["betas"], has_3d=data["has_3d"],
                             has_smpl=data["has_smpl"])
    mode = BodyPrediction(keypoints_2d=kp2d[:, None], keypoints_3d=kp3d[:, None],
                          rotmat=rotmat[:, None], betas=data["betas"][:, None])
    terms = prohmr_loss(truth, mode, pelvis_ids=KEYPOINT_PELVIS)
    for term in TERMS:
        assert terms[f"mode/{term}"].item() < 1e-5, term
