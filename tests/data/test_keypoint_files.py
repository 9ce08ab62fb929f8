"""Reading keypoint files: formats, layout mappings and clear errors for bad files."""

import json

import numpy as np
import pytest

from condflow.data.keypoint_files import (
    BODY25_FOR_SPIN24,
    body25_to_h36m16,
    body25_to_spin24,
    coco17_to_h36m16,
    load_keypoints,
    to_h36m16,
)


def body25(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    kp = np.concatenate([rng.uniform(0, 500, (25, 2)), rng.uniform(0.5, 1.0, (25, 1))], 1)
    return kp


def write_openpose(path, people):
    path.write_text(json.dumps({"version": 1.3, "people": [
        {"person_id": [-1], "pose_keypoints_2d": p.reshape(-1).tolist()} for p in people]}))


def test_openpose_json(tmp_path):
    a, b = body25(0), body25(1)
    write_openpose(tmp_path / "op.json", [a, b])
    kf = load_keypoints(tmp_path / "op.json")
    assert kf.layout == "body25" and kf.keypoints.shape == (2, 25, 3)
    assert np.allclose(kf.keypoints[1], b)


def test_coco_json_visibility_flags_and_scores(tmp_path):
    kp = np.zeros((17, 3))
    kp[:, :2] = np.arange(34).reshape(17, 2)
    kp[:, 2] = 2.0
    kp[3, 2] = 0.0
    kp[4, 2] = 1.0
    (tmp_path / "coco.json").write_text(json.dumps(
        {"annotations": [{"keypoints": kp.reshape(-1).tolist(), "image_id": 1}]}))
    kf = load_keypoints(tmp_path / "coco.json")
    assert kf.layout == "coco17"
    assert np.array_equal(kf.keypoints[0, :, 2], np.r_[1, 1, 1, 0, 1, np.ones(12)])
    scores = kp.copy()
    scores[:, 2] = 0.7  # detector results: kept as confidences
    (tmp_path / "res.json").write_text(json.dumps([{"keypoints": scores.reshape(-1).tolist()}]))
    assert np.allclose(load_keypoints(tmp_path / "res.json").keypoints[0, :, 2], 0.7)


def test_npy_and_csv(tmp_path):
    arr = np.random.default_rng(0).uniform(0, 100, (16, 2))
    np.save(tmp_path / "kp.npy", arr)
    kf = load_keypoints(tmp_path / "kp.npy")
    assert kf.layout == "h36m16" and kf.keypoints.shape == (1, 16, 3)
    assert np.array_equal(kf.keypoints[0, :, 2], np.ones(16))
    rows = "x,y,c\n" + "\n".join(f"{x},{y},0.5" for x, y in arr)
    (tmp_path / "kp.csv").write_text(rows)
    kf = load_keypoints(tmp_path / "kp.csv")
    assert np.allclose(kf.keypoints[0, :, :2], arr) and np.allclose(kf.keypoints[0, :, 2], 0.5)
    np.save(tmp_path / "k17.npy", np.ones((3, 17, 3)))
    assert load_keypoints(tmp_path / "k17.npy").layout == "h36m17"


def test_body25_to_h36m16_mapping():
    kp = body25()
    h = body25_to_h36m16(kp)
    assert h.shape == (16, 3)
    assert np.array_equal(h[0], kp[8])  # hip ← MidHip
    assert np.array_equal(h[1], kp[9]) and np.array_equal(h[6], kp[14])  # RHip, LFoot
    assert np.array_equal(h[8], kp[1])  # thorax ← neck
    assert np.allclose(h[7, :2], (kp[8, :2] + kp[1, :2]) / 2)  # spine: midpoint
    assert h[7, 2] == min(kp[8, 2], kp[1, 2])
    assert np.allclose(h[9, :2], kp[[0, 15, 16, 17, 18], :2].mean(0))  # head: face centre
    assert np.array_equal(h[10], kp[5]) and np.array_equal(h[15], kp[4])  # LShoulder, RWrist
    hidden = kp.copy()
    hidden[[0, 15, 16, 17, 18], 2] = 0.0  # no face point: no head
    hidden[1, 2] = 0.0  # no neck: no thorax and no spine
    h = body25_to_h36m16(hidden)
    assert np.array_equal(h[[7, 8, 9]], np.zeros((3, 3)))


def test_coco_and_h36m17_to_h36m16(tmp_path):
    coco = body25()[:17]
    h = coco17_to_h36m16(coco)
    assert np.allclose(h[0, :2], (coco[11, :2] + coco[12, :2]) / 2)
    assert np.array_equal(h[1], coco[12]) and np.array_equal(h[4], coco[11])
    np.save(tmp_path / "h17.npy", np.arange(51.0).reshape(17, 3))
    h16 = to_h36m16(load_keypoints(tmp_path / "h17.npy"))
    assert h16.shape == (1, 16, 3) and np.array_equal(h16[0, 9], [30.0, 31.0, 32.0])  # no nose


def test_body25_to_spin24():
    kp = body25()
    spin = body25_to_spin24(kp)
    for s, b in BODY25_FOR_SPIN24.items():
        assert np.array_equal(spin[s], kp[b])
    assert np.array_equal(spin[[13, 15, 16, 17, 18]], np.zeros((5, 3)))


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("bad.json", "{\"people\": [", r"bad\.json: not valid JSON .*expected OpenPose"),
        ("few.json", json.dumps({"people": [{"pose_keypoints_2d": [0.0] * 54}]}),
         r"few\.json: people\[0\]\.pose_keypoints_2d has 54 numbers \(18 joints\); expected 75"),
        ("none.json", json.dumps({"people": []}), r"none\.json: contains no people"),
        ("other.json", json.dumps({"foo": 1}), r"other\.json: expected OpenPose JSON"),
        ("nan.json", json.dumps({"people": [{"pose_keypoints_2d": [float("nan")] * 75}]}),
         r"nan\.json: contains NaN or Inf \(person 0, joint 0\)"),
        ("text.json", json.dumps({"people": [{"pose_keypoints_2d": ["a"] * 75}]}),
         r"text\.json: people\[0\]\.pose_keypoints_2d must be a list of numbers"),
        ("neg.csv", "1,2,-1\n" * 16, r"neg\.csv: has negative confidences"),
        ("ragged.csv", "1,2\n3,4,5\n", r"ragged\.csv: expected one row x,y\[,confidence\]"),
        ("k.txt", "1 2", r"k\.txt: unknown extension '\.txt'; expected \.json"),
    ],
)
def test_bad_files_name_the_file_and_what_was_expected(tmp_path, name, content, message):
    (tmp_path / name).write_text(content)
    with pytest.raises(ValueError, match=message):
        load_keypoints(tmp_path / name)


def test_bad_arrays_and_missing_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="keypoints file not found: .*missing.json"):
        load_keypoints(tmp_path / "missing.json")
    np.save(tmp_path / "k20.npy", np.ones((20, 3)))
    with pytest.raises(ValueError, match=r"k20\.npy: 20 joints per person; expected 16"):
        load_keypoints(tmp_path / "k20.npy")
    np.save(tmp_path / "k4.npy", np.ones((16, 4)))
    with pytest.raises(ValueError, match=r"k4\.npy: array of shape \[16, 4\]; expected"):
        load_keypoints(tmp_path / "k4.npy")
    np.save(tmp_path / "inf.npy", np.full((16, 2), np.inf))
    with pytest.raises(ValueError, match=r"inf\.npy: contains NaN or Inf"):
        load_keypoints(tmp_path / "inf.npy")
    (tmp_path / "junk.npy").write_bytes(b"not an array")
    with pytest.raises(ValueError, match=r"junk\.npy: not a readable \.npy array"):
        load_keypoints(tmp_path / "junk.npy")
    write_openpose(tmp_path / "op.json", [body25()])
    with pytest.raises(ValueError, match="holds body25 keypoints, but layout 'coco17'"):
        load_keypoints(tmp_path / "op.json", layout="coco17")
    with pytest.raises(ValueError, match=r"op\.json: 25 joints per person; expected 16"):
        load_keypoints(tmp_path / "op.json", num_joints=16)
    with pytest.raises(ValueError, match="layout: expected one of"):
        load_keypoints(tmp_path / "op.json", layout="body18")
