"""Human3.6M lifting format: camera transform, normalization, splits, joints, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation
from torch.utils.data import DataLoader

from condflow.data.h36m import (
    H36M_KEPT_JOINTS,
    H36M_NOSE_INDEX,
    H36M_TEST_SUBJECTS,
    H36M_TRAIN_SUBJECTS,
    H36MLiftingDataset,
    load_h36m_cameras,
    load_h36m_lifting,
    write_h36m_cameras,
    write_h36m_lifting_npz,
)
from condflow.data.screen import normalize_screen_coordinates
from condflow.spaces.rotations import quaternion_to_matrix

SUBJECTS = ("S1", "S9")
ACTIONS = ("Walking 1", "Eating")
NUM_FRAMES = 5


def make_cameras(rng: np.random.Generator) -> dict[str, list[dict]]:
    """Random cameras looking at the world origin from about 4.5 m away."""
    cams = {}
    for s in SUBJECTS:
        cams[s] = []
        for _ in range(4):
            rot = Rotation.random(random_state=int(rng.integers(1 << 30)))  # camera → world
            distance = 4500.0 + rng.uniform(-500, 500)
            x, y, z, w = rot.as_quat()
            cams[s].append(
                {
                    "orientation": [w, x, y, z],
                    "translation": (-rot.apply([0.0, 0.0, distance])).tolist(),
                    "center": rng.uniform(480, 520, size=2).tolist(),
                    "focal_length": rng.uniform(1140, 1150, size=2).tolist(),
                    "res_w": 1000,
                    "res_h": 1002,
                    "radial_distortion": [0.0, 0.0, 0.0],  # extra fields are ignored
                }
            )
    return cams


def to_camera(world_mm: np.ndarray, cam: dict) -> np.ndarray:
    """Reference transform with scipy: R(q)ᵀ (X − t)."""
    w, x, y, z = cam["orientation"]
    rot = Rotation.from_quat([x, y, z, w])
    flat = world_mm.reshape(-1, 3) - np.asarray(cam["translation"])
    return rot.inv().apply(flat).reshape(world_mm.shape)


def project(cam_mm: np.ndarray, cam: dict) -> np.ndarray:
    f, c = np.asarray(cam["focal_length"]), np.asarray(cam["center"])
    return f * cam_mm[..., :2] / cam_mm[..., 2:] + c


@pytest.fixture()
def h36m_files(tmp_path):
    """Tiny files: 2 subjects × 2 actions × 4 cameras × 5 frames, 2D = exact projections."""
    rng = np.random.default_rng(0)
    cams = make_cameras(rng)
    positions_3d, positions_2d, expected = {}, {}, {}
    for s in SUBJECTS:
        positions_3d[s], positions_2d[s] = {}, {}
        for a in ACTIONS:
            world_m = rng.normal(scale=0.4, size=(NUM_FRAMES, 32, 3))
            positions_3d[s][a] = world_m
            views = []
            for ci, cam in enumerate(cams[s]):
                cam_mm = to_camera(world_m[:, list(H36M_KEPT_JOINTS)] * 1000.0, cam)
                expected[s, a, ci] = cam_mm
                kp = project(cam_mm, cam)
                if ci == 1:  # a 2D sequence longer than the mocap: trimmed on load
                    kp = np.concatenate([kp, kp[:2] + 1.0])
                views.append(kp)
            positions_2d[s][a] = views
    path_3d, path_2d = tmp_path / "data_3d_h36m.npz", tmp_path / "data_2d_h36m_gt.npz"
    write_h36m_lifting_npz(path_3d, path_2d, positions_3d, positions_2d)
    return {
        "path_3d": path_3d,
        "path_2d": path_2d,
        "cameras": cams,
        "expected": expected,
        "positions_3d": positions_3d,
        "positions_2d": positions_2d,
        "tmp": tmp_path,
    }


def test_camera_frame_transform_and_projection(h36m_files):
    f = h36m_files
    data = load_h36m_lifting(f["path_3d"], f["path_2d"], f["cameras"], root_relative=False)
    assert len(data) == len(SUBJECTS) * len(ACTIONS) * 4 * NUM_FRAMES
    assert data.poses_3d.shape == (len(data), 17, 3) and data.poses_3d.dtype == np.float32
    assert data.keypoints_2d.shape == (len(data), 17, 2)
    for i in range(len(data)):
        s = data.subject_names[data.subject[i]]
        a = data.action_names[data.action[i]]
        cam = f["cameras"][s][data.camera[i]]
        expected = f["expected"][s, a, data.camera[i]][data.frame[i]]
        np.testing.assert_allclose(data.poses_3d[i], expected, atol=1e-2)
        # Project the loaded 3D and normalize by hand: u/w·2 − 1, v/w·2 − h/w.
        uv = project(data.poses_3d[i].astype(np.float64), cam)
        normalized = np.stack([uv[:, 0] / 1000 * 2 - 1, uv[:, 1] / 1000 * 2 - 1002 / 1000], -1)
        np.testing.assert_allclose(data.keypoints_2d[i], normalized, atol=1e-4)
    assert (data.poses_3d[..., 2] > 0).all()


def test_root_relative_millimetres(h36m_files):
    f = h36m_files
    absolute = load_h36m_lifting(f["path_3d"], f["path_2d"], f["cameras"], root_relative=False)
    relative = load_h36m_lifting(f["path_3d"], f["path_2d"], f["cameras"])
    assert np.abs(relative.poses_3d[:, 0]).max() == 0.0
    np.testing.assert_allclose(
        relative.poses_3d, absolute.poses_3d - absolute.poses_3d[:, :1], atol=1e-3
    )
    # Bone lengths are preserved by the rigid transform and converted from metres to mm.
    s, a = data_key(relative, 0)
    world_mm = f["positions_3d"][s][a][0][list(H36M_KEPT_JOINTS)] * 1000.0
    bone = np.linalg.norm(world_mm[1] - world_mm[0])
    assert np.linalg.norm(relative.poses_3d[0, 1]) == pytest.approx(bone, rel=1e-5)


def data_key(data, i):
    return data.subject_names[data.subject[i]], data.action_names[data.action[i]]


def test_subject_split_and_stride(h36m_files):
    f = h36m_files
    assert set(H36M_TRAIN_SUBJECTS) == {"S1", "S5", "S6", "S7", "S8"}
    assert set(H36M_TEST_SUBJECTS) == {"S9", "S11"}
    train = [s for s in H36M_TRAIN_SUBJECTS if s in SUBJECTS]
    data = load_h36m_lifting(f["path_3d"], f["path_2d"], f["cameras"], subjects=train, stride=2)
    assert data.subject_names == ("S1",)
    assert (data.subject == 0).all()
    assert len(data) == len(ACTIONS) * 4 * 3  # frames 0, 2, 4
    assert set(data.frame.tolist()) == {0, 2, 4}
    assert sorted(set(data.camera.tolist())) == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="subject 'S11' not found"):
        load_h36m_lifting(f["path_3d"], f["path_2d"], f["cameras"], subjects=H36M_TEST_SUBJECTS)


def test_sixteen_joint_variant_drops_the_nose(h36m_files):
    f = h36m_files
    full = load_h36m_lifting(f["path_3d"], f["path_2d"], f["cameras"])
    reduced = load_h36m_lifting(f["path_3d"], f["path_2d"], f["cameras"], num_joints=16)
    assert reduced.poses_3d.shape[1:] == (16, 3) and reduced.keypoints_2d.shape[1:] == (16, 2)
    np.testing.assert_array_equal(reduced.poses_3d, np.delete(full.poses_3d, H36M_NOSE_INDEX, 1))
    np.testing.assert_array_equal(
        reduced.keypoints_2d, np.delete(full.keypoints_2d, H36M_NOSE_INDEX, 1)
    )


def test_non_h36m_2d_layout_keeps_all_keypoints(h36m_files):
    f = h36m_files
    path_2d = f["tmp"] / "data_2d_h36m_coco.npz"
    path_3d = f["tmp"] / "copy_3d.npz"
    meta = {"layout_name": "coco", "num_joints": 17, "keypoints_symmetry": [[], []]}
    write_h36m_lifting_npz(path_3d, path_2d, f["positions_3d"], f["positions_2d"], meta)
    data = load_h36m_lifting(path_3d, path_2d, f["cameras"], num_joints=16)
    assert data.poses_3d.shape[1:] == (16, 3) and data.keypoints_2d.shape[1:] == (17, 2)


def test_confidences_pass_through(h36m_files):
    f = h36m_files
    rng = np.random.default_rng(1)
    with_conf = {
        s: {
            a: [np.concatenate([v, rng.uniform(size=v.shape[:2] + (1,))], -1) for v in views]
            for a, views in acts.items()
        }
        for s, acts in f["positions_2d"].items()
    }
    path_3d, path_2d = f["tmp"] / "c3.npz", f["tmp"] / "c2.npz"
    write_h36m_lifting_npz(path_3d, path_2d, f["positions_3d"], with_conf)
    data = load_h36m_lifting(path_3d, path_2d, f["cameras"], subjects=("S9",))
    plain = load_h36m_lifting(f["path_3d"], f["path_2d"], f["cameras"], subjects=("S9",))
    assert data.keypoints_2d.shape[-1] == 3
    np.testing.assert_allclose(data.keypoints_2d[..., :2], plain.keypoints_2d, atol=1e-6)
    first = with_conf["S9"][data.action_names[0]][0][:, :, 2]
    np.testing.assert_allclose(data.keypoints_2d[:NUM_FRAMES, :, 2], first, atol=1e-6)
    dataset = H36MLiftingDataset(data, with_confidence=True)
    assert dataset[0]["keypoints_2d"].shape == (17, 3)
    assert H36MLiftingDataset(data)[0]["keypoints_2d"].shape == (17, 2)


def test_dataset_items_and_batching(h36m_files):
    f = h36m_files
    ds = H36MLiftingDataset.from_files(
        f["path_3d"],
        f["path_2d"],
        f["cameras"],
        subjects=("S1",),
        num_joints=16,
        with_confidence=True,
    )
    item = ds[3]
    assert item["keypoints_2d"].shape == (16, 3) and item["joints_3d"].shape == (16, 3)
    assert item["keypoints_2d"].dtype == torch.float32
    assert torch.equal(item["keypoints_2d"][:, 2], torch.ones(16))
    np.testing.assert_array_equal(item["joints_3d"].numpy(), ds.data.poses_3d[3])
    batch = next(iter(DataLoader(ds, batch_size=4)))
    assert batch["joints_3d"].shape == (4, 16, 3)
    assert batch["camera_index"].dtype == torch.int64 and batch["camera_index"].shape == (4,)


def test_cameras_file_round_trip(h36m_files):
    f = h36m_files
    reference = load_h36m_lifting(f["path_3d"], f["path_2d"], f["cameras"])
    for name in ("cams.json", "cams.npz"):
        path = f["tmp"] / name
        write_h36m_cameras(path, f["cameras"])
        loaded = load_h36m_cameras(path)
        for s in SUBJECTS:
            for ours, theirs in zip(loaded[s], f["cameras"][s], strict=True):
                np.testing.assert_allclose(ours["orientation"], theirs["orientation"])
                assert ours["res_h"] == 1002
        data = load_h36m_lifting(f["path_3d"], f["path_2d"], path)
        np.testing.assert_array_equal(data.poses_3d, reference.poses_3d)


def test_helpers_match_references():
    rot = Rotation.random(7, random_state=3)
    xyzw = rot.as_quat()
    wxyz = np.concatenate([xyzw[:, 3:], xyzw[:, :3]], 1)
    np.testing.assert_allclose(quaternion_to_matrix(torch.from_numpy(2.0 * wxyz)).numpy(),
                               rot.as_matrix(), atol=1e-12)
    corners = np.array([[0.0, 0.0], [1000.0, 1002.0], [500.0, 501.0]])
    np.testing.assert_allclose(
        normalize_screen_coordinates(corners, 1000, 1002),
        [[-1.0, -1.002], [1.0, 1.002], [0.0, 0.0]],
    )


def test_clear_errors(h36m_files, tmp_path):
    f = h36m_files
    p3, p2, cams = f["path_3d"], f["path_2d"], f["cameras"]
    with pytest.raises(FileNotFoundError, match="path_3d: no such file"):
        load_h36m_lifting(tmp_path / "missing.npz", p2, cams)
    with pytest.raises(FileNotFoundError, match="cameras: no such file"):
        load_h36m_lifting(p3, p2, tmp_path / "missing.json")

    wrong_key = tmp_path / "wrong_key.npz"
    np.savez(wrong_key, poses=np.zeros(3))
    with pytest.raises(ValueError, match="path_3d: .* has no 'positions_3d' entry"):
        load_h36m_lifting(wrong_key, p2, cams)
    no_meta = tmp_path / "no_meta.npz"
    np.savez(no_meta, positions_2d=np.load(p2, allow_pickle=True)["positions_2d"])
    with pytest.raises(ValueError, match="path_2d: .* has no 'metadata' entry"):
        load_h36m_lifting(p3, no_meta, cams)

    def rewrite(pos3, pos2):
        a, b = tmp_path / "a.npz", tmp_path / "b.npz"
        write_h36m_lifting_npz(a, b, pos3, pos2)
        return a, b

    bad3 = {s: {a: v[:, :17] for a, v in acts.items()} for s, acts in f["positions_3d"].items()}
    with pytest.raises(ValueError, match=r"must be \[T, 32, 3\], got \[5, 17, 3\]"):
        load_h36m_lifting(*rewrite(bad3, f["positions_2d"]), cams)
    short = {
        s: {a: [v[:3] for v in views] for a, views in acts.items()}
        for s, acts in f["positions_2d"].items()
    }
    with pytest.raises(ValueError, match="has 3 frames, fewer than the 5 3D frames"):
        load_h36m_lifting(*rewrite(f["positions_3d"], short), cams)
    three_cams = {
        s: {a: views[:3] for a, views in acts.items()} for s, acts in f["positions_2d"].items()
    }
    with pytest.raises(ValueError, match="must have 4 camera arrays, got 3"):
        load_h36m_lifting(*rewrite(f["positions_3d"], three_cams), cams)

    with pytest.raises(ValueError, match="cameras: subject 'S9' not found"):
        load_h36m_lifting(p3, p2, {"S1": cams["S1"]}, subjects=("S1", "S9"))
    broken = {s: [dict(c) for c in cs] for s, cs in cams.items()}
    del broken["S1"][2]["focal_length"]
    with pytest.raises(ValueError, match="subject 'S1' camera 2 has no 'focal_length'"):
        load_h36m_lifting(p3, p2, broken)
    broken["S1"][2]["focal_length"] = [1.0, 2.0, 3.0]
    with pytest.raises(ValueError, match="'focal_length' must be 2 finite numbers"):
        load_h36m_lifting(p3, p2, broken)
    with pytest.raises(ValueError, match="stride"):
        load_h36m_lifting(p3, p2, cams, stride=0)
    with pytest.raises(ValueError, match="num_joints"):
        load_h36m_lifting(p3, p2, cams, num_joints=15)
    with pytest.raises(ValueError, match="subjects: expected a sequence"):
        load_h36m_lifting(p3, p2, cams, subjects="S1")
