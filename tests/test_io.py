"""The cache's keys are pinned: a cache written by an earlier version must still be found.

The names below were written by the version before the caches shared ``condflow._io``;
a change to how any key is computed renames every cached entry on users' disks.
"""

import hashlib

import pytest
import torch

from condflow._io import cache_key, cached_file, file_digest
from condflow.data.cache import cached_tensors
from condflow.data.synthetic_images import SyntheticImageConfig, _set_folder
from condflow.fitting.gmm_prior import pose_prior


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CONDFLOW_CACHE_DIR", str(tmp_path / "cache"))
    body = tmp_path / "body.pkl"
    body.write_bytes(b"model A")
    return tmp_path / "cache", body


def test_synthetic_data_key_is_unchanged(cache):
    root, body = cache
    cached_tensors("t", {"n": 1, "pair": (0.5, 2)}, lambda: {"x": torch.zeros(1)}, files=[body])
    assert [p.relative_to(root).as_posix() for p in root.rglob("*.pt")] == [
        "data/t-440c11e78031.pt"
    ]


def test_pose_prior_key_is_unchanged(cache):
    root, _ = cache
    pose_prior(num_components=1, num_samples=64)
    assert [p.relative_to(root).as_posix() for p in root.rglob("*.pt")] == [
        "priors/smpl-pose-gmm-9fc718a58128.pt"
    ]


def test_synthetic_image_set_key_is_unchanged(cache):
    root, body = cache
    assert _set_folder(SyntheticImageConfig(), body) == root / "data/mesh-images-73e88af0ab8e"
    other = SyntheticImageConfig(size=7, fill=(0.5, 0.9))
    assert _set_folder(other, body) == root / "data/mesh-images-07960e3154d4"


def test_file_digest_is_the_sha256_of_the_bytes_and_follows_changes(tmp_path):
    f = tmp_path / "a.bin"
    f.write_bytes(b"one")
    assert file_digest(f) == hashlib.sha256(b"one").hexdigest()
    f.write_bytes(b"other")  # a new size: not the remembered digest
    assert file_digest(f) == hashlib.sha256(b"other").hexdigest()


def test_cache_key_ignores_key_order_and_tells_values_apart():
    assert cache_key({"a": 1, "b": [1, 2]}) == cache_key({"b": (1, 2), "a": 1})
    assert cache_key({"a": 1}) != cache_key({"a": 2})
    assert len(cache_key(None)) == 12


def test_cached_file_makes_once_and_remakes_a_damaged_entry(tmp_path):
    path = tmp_path / "sub" / "entry.bin"
    made = []

    def make():
        made.append(1)
        return b"value"

    def load(p):
        data = p.read_bytes()
        if data != b"value":
            raise ValueError("damaged")
        return data

    def save(v, f):
        f.write(v)

    assert cached_file(path, make, load, save) == b"value"
    assert cached_file(path, make, load, save) == b"value" and len(made) == 1
    path.write_bytes(b"torn")
    assert cached_file(path, make, load, save) == b"value" and len(made) == 2
    assert path.read_bytes() == b"value"
