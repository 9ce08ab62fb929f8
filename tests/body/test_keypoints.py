"""SPIN's 24 keypoints of a body: the mesh-free computation against the posed mesh."""

import torch

from condflow.body.keypoints import (
    KEYPOINT_PELVIS,
    KEYPOINT_SOURCES,
    BodyKeypoints,
    keypoints_from_body,
)


def test_body_keypoints_equal_the_full_body_model(body, random_rotmat):
    rotmat, betas = random_rotmat(6)
    out = body(rotmat[:, :1], rotmat[:, 1:], betas)
    joints, eval_joints, keypoints = BodyKeypoints(body)(rotmat, betas)
    assert torch.allclose(joints, out.joints, atol=1e-5)
    assert torch.allclose(eval_joints, out.eval_joints, atol=1e-5)
    expected = keypoints_from_body(out.joints, out.eval_joints, out.vertices, body)
    assert keypoints.shape == (6, 24, 3)
    assert torch.allclose(keypoints, expected, atol=1e-5)
    # The nose keypoint is a surface vertex, the pelvis keypoint the first evaluation joint.
    assert torch.equal(expected[:, 19], out.vertices[:, body.vertex_ids["nose"]])
    assert torch.equal(expected[:, 14], out.eval_joints[:, 0])


def test_keypoint_table_names_the_pelvis_and_five_landmarks():
    assert len(KEYPOINT_SOURCES) == 24
    assert KEYPOINT_SOURCES[KEYPOINT_PELVIS] == ("h36m", 0)
    assert [key for kind, key in KEYPOINT_SOURCES if kind == "vertex"] == [
        "nose", "leye", "reye", "lear", "rear"]
