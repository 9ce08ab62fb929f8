"""Human3.6M in the 2D→3D lifting format of VideoPose3D (Pavllo et al., 2019).

Files
-----
``data_3d_h36m.npz``
    ``positions_3d``: a 0-d object array holding ``{subject: {action: array [T, 32, 3]}}``,
    world-frame joint positions in **metres**.
``data_2d_h36m_<detector>.npz``
    ``positions_2d``: a 0-d object array holding ``{subject: {action: [4 arrays [T, 17, C]]}}``
    (one per camera, pixels, ``C = 2`` or ``3`` with a confidence) and ``metadata``: a 0-d
    object array holding ``{"layout_name": str, "num_joints": 17, "keypoints_symmetry": ...}``.
    A 2D sequence may be longer than its 3D sequence; it is trimmed to the 3D length.

The object arrays are read with condflow's restricted unpickler
(:mod:`condflow._safe_pickle`): numpy arrays and plain containers only, so a crafted file
cannot run code; anything else is refused naming the file. Non-finite joint positions or
keypoints are refused at load, naming the file, sequence and frame.

Cameras
-------
The calibration is not bundled. ``cameras`` is a dict, a ``.json`` file or an ``.npz`` file
giving, for every subject, a list of 4 camera dicts (in the order of the 2D camera lists)::

    {"S1": [{"orientation": [w, x, y, z],   # unit quaternion, camera → world rotation
             "translation": [x, y, z],      # camera centre in world coordinates, mm
             "center": [cx, cy],            # principal point, pixels
             "focal_length": [fx, fy],      # pixels
             "res_w": 1000, "res_h": 1002}, # image size, pixels
            ...], ...}

(the convention of VideoPose3D's ``h36m_dataset.py``: a world point ``X`` in mm is
``R(q)ᵀ (X − translation)`` in the camera frame). Other fields (e.g. distortion) are
ignored. In an ``.npz`` file the entries are flat arrays named ``"<subject>/<camera>/<field>"``,
e.g. ``"S1/0/orientation"``; :func:`write_h36m_cameras` writes both file kinds.

Joints
------
The 32 mocap joints are reduced to the usual 17 (:data:`H36M_KEPT_JOINTS`, named by
:data:`condflow.joints.H36M_JOINT_NAMES`); the 16-joint
variant additionally drops the nose (index 9, :data:`H36M_NOSE_INDEX`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from condflow._checks import check_positive_int
from condflow._safe_pickle import load_npz
from condflow.data.screen import normalize_screen_coordinates
from condflow.joints import H36M_17_TO_16, H36M_JOINT_NAMES
from condflow.spaces.rotations import quaternion_to_matrix

__all__ = [
    "H36M_KEPT_JOINTS",
    "H36M_NOSE_INDEX",
    "H36M_TEST_SUBJECTS",
    "H36M_TRAIN_SUBJECTS",
    "H36MLifting",
    "H36MLiftingDataset",
    "h36m_lifting_tensors",
    "load_h36m_cameras",
    "load_h36m_lifting",
    "write_h36m_cameras",
    "write_h36m_lifting_npz",
]

H36M_TRAIN_SUBJECTS: tuple[str, ...] = ("S1", "S5", "S6", "S7", "S8")
H36M_TEST_SUBJECTS: tuple[str, ...] = ("S9", "S11")

#: Indices of the 32 mocap joints kept for the 17-joint skeleton.
H36M_KEPT_JOINTS: tuple[int, ...] = (0, 1, 2, 3, 6, 7, 8, 12, 13, 14, 15, 17, 18, 19, 25, 26, 27)
#: Index (among the 17) of the joint dropped for the 16-joint variant.
H36M_NOSE_INDEX = H36M_JOINT_NAMES.index("Nose")

_NUM_CAMERAS = 4
_CAMERA_FIELDS: dict[str, int] = {
    "orientation": 4,
    "translation": 3,
    "center": 2,
    "focal_length": 2,
}
_DEFAULT_METADATA: dict[str, Any] = {
    "layout_name": "h36m",
    "num_joints": 17,
    "keypoints_symmetry": [[4, 5, 6, 11, 12, 13], [1, 2, 3, 14, 15, 16]],
}


@dataclass(frozen=True)
class H36MLifting:
    """Frames of all (subject, action, camera) sequences, stacked.

    Attributes:
        poses_3d: ``[N, J, 3]`` float32 joints in the camera frame, mm (root-relative unless
            loaded with ``root_relative=False``).
        keypoints_2d: ``[N, J2, C]`` float32 normalized screen coordinates (``C = 3`` keeps
            the detector confidence, unnormalized).
        subject: ``[N]`` int64 index into ``subject_names``.
        action: ``[N]`` int64 index into ``action_names`` (full names such as
            ``"Directions 1"``).
        camera: ``[N]`` int64 camera index 0..3.
        frame: ``[N]`` int64 frame index within the sequence.
        subject_names, action_names: the names the indices refer to.
    """

    poses_3d: np.ndarray
    keypoints_2d: np.ndarray
    subject: np.ndarray
    action: np.ndarray
    camera: np.ndarray
    frame: np.ndarray
    subject_names: tuple[str, ...]
    action_names: tuple[str, ...]

    def __len__(self) -> int:
        return int(self.poses_3d.shape[0])




# --------------------------------------------------------------------------------------------
# Cameras


def _validate_camera(where: str, cam: object) -> dict[str, Any]:
    if not isinstance(cam, Mapping):
        raise ValueError(f"cameras: {where} must be a dict, got {type(cam).__name__}")
    out: dict[str, Any] = {}
    for field, size in _CAMERA_FIELDS.items():
        if field not in cam:
            raise ValueError(f"cameras: {where} has no {field!r} entry")
        value = np.asarray(cam[field], dtype=np.float64)
        if value.shape != (size,) or not np.isfinite(value).all():
            raise ValueError(
                f"cameras: {where} {field!r} must be {size} finite numbers, "
                f"got shape {list(value.shape)}"
            )
        out[field] = value
    if np.linalg.norm(out["orientation"]) < 1e-8:
        raise ValueError(f"cameras: {where} 'orientation' is a zero quaternion")
    for field in ("res_w", "res_h"):
        if field not in cam:
            raise ValueError(f"cameras: {where} has no {field!r} entry")
        raw = cam[field]
        value = raw.item() if isinstance(raw, np.ndarray) else raw
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float | np.integer | np.floating)
            or not float(value).is_integer()
            or value < 1
        ):
            raise ValueError(f"cameras: {where} {field!r} must be an integer >= 1, got {value}")
        out[field] = int(value)
    return out


def load_h36m_cameras(
    cameras: str | Path | Mapping[str, Sequence[Mapping[str, Any]]],
) -> dict[str, list[dict[str, Any]]]:
    """Read and validate camera parameters (see the module docstring for the format).

    Returns ``{subject: [4 camera dicts]}`` with float64 arrays and integer resolutions.
    """
    if isinstance(cameras, str | Path):
        path = Path(cameras)
        if not path.is_file():
            raise FileNotFoundError(f"cameras: no such file: {path}")
        if path.suffix == ".json":
            try:
                raw: Any = json.loads(path.read_text())
            except (json.JSONDecodeError, UnicodeDecodeError) as err:
                raise ValueError(f"cameras: {path} is not valid JSON: {err}") from None
        elif path.suffix == ".npz":
            raw = {}
            for key, value in load_npz(path, "cameras").items():
                parts = key.split("/")
                if len(parts) != 3 or not parts[1].isdigit():
                    raise ValueError(
                        f"cameras: entry {key!r} of {path} is not '<subject>/<camera>/<field>'"
                    )
                subject, index, field = parts[0], int(parts[1]), parts[2]
                raw.setdefault(subject, {}).setdefault(index, {})[field] = value
            raw = {s: [cams[i] for i in sorted(cams)] for s, cams in raw.items()}
        else:
            raise ValueError(f"cameras: expected a .json or .npz file, got {path}")
    else:
        raw = cameras
    source = f" in {cameras}" if isinstance(cameras, str | Path) else ""
    if not isinstance(raw, Mapping):
        raise ValueError(
            f"cameras: expected a dict subject → cameras{source}, got {type(raw).__name__}"
        )
    out: dict[str, list[dict[str, Any]]] = {}
    for subject, cams in raw.items():
        if not isinstance(cams, Sequence) or len(cams) != _NUM_CAMERAS:
            raise ValueError(
                f"cameras: subject {subject!r} must have a list of 4 cameras{source}"
            )
        out[str(subject)] = [
            _validate_camera(f"subject {subject!r} camera {i}{source}", cam)
            for i, cam in enumerate(cams)
        ]
    return out


def write_h36m_cameras(
    path: str | Path, cameras: Mapping[str, Sequence[Mapping[str, Any]]]
) -> None:
    """Write camera parameters to a ``.json`` or ``.npz`` file readable by
    :func:`load_h36m_cameras`."""
    cams = load_h36m_cameras(cameras)
    path = Path(path)
    if path.suffix == ".json":
        serial = {
            s: [
                {k: v.tolist() if isinstance(v, np.ndarray) else v for k, v in c.items()}
                for c in cs
            ]
            for s, cs in cams.items()
        }
        with open(path, "w") as f:
            json.dump(serial, f, indent=1)
    elif path.suffix == ".npz":
        flat = {
            f"{s}/{i}/{k}": np.asarray(v)
            for s, cs in cams.items()
            for i, c in enumerate(cs)
            for k, v in c.items()
        }
        np.savez(path, allow_pickle=False, **flat)
    else:
        raise ValueError(f"path: expected a .json or .npz file name, got {path}")


# --------------------------------------------------------------------------------------------
# Pose files


def _load_objects(path: Path, arg: str, keys: Sequence[str]) -> list[dict[str, Any]]:
    """Read 0-d object arrays holding dicts from an ``.npz`` file (restricted unpickling)."""
    arrays = load_npz(path, arg, keys)
    out = []
    for key in keys:
        value = arrays[key]
        if value.shape != () or not isinstance(value.item(), dict):
            raise ValueError(f"{arg}: {key!r} in {path} must be a 0-d object array holding a dict")
        out.append(value.item())
    return out


def _check_finite_frames(array: np.ndarray, what: str) -> None:
    """Refuse NaN/Inf, naming the first bad frame (first axis) of ``array``."""
    bad = ~np.isfinite(array.reshape(len(array), -1)).all(axis=1)
    if bad.any():
        raise ValueError(f"{what}: frame {int(np.argmax(bad))} holds NaN or Inf values "
                         f"({int(bad.sum())} such frames)")


def _check_subjects(
    subjects: Sequence[str] | None,
    positions_3d: Mapping[str, Any],
    positions_2d: Mapping[str, Any],
    cams: Mapping[str, Any],
) -> tuple[str, ...]:
    """The subjects to load (default: all of the 3D file), each present in every source."""
    if subjects is None:
        subjects = tuple(positions_3d)
    if isinstance(subjects, str) or not all(isinstance(s, str) for s in subjects):
        raise ValueError(f"subjects: expected a sequence of subject names, got {subjects!r}")
    for s in subjects:
        for what, source in (
            ("path_3d", positions_3d),
            ("path_2d", positions_2d),
            ("cameras", cams),
        ):
            if s not in source:
                raise ValueError(f"{what}: subject {s!r} not found (have {sorted(source)})")
    return tuple(subjects)


def _check_world(world: object, source: str, where: str) -> np.ndarray:
    """World joints ``[T, 32, 3]`` (floats, metres) of one action; ``source`` names the file
    in the message on non-finite frames."""
    world = np.asarray(world)
    if world.ndim != 3 or world.shape[1:] != (32, 3) or not world.dtype.kind == "f":
        raise ValueError(
            f"path_3d: {where} must be [T, 32, 3], got {list(world.shape)} "
            f"of dtype {world.dtype} (floats expected)"
        )
    _check_finite_frames(world, source)
    return world


def _check_view(kp: object, num_frames: int, path_2d: Path, where: str) -> np.ndarray:
    """One camera's 2D keypoints ``[T', 17, 2 or 3]`` (pixels), at least ``num_frames``
    frames; the first ``num_frames`` must be finite."""
    kp = np.asarray(kp)
    if kp.ndim != 3 or kp.shape[1] != 17 or kp.shape[2] not in (2, 3) \
            or kp.dtype.kind not in "fiu":
        raise ValueError(f"path_2d: {where} must be [T, 17, 2 or 3], got {list(kp.shape)}")
    if kp.shape[0] < num_frames:
        raise ValueError(
            f"path_2d: {where} has {kp.shape[0]} frames, fewer than the {num_frames} 3D frames"
        )
    _check_finite_frames(kp[:num_frames], f"path_2d: {path_2d} {where}")
    return kp


def _camera_pair(
    world_mm: np.ndarray,
    kp: np.ndarray,
    cam: Mapping[str, Any],
    root_relative: bool,
    drop_2d_nose: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """One camera's training pair (float32): the world joints ``[T, J, 3]`` (mm) in its frame
    (root-relative if asked) and its keypoints ``[T, 17, 2 or 3]`` with screen-normalized
    ``x, y`` (the nose dropped if asked)."""
    rot = quaternion_to_matrix(torch.from_numpy(cam["orientation"])).numpy()
    # Row vectors: Rᵀ (X − t) becomes (X − t) R.
    p3 = (world_mm - cam["translation"]) @ rot
    if root_relative:
        p3 = p3 - p3[:, :1]
    kp = kp.astype(np.float64)
    kp[..., :2] = normalize_screen_coordinates(kp[..., :2], cam["res_w"], cam["res_h"])
    if drop_2d_nose:
        kp = np.delete(kp, H36M_NOSE_INDEX, axis=1)
    return p3.astype(np.float32), kp.astype(np.float32)


def load_h36m_lifting(
    path_3d: str | Path,
    path_2d: str | Path,
    cameras: str | Path | Mapping[str, Sequence[Mapping[str, Any]]],
    subjects: Sequence[str] | None = None,
    stride: int = 1,
    num_joints: int = 17,
    root_relative: bool = True,
) -> H36MLifting:
    """Load H36M lifting pairs: camera-frame 3D joints (mm) and normalized 2D keypoints.

    Args:
        path_3d: ``data_3d_h36m.npz``.
        path_2d: ``data_2d_h36m_<detector>.npz``.
        cameras: camera parameters (see the module docstring).
        subjects: subjects to load, e.g. :data:`H36M_TRAIN_SUBJECTS`; ``None`` = all subjects
            of the 3D file.
        stride: keep every ``stride``-th frame.
        num_joints: 17, or 16 to drop the nose (from the 3D joints always, from the 2D
            keypoints when their layout is ``"h36m"``).
        root_relative: subtract the root (hip) joint from the 3D joints.

    Returns:
        :class:`H36MLifting` with ``N`` frames over all (subject, action, camera) triples.
    """
    check_positive_int("stride", stride)
    if num_joints not in (16, 17):
        raise ValueError(f"num_joints: expected 16 or 17, got {num_joints!r}")
    path_3d, path_2d = Path(path_3d), Path(path_2d)
    (positions_3d,) = _load_objects(path_3d, "path_3d", ["positions_3d"])
    positions_2d, metadata = _load_objects(path_2d, "path_2d", ["positions_2d", "metadata"])
    layout = metadata.get("layout_name")
    cams = load_h36m_cameras(cameras)
    subjects = _check_subjects(subjects, positions_3d, positions_2d, cams)

    keep_3d = np.array(H36M_KEPT_JOINTS)
    if num_joints == 16:
        keep_3d = np.delete(keep_3d, H36M_NOSE_INDEX)
    drop_2d_nose = num_joints == 16 and layout == "h36m"

    action_names: list[str] = []
    chunks: dict[str, list[np.ndarray]] = {
        k: [] for k in ("p3", "p2", "subject", "action", "camera", "frame")
    }
    for si, s in enumerate(subjects):
        for action, world in positions_3d[s].items():
            where = f"subject {s!r} action {action!r}"
            world = _check_world(world, f"path_3d: {path_3d} {where}", where)
            if action not in positions_2d[s]:
                raise ValueError(f"path_2d: {where} not found")
            views = positions_2d[s][action]
            if len(views) != _NUM_CAMERAS:
                raise ValueError(f"path_2d: {where} must have 4 camera arrays, got {len(views)}")
            if action not in action_names:
                action_names.append(action)
            ai = action_names.index(action)
            num_frames = world.shape[0]
            frames = np.arange(0, num_frames, stride)
            world_mm = world[frames][:, keep_3d].astype(np.float64) * 1000.0
            for ci, (kp, cam) in enumerate(zip(views, cams[s], strict=True)):
                kp = _check_view(kp, num_frames, path_2d, f"{where} camera {ci}")
                p3, p2 = _camera_pair(world_mm, kp[frames], cam, root_relative, drop_2d_nose)
                chunks["p3"].append(p3)
                chunks["p2"].append(p2)
                for key, value in (("subject", si), ("action", ai), ("camera", ci)):
                    chunks[key].append(np.full(len(frames), value, dtype=np.int64))
                chunks["frame"].append(frames.astype(np.int64))

    if not chunks["p3"]:
        raise ValueError(f"subjects: no frames found for {list(subjects)}")
    return H36MLifting(
        poses_3d=np.concatenate(chunks["p3"]),
        keypoints_2d=np.concatenate(chunks["p2"]),
        subject=np.concatenate(chunks["subject"]),
        action=np.concatenate(chunks["action"]),
        camera=np.concatenate(chunks["camera"]),
        frame=np.concatenate(chunks["frame"]),
        subject_names=tuple(subjects),
        action_names=tuple(action_names),
    )


def h36m_lifting_tensors(
    path_3d: str | Path,
    path_2d: str | Path,
    cameras: str | Path | Mapping[str, Sequence[Mapping[str, Any]]],
    subjects: Sequence[str] | None = None,
    stride: int = 1,
) -> dict[str, Tensor]:
    """The lifting task's tensors of :func:`load_h36m_lifting` (17 joints, root-relative):
    ``"joints_3d"`` ``[N, 17, 3]`` (mm, the root at index 0) and ``"keypoints_2d"``
    ``[N, 16, 3]``, the 2D keypoints without the nose with their confidences (ones for a file
    without)."""
    data = load_h36m_lifting(path_3d, path_2d, cameras, subjects=subjects, stride=stride,
                             num_joints=17)
    kp = torch.as_tensor(data.keypoints_2d, dtype=torch.float32)[:, list(H36M_17_TO_16)]
    if kp.shape[-1] == 2:
        kp = torch.cat([kp, torch.ones_like(kp[..., :1])], -1)
    joints = torch.as_tensor(data.poses_3d, dtype=torch.float32)
    return {"keypoints_2d": kp, "joints_3d": joints}


def write_h36m_lifting_npz(
    path_3d: str | Path,
    path_2d: str | Path,
    positions_3d: Mapping[str, Mapping[str, np.ndarray]],
    positions_2d: Mapping[str, Mapping[str, Sequence[np.ndarray]]],
    metadata: Mapping[str, Any] | None = None,
) -> None:
    """Write ``data_3d_h36m.npz``-style and ``data_2d_h36m_<detector>.npz``-style files.

    Args:
        path_3d, path_2d: output file names.
        positions_3d: ``{subject: {action: [T, 32, 3]}}`` world joints in metres.
        positions_2d: ``{subject: {action: [4 arrays [T, 17, 2 or 3]]}}`` pixels.
        metadata: 2D metadata; defaults to the ``"h36m"`` layout with 17 joints.
    """
    p3 = {
        s: {a: np.asarray(v, dtype=np.float32) for a, v in acts.items()}
        for s, acts in positions_3d.items()
    }
    p2 = {
        s: {a: [np.asarray(v, dtype=np.float32) for v in views] for a, views in acts.items()}
        for s, acts in positions_2d.items()
    }
    meta = dict(_DEFAULT_METADATA if metadata is None else metadata)
    np.savez_compressed(path_3d, positions_3d=_object_scalar(p3))
    np.savez_compressed(path_2d, positions_2d=_object_scalar(p2), metadata=_object_scalar(meta))


def _object_scalar(value: object) -> np.ndarray:
    arr = np.empty((), dtype=object)
    arr[()] = value
    return arr


# --------------------------------------------------------------------------------------------
# Dataset


class H36MLiftingDataset(Dataset):
    """Torch dataset over :class:`H36MLifting` frames.

    Items are dicts: ``"keypoints_2d"`` ``[J2, 2]`` (or ``[J2, 3]`` with
    ``with_confidence=True``; a file without confidences then gets ones), ``"joints_3d"``
    ``[J, 3]`` mm, and int64 scalars ``"subject_index"``, ``"action_index"``,
    ``"camera_index"``.
    """

    def __init__(self, data: H36MLifting, with_confidence: bool = False) -> None:
        self.data = data
        kp = torch.from_numpy(data.keypoints_2d)
        if with_confidence and kp.shape[-1] == 2:
            kp = torch.cat([kp, torch.ones_like(kp[..., :1])], dim=-1)
        elif not with_confidence:
            kp = kp[..., :2]
        self._keypoints_2d = kp
        self._joints_3d = torch.from_numpy(data.poses_3d)
        self._subject = torch.from_numpy(data.subject)
        self._action = torch.from_numpy(data.action)
        self._camera = torch.from_numpy(data.camera)

    @classmethod
    def from_files(
        cls,
        path_3d: str | Path,
        path_2d: str | Path,
        cameras: str | Path | Mapping[str, Sequence[Mapping[str, Any]]],
        subjects: Sequence[str] | None = None,
        stride: int = 1,
        num_joints: int = 17,
        with_confidence: bool = False,
    ) -> H36MLiftingDataset:
        """Load with :func:`load_h36m_lifting` (root-relative) and wrap."""
        data = load_h36m_lifting(
            path_3d, path_2d, cameras, subjects=subjects, stride=stride, num_joints=num_joints
        )
        return cls(data, with_confidence=with_confidence)

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        return {
            "keypoints_2d": self._keypoints_2d[index],
            "joints_3d": self._joints_3d[index],
            "subject_index": self._subject[index],
            "action_index": self._action[index],
            "camera_index": self._camera[index],
        }
