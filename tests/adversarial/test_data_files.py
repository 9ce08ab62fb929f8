"""Damaged, mislabelled and non-finite data files: refused at load, naming the file (and
the row for non-finite values)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from condflow.data.h36m import load_h36m_cameras, load_h36m_lifting
from condflow.data.image_datasets import ImageDataset, write_spin_npz
from condflow.data.keypoint_files import load_keypoints

from .conftest import FRAMES, camera, h36m_arrays


def _write_h36m(path_3d, path_2d, p3, p2):
    from condflow.data.h36m import write_h36m_lifting_npz

    write_h36m_lifting_npz(path_3d, path_2d, p3, p2)


@pytest.mark.parametrize("which", ["path_3d", "path_2d"])
@pytest.mark.parametrize("keep", [0.0, 0.1, 0.5, 0.9, 0.99])
def test_truncated_npz_is_named(h36m_files, which, keep):
    path_3d, path_2d, cams = h36m_files
    path = path_3d if which == "path_3d" else path_2d
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(ValueError, match=rf"{which}: {path}: not a readable \.npz file"):
        load_h36m_lifting(path_3d, path_2d, cams)


@pytest.mark.parametrize("content", [b"not a zip at all", b"PK\x03\x04garbage", b"\x00" * 64])
def test_non_npz_bytes_are_named(h36m_files, content):
    path_3d, path_2d, cams = h36m_files
    path_3d.write_bytes(content)
    with pytest.raises(ValueError, match=rf"path_3d: {path_3d}: not a readable \.npz file"):
        load_h36m_lifting(path_3d, path_2d, cams)


def test_wrong_keys_are_named(h36m_files):
    path_3d, path_2d, cams = h36m_files
    np.savez(path_3d, poses=np.zeros(3))
    with pytest.raises(ValueError, match=rf"path_3d: {path_3d} has no 'positions_3d' entry "
                                         r"\(entries: \['poses'\]\)"):
        load_h36m_lifting(path_3d, path_2d, cams)


def test_plain_array_where_a_dict_is_expected(h36m_files):
    path_3d, path_2d, cams = h36m_files
    np.savez(path_3d, positions_3d=np.zeros((3, 32, 3)))
    with pytest.raises(ValueError, match=rf"path_3d: 'positions_3d' in {path_3d} must be a 0-d "
                                         "object array holding a dict"):
        load_h36m_lifting(path_3d, path_2d, cams)


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("frame", [0, 3, FRAMES - 1])
def test_non_finite_3d_frame_is_named(h36m_files, value, frame):
    path_3d, path_2d, cams = h36m_files
    p3, p2 = h36m_arrays()
    p3["S9"]["Eating"][frame, 7, 1] = value
    _write_h36m(path_3d, path_2d, p3, p2)
    with pytest.raises(ValueError, match=rf"path_3d: {path_3d} subject 'S9' action 'Eating': "
                                         rf"frame {frame} holds NaN or Inf"):
        load_h36m_lifting(path_3d, path_2d, cams)


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_non_finite_2d_frame_is_named_even_when_not_drawn(h36m_files, value):
    path_3d, path_2d, cams = h36m_files
    p3, p2 = h36m_arrays()
    p2["S1"]["Walking"][2][4, 0, 0] = value
    _write_h36m(path_3d, path_2d, p3, p2)
    with pytest.raises(ValueError, match=rf"path_2d: {path_2d} subject 'S1' action 'Walking' "
                                         r"camera 2: frame 4 holds NaN or Inf"):
        load_h36m_lifting(path_3d, path_2d, cams, stride=3)  # frame 4 is not kept


def test_string_array_where_joints_are_expected(h36m_files):
    path_3d, path_2d, cams = h36m_files
    p3, p2 = h36m_arrays()
    p3["S1"]["Walking"] = np.full((FRAMES, 32, 3), "x")
    np.savez(path_3d, positions_3d=np.array(p3, dtype=object))
    with pytest.raises(ValueError, match=r"path_3d: subject 'S1' action 'Walking' must be "
                                         r"\[T, 32, 3\], got \[6, 32, 3\] of dtype <U1"):
        load_h36m_lifting(path_3d, path_2d, cams)


CAMERA_JSON = [
    ("{not json", r"cameras: .*cameras\.json is not valid JSON"),
    ("", r"cameras: .*cameras\.json is not valid JSON"),
    ("[1, 2, 3]", r"cameras: expected a dict subject → cameras in .*cameras\.json, got list"),
    ('"S1"', r"cameras: expected a dict subject → cameras in .*cameras\.json, got str"),
    ('{"S1": 5}', r"cameras: subject 'S1' must have a list of 4 cameras in .*cameras\.json"),
    ('{"S1": [1, 2, 3, 4]}', r"cameras: subject 'S1' camera 0 in .*cameras\.json must be a "
                             "dict, got int"),
    ('{"S1": [{}, {}, {}, {}]}', r"cameras: subject 'S1' camera 0 in .*cameras\.json has no "
                                 "'orientation' entry"),
]


@pytest.mark.parametrize("text, match", CAMERA_JSON)
def test_garbage_camera_json_names_the_file(tmp_path, text, match):
    path = tmp_path / "cameras.json"
    path.write_text(text)
    with pytest.raises(ValueError, match=match):
        load_h36m_cameras(path)


@pytest.mark.parametrize("field, value, match", [
    ("focal_length", [float("nan"), 1.0], "'focal_length' must be 2 finite numbers"),
    ("translation", [0, 0], "'translation' must be 3 finite numbers"),
    ("orientation", [0, 0, 0, 0], "'orientation' is a zero quaternion"),
    ("res_w", -3, "'res_w' must be an integer >= 1"),
    ("res_h", "big", "'res_h' must be an integer >= 1"),
])
def test_bad_camera_field_names_file_and_camera(tmp_path, field, value, match):
    cams = [camera() for _ in range(4)]
    cams[3][field] = value
    path = tmp_path / "cameras.json"
    path.write_text(json.dumps({"S1": cams}))
    with pytest.raises(ValueError, match=rf"subject 'S1' camera 3 in {path} {match}"):
        load_h36m_cameras(path)


def test_truncated_camera_npz_is_named(tmp_path):
    path = tmp_path / "cameras.npz"
    np.savez(path, **{f"S1/{i}/{k}": np.asarray(v) for i in range(4) for k, v in camera().items()})
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(ValueError, match=rf"cameras: {path}: not a readable \.npz file"):
        load_h36m_cameras(path)


def _spin(path, n=4, **override):
    arrays = {"imgname": [f"im{i}.jpg" for i in range(n)], "center": np.full((n, 2), 50.0),
              "scale": np.ones(n), "part": np.ones((n, 24, 3))}
    arrays.update(override)
    write_spin_npz(path, **arrays)


@pytest.mark.parametrize("key, shape", [("center", (4, 2)), ("part", (4, 24, 3)),
                                        ("scale", (4,))])
@pytest.mark.parametrize("row", [0, 2])
def test_non_finite_image_annotation_row_is_named(tmp_path, key, shape, row):
    path = tmp_path / "train.npz"
    value = np.ones(shape)
    value[row] = np.nan
    _spin(path, **{key: value})
    with pytest.raises(ValueError, match=rf"npz_path: {path}: {key}: row {row} holds NaN or Inf"):
        ImageDataset(path, tmp_path)


def test_truncated_image_npz_is_named(tmp_path):
    path = tmp_path / "train.npz"
    _spin(path)
    path.write_bytes(path.read_bytes()[:-50])
    with pytest.raises(ValueError, match=rf"npz_path: {path}: not a readable \.npz file"):
        ImageDataset(path, tmp_path)


def test_image_npz_with_wrong_keys_is_named(tmp_path):
    path = tmp_path / "train.npz"
    np.savez(path, imgname=np.array(["a.jpg"]), center=np.zeros((1, 2)))
    with pytest.raises(ValueError, match=rf"npz_path: {path}: npz layout: found neither SPIN"):
        ImageDataset(path, tmp_path)


def test_image_npz_with_text_where_numbers_belong(tmp_path):
    path = tmp_path / "train.npz"
    np.savez(path, imgname=np.array(["a.jpg"]), center=np.array([["a", "b"]]),
             scale=np.ones(1), part=np.ones((1, 24, 3)))
    with pytest.raises(ValueError, match=rf"npz_path: {path}: center: expected numbers"):
        ImageDataset(path, tmp_path)


@pytest.mark.parametrize("text, match", [
    ("{broken", "not valid JSON"),
    ('{"people": 3}', "people"),
    ('{"people": [{"pose_keypoints_2d": [1, 2]}]}', "pose_keypoints_2d"),
])
def test_garbage_keypoint_json_names_the_file(tmp_path, text, match):
    path = tmp_path / "kp.json"
    path.write_text(text)
    with pytest.raises(ValueError, match=rf"{path}.*{match}"):
        load_keypoints(path)


def test_keypoint_npy_with_a_pickle_is_refused(tmp_path):
    path = tmp_path / "kp.npy"
    np.save(path, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match=rf"{path}"):
        load_keypoints(path)
