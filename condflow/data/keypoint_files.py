"""Reading 2D keypoint files: OpenPose JSON, COCO-style JSON, plain ``.npy`` / ``.csv``.

Formats
-------
OpenPose (``.json``)
    ``{"people": [{"pose_keypoints_2d": [x0, y0, c0, x1, ...]}, ...]}`` with 25 joints
    (BODY_25, 75 numbers) per person, pixels.
COCO-style (``.json``)
    ``{"annotations": [{"keypoints": [x, y, v] * 17, ...}, ...]}`` or a list of such dicts
    (the results format). Visibility flags ``v`` in {0, 1, 2} become confidences 0 / 1
    (labelled), other values (detector scores) are kept as they are.
Arrays (``.npy``, ``.csv``)
    ``[K, 2|3]`` or ``[P, K, 2|3]`` (``.npy``); ``.csv``: one person, K rows ``x,y[,c]``, an
    optional header line. Without a confidence column every joint gets confidence 1. The
    layout follows from K: 16 ``h36m16``, 17 ``h36m17``, 24 ``spin24``, 25 ``body25``
    (any other K needs an explicit ``layout``).

Every reader returns ``(x, y, confidence)`` per joint, in the file's units (pixels). Bad files
raise ``ValueError`` naming the file and what was expected (``FileNotFoundError`` if absent).

Layouts and mappings
--------------------
The lifting model takes the 16 Human3.6M joints without the nose (:data:`H36M_16_NAMES`).
From OpenPose BODY_25 (:func:`body25_to_h36m16`):

=============  ====================================================
H36M-16         BODY_25
=============  ====================================================
Hip             MidHip (8)
R/L Hip         RHip (9) / LHip (12)
R/L Knee        RKnee (10) / LKnee (13)
R/L Foot        RAnkle (11) / LAnkle (14)
Spine           midpoint of MidHip (8) and Neck (1)
Thorax          Neck (1)
Head            mean of the visible Nose (0), eyes (15, 16), ears (17, 18)
L Shoulder...   LShoulder (5), LElbow (6), LWrist (7)
R Shoulder...   RShoulder (2), RElbow (3), RWrist (4)
=============  ====================================================

A derived joint (a midpoint) has the smaller confidence of its sources; the head has the mean
confidence of its visible face points (0 if none is visible). From COCO-17 the same rules
apply with Hip = mid-hips, Thorax = mid-shoulders. These are approximations: OpenPose's and
COCO's hips sit lower and wider than Human3.6M's, and "Head" is the face centre rather
than Human3.6M's head joint.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from condflow.joints import H36M_17_TO_16, H36M_JOINT_NAMES

__all__ = [
    "COCO17_NAMES",
    "H36M_16_NAMES",
    "LAYOUT_JOINTS",
    "KeypointFile",
    "body25_to_h36m16",
    "body25_to_spin24",
    "coco17_to_h36m16",
    "keypoints_json_for",
    "load_keypoints",
    "to_h36m16",
    "to_spin24",
]

COCO17_NAMES: tuple[str, ...] = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder",
    "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip",
    "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
)  # fmt: skip
H36M_16_NAMES: tuple[str, ...] = tuple(H36M_JOINT_NAMES[i] for i in H36M_17_TO_16)

#: Number of joints of each known layout.
LAYOUT_JOINTS: dict[str, int] = {"body25": 25, "coco17": 17, "h36m16": 16, "h36m17": 17,
                                 "spin24": 24}
_ARRAY_LAYOUTS = {16: "h36m16", 17: "h36m17", 24: "spin24", 25: "body25"}


@dataclass
class KeypointFile:
    """Keypoints read from ``path``: ``keypoints [P, K, 3]`` float64 ``(x, y, confidence)``
    for P people, in the file's units, and their ``layout`` (a key of
    :data:`LAYOUT_JOINTS`)."""

    keypoints: np.ndarray
    layout: str
    path: Path

    @property
    def num_people(self) -> int:
        return int(self.keypoints.shape[0])


def _fail(path: Path, message: str) -> ValueError:
    return ValueError(f"keypoints file {path}: {message}")


def _read_json(path: Path) -> Any:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as err:
        raise _fail(path, f"not valid JSON ({err.msg} at line {err.lineno}, column "
                          f"{err.colno}); expected OpenPose or COCO-style keypoint JSON") from err
    except UnicodeDecodeError as err:
        raise _fail(path, "not a UTF-8 text file; expected OpenPose or COCO-style "
                          "keypoint JSON") from err


def _person_array(path: Path, values: Any, joints: int, where: str, fmt: str) -> np.ndarray:
    if not isinstance(values, list) or not all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in values
    ):
        raise _fail(path, f"{where} must be a list of numbers ({fmt})")
    if len(values) != 3 * joints:
        raise _fail(path, f"{where} has {len(values)} numbers ({len(values) / 3:g} joints); "
                          f"expected {3 * joints} ({joints} joints x (x, y, confidence), {fmt})")
    return np.asarray(values, dtype=np.float64).reshape(joints, 3)


def _openpose(path: Path, data: dict) -> np.ndarray:
    people = data["people"]
    if not isinstance(people, list):
        raise _fail(path, "'people' must be a list (OpenPose JSON)")
    out = []
    for i, person in enumerate(people):
        if not isinstance(person, dict) or "pose_keypoints_2d" not in person:
            raise _fail(path, f"people[{i}] has no 'pose_keypoints_2d' (OpenPose JSON)")
        out.append(_person_array(path, person["pose_keypoints_2d"], 25,
                                 f"people[{i}].pose_keypoints_2d", "OpenPose BODY_25"))
    return np.stack(out) if out else np.zeros((0, 25, 3))


def _coco(path: Path, annotations: list) -> np.ndarray:
    out = []
    for i, ann in enumerate(annotations):
        if not isinstance(ann, dict) or "keypoints" not in ann:
            raise _fail(path, f"annotation {i} has no 'keypoints' (COCO-style JSON)")
        out.append(_person_array(path, ann["keypoints"], 17, f"annotations[{i}].keypoints",
                                 "COCO 17 keypoints"))
    if not out:
        return np.zeros((0, 17, 3))
    kp = np.stack(out)
    flags = kp[..., 2]
    if np.all(np.isin(flags, (0.0, 1.0, 2.0))):
        kp[..., 2] = (flags > 0).astype(np.float64)
    return kp


def _read_csv(path: Path) -> np.ndarray:
    rows = []
    with open(path, newline="", encoding="utf-8") as f:
        for n, row in enumerate(csv.reader(f)):
            cells = [c.strip() for c in row if c.strip() != ""]
            if not cells:
                continue
            try:
                rows.append([float(c) for c in cells])
            except ValueError as err:
                if n == 0 and not rows:
                    continue  # a header line
                raise _fail(path, f"line {n + 1} is not numbers: {row!r}; expected rows "
                                  "x,y[,confidence]") from err
    widths = {len(r) for r in rows}
    if not rows or len(widths) != 1 or widths.pop() not in (2, 3):
        raise _fail(path, "expected one row x,y[,confidence] per joint, all with 2 or 3 values")
    return np.asarray(rows, dtype=np.float64)


def _as_people(path: Path, arr: np.ndarray) -> np.ndarray:
    if arr.ndim not in (2, 3) or arr.shape[-1] not in (2, 3):
        raise _fail(path, f"array of shape {list(arr.shape)}; expected [K, 2|3] or "
                          "[P, K, 2|3] (x, y[, confidence])")
    if arr.ndim == 2:
        arr = arr[None]
    if arr.shape[-1] == 2:
        arr = np.concatenate([arr, np.ones_like(arr[..., :1])], -1)
    return arr


def load_keypoints(
    path: str | Path, layout: str | None = None, num_joints: int | None = None
) -> KeypointFile:
    """Read a keypoint file (see the module docstring for the formats).

    Args:
        path: ``.json`` (OpenPose or COCO-style), ``.npy`` or ``.csv``.
        layout: the joint layout of an array file (default: inferred from K); for JSON it must
            match the format's (``body25`` / ``coco17``) if given.
        num_joints: if given, the number of joints the caller expects.

    Returns:
        :class:`KeypointFile`; ``keypoints`` are finite with confidences >= 0.
    """
    path = Path(path)
    if layout is not None and layout not in LAYOUT_JOINTS:
        raise ValueError(f"layout: expected one of {sorted(LAYOUT_JOINTS)}, got {layout!r}")
    if not path.is_file():
        raise FileNotFoundError(f"keypoints file not found: {path}")
    suffix = path.suffix.lower()
    if suffix == ".json":
        kp, found = _read_json_keypoints(path, layout)
    elif suffix in (".npy", ".csv"):
        kp, found = _read_array_keypoints(path, layout)
    else:
        raise _fail(path, f"unknown extension {path.suffix!r}; expected .json (OpenPose or "
                          "COCO-style), .npy or .csv")
    _check_people(path, kp, num_joints)
    return KeypointFile(kp, found, path)


def _read_json_keypoints(path: Path, layout: str | None) -> tuple[np.ndarray, str]:
    """OpenPose or COCO-style JSON → ``([P, K, 3], layout)``."""
    data = _read_json(path)
    if isinstance(data, dict) and "people" in data:
        kp, found = _openpose(path, data), "body25"
    elif isinstance(data, dict) and "annotations" in data:
        if not isinstance(data["annotations"], list):
            raise _fail(path, "'annotations' must be a list (COCO-style JSON)")
        kp, found = _coco(path, data["annotations"]), "coco17"
    elif isinstance(data, list):
        kp, found = _coco(path, data), "coco17"
    else:
        raise _fail(path, "expected OpenPose JSON (a 'people' list) or COCO-style JSON "
                          "(an 'annotations' list, or a list of dicts with 'keypoints')")
    if layout is not None and layout != found:
        raise _fail(path, f"holds {found} keypoints, but layout {layout!r} was requested")
    return kp, found


def _read_array_keypoints(path: Path, layout: str | None) -> tuple[np.ndarray, str]:
    """A ``.npy`` or ``.csv`` array → ``([P, K, 3], layout)``, the layout inferred from K."""
    if path.suffix.lower() == ".npy":
        try:
            raw = np.load(path, allow_pickle=False)
        except (ValueError, OSError) as err:
            raise _fail(path, f"not a readable .npy array ({err})") from err
        if not np.issubdtype(raw.dtype, np.number):
            raise _fail(path, f"array of dtype {raw.dtype}; expected numbers")
        kp = _as_people(path, raw.astype(np.float64))
    else:
        kp = _as_people(path, _read_csv(path))
    k = kp.shape[1]
    found = layout or _ARRAY_LAYOUTS.get(k)
    if found is None:
        raise _fail(path, f"{k} joints per person; expected 16 (H36M without nose), "
                          "17 (H36M), 24 (SPIN) or 25 (OpenPose BODY_25), or pass layout")
    if LAYOUT_JOINTS[found] != k:
        raise _fail(path, f"{k} joints per person; layout {found!r} has "
                          f"{LAYOUT_JOINTS[found]}")
    return kp, found


def _check_people(path: Path, kp: np.ndarray, num_joints: int | None) -> None:
    """``ValueError`` naming ``path`` unless ``kp`` holds people with finite coordinates,
    confidences >= 0 and, if given, ``num_joints`` joints."""
    if kp.shape[0] == 0:
        raise _fail(path, "contains no people; expected at least one")
    if not np.isfinite(kp).all():
        bad = np.argwhere(~np.isfinite(kp))[0]
        raise _fail(path, f"contains NaN or Inf (person {bad[0]}, joint {bad[1]}); expected "
                          "finite coordinates (mark missing joints with confidence 0)")
    if (kp[..., 2] < 0).any():
        raise _fail(path, "has negative confidences; expected confidences >= 0")
    if num_joints is not None and kp.shape[1] != num_joints:
        raise _fail(path, f"{kp.shape[1]} joints per person; expected {num_joints}")


def _midpoint(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    conf = np.minimum(a[..., 2], b[..., 2])
    return np.concatenate([(a[..., :2] + b[..., :2]) / 2, conf[..., None]], -1)


def _mean_visible(points: np.ndarray) -> np.ndarray:
    """Mean of the joints ``[..., M, 3]`` with confidence > 0 (confidence: their mean)."""
    w = (points[..., 2] > 0).astype(np.float64)
    count = w.sum(-1)
    safe = np.maximum(count, 1.0)
    xy = (points[..., :2] * w[..., None]).sum(-2) / safe[..., None]
    conf = (points[..., 2] * w).sum(-1) / safe
    return np.concatenate([xy, conf[..., None]], -1)


def _h36m16(*parts: np.ndarray) -> np.ndarray:
    """Human3.6M-16 ``[..., 16, 3]`` from 15 points ``[..., 3]`` (hip, right hip, knee, foot,
    left hip, knee, foot, thorax, head, left shoulder, elbow, wrist, right shoulder, elbow,
    wrist); the spine is the midpoint of hip and thorax."""
    hip, rhip, rknee, rfoot, lhip, lknee, lfoot, thorax, head = parts[:9]
    lsho, lelb, lwri, rsho, relb, rwri = parts[9:]
    spine = _midpoint(hip, thorax)
    joints = [hip, rhip, rknee, rfoot, lhip, lknee, lfoot, spine, thorax, head, lsho, lelb,
              lwri, rsho, relb, rwri]
    out = np.stack(joints, -2)
    out[..., 2] *= np.isfinite(out[..., :2]).all(-1)
    out[out[..., 2] <= 0] = 0.0  # missing joints: confidence 0, coordinates 0
    return out


def body25_to_h36m16(kp: np.ndarray) -> np.ndarray:
    """OpenPose BODY_25 ``[..., 25, 3]`` → Human3.6M-16 ``[..., 16, 3]`` (module docstring)."""
    j = [kp[..., i, :] for i in range(25)]
    head = _mean_visible(kp[..., [0, 15, 16, 17, 18], :])
    return _h36m16(j[8], j[9], j[10], j[11], j[12], j[13], j[14], j[1], head, j[5], j[6],
                   j[7], j[2], j[3], j[4])


def coco17_to_h36m16(kp: np.ndarray) -> np.ndarray:
    """COCO-17 ``[..., 17, 3]`` → Human3.6M-16 ``[..., 16, 3]`` (module docstring)."""
    j = [kp[..., i, :] for i in range(17)]
    hip, thorax = _midpoint(j[11], j[12]), _midpoint(j[5], j[6])
    head = _mean_visible(kp[..., :5, :])
    return _h36m16(hip, j[12], j[14], j[16], j[11], j[13], j[15], thorax, head, j[5], j[7],
                   j[9], j[6], j[8], j[10])


#: SPIN-24 keypoint ← BODY_25 joint; SPIN keypoints without a BODY_25 counterpart (top of
#: head, thorax, spine, jaw, H36M head) get confidence 0.
BODY25_FOR_SPIN24: dict[int, int] = {
    0: 11, 1: 10, 2: 9, 3: 12, 4: 13, 5: 14, 6: 4, 7: 3, 8: 2, 9: 5, 10: 6, 11: 7, 12: 1,
    14: 8, 19: 0, 20: 16, 21: 15, 22: 18, 23: 17,
}


def body25_to_spin24(kp: np.ndarray) -> np.ndarray:
    """OpenPose BODY_25 ``[..., 25, 3]`` → SPIN's 24 keypoints ``[..., 24, 3]``
    (:data:`BODY25_FOR_SPIN24`)."""
    out = np.zeros((*kp.shape[:-2], 24, 3))
    for spin, body in BODY25_FOR_SPIN24.items():
        out[..., spin, :] = kp[..., body, :]
    return out


def to_spin24(keypoints: KeypointFile) -> np.ndarray:
    """The file's keypoints as SPIN's 24 ``[P, 24, 3]`` (mesh models' keypoints), from
    OpenPose BODY_25 or SPIN-24 files; ``ValueError`` naming the file for another layout."""
    if keypoints.layout == "body25":
        return body25_to_spin24(keypoints.keypoints)
    if keypoints.layout == "spin24":
        return keypoints.keypoints
    raise ValueError(f"{keypoints.path}: holds {keypoints.layout} keypoints; a mesh model needs "
                     "OpenPose BODY_25 or SPIN's 24 keypoints")


def keypoints_json_for(image: Path, given: dict[str, Path]) -> Path | None:
    """The OpenPose JSON of ``image``: ``<stem>_keypoints`` or ``<stem>`` among ``given``
    (by stem), else ``<stem>_keypoints.json`` / ``<stem>.json`` next to the image; None
    without one."""
    for name in (f"{image.stem}_keypoints", image.stem):
        if name in given:
            return given[name]
        candidate = image.with_name(f"{name}.json")
        if candidate.is_file():
            return candidate
    return None


def to_h36m16(keypoints: KeypointFile) -> np.ndarray:
    """The file's keypoints in the Human3.6M-16 layout ``[P, 16, 3]`` (lifting inputs)."""
    kp, layout = keypoints.keypoints, keypoints.layout
    if layout == "h36m16":
        return kp.copy()
    if layout == "h36m17":
        return kp[:, list(H36M_17_TO_16)].copy()
    if layout == "body25":
        return body25_to_h36m16(kp)
    if layout == "coco17":
        return coco17_to_h36m16(kp)
    raise _fail(keypoints.path, f"cannot map layout {layout!r} to the 16 Human3.6M joints; "
                                "expected body25, coco17, h36m16 or h36m17")

