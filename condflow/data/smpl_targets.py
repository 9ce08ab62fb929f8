"""3D skeleton targets from SMPL parameters: the Human3.6M joints of each ground-truth body.

A dataset with SMPL ground truth (``global_orient``, ``body_pose``, ``betas``, ``has_smpl``:
:class:`~condflow.data.image_datasets.ImageDataset`, or
:class:`~condflow.data.augmentation_rounds.AugmentationRounds` of one) supervises a 3D
skeleton head once each item also carries the body's 17 evaluation joints, relative to the
hip, in millimetres: :class:`WithSMPLJoints`. The joints follow the item's pose as given,
i.e. after the crop's rotation and flip, so they stay in the (augmented) camera frame of
``keypoints_3d``. :func:`smpl_joints_table` computes the same joints for many parameter rows
at once (e.g. normalization statistics over a whole set), without loading images.

The joints come from :class:`~condflow.body.keypoints.BodyKeypoints` (the body model's
evaluation regressor folded through the skinning; equal to a full
:class:`~condflow.body.model.BodyModel` forward up to float rounding), the computation a
mesh head's own ``eval_joints`` use, and the rotations from
:func:`~condflow.spaces.rotations.axis_angle_to_matrix`, as the mesh objective's
ground-truth rotations.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from condflow._checks import check_positive_int, check_tensor
from condflow.body.keypoints import BodyKeypoints
from condflow.body.model import BodyModel
from condflow.spaces.rotations import axis_angle_to_matrix

__all__ = [
    "SMPL_ITEM_KEYS",
    "ItemDataset",
    "WithSMPLJoints",
    "smpl_joints_mm",
    "smpl_joints_table",
]

#: The item keys :class:`WithSMPLJoints` reads.
SMPL_ITEM_KEYS = ("global_orient", "body_pose", "betas", "has_smpl")


class ItemDataset(Protocol):
    """A map-style dataset of dict items (what :class:`WithSMPLJoints` wraps)."""

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> dict[str, Any]: ...


def _keypoint_model(body: BodyModel | BodyKeypoints) -> BodyKeypoints:
    if isinstance(body, BodyKeypoints):
        return body
    if isinstance(body, BodyModel):
        return BodyKeypoints(body)
    raise ValueError(f"body: expected a BodyModel or BodyKeypoints, got {type(body).__name__}")


def smpl_joints_mm(
    keypoints: BodyKeypoints, global_orient: Tensor, body_pose: Tensor, betas: Tensor
) -> Tensor:
    """Human3.6M joints ``[B, 17, 3]`` of SMPL bodies: millimetres, relative to the hip
    (joint 0), in the frame of ``global_orient``; float32, on the device of ``keypoints``.

    Args:
        keypoints: the body model's keypoint regressor.
        global_orient: ``[B, 3]`` axis-angle root orientation (radians).
        body_pose: ``[B, 23, 3]`` axis-angle rotations of the other joints.
        betas: ``[B, 10]`` shape coefficients.
    """
    check_tensor("global_orient", global_orient, ("B", 3))
    b = global_orient.shape[0]
    check_tensor("body_pose", body_pose, (b, 23, 3))
    check_tensor("betas", betas, (b, keypoints.joint_shapedirs.shape[-1]))
    like = keypoints.joint_template  # the model's dtype and device
    pose = torch.cat([global_orient[:, None], body_pose], 1).to(like)
    with torch.no_grad():
        _, eval_joints, _ = keypoints(axis_angle_to_matrix(pose), betas.to(like))
    return (1000.0 * (eval_joints - eval_joints[:, :1])).float()


def _as_tensor(name: str, x: object) -> Tensor:
    if isinstance(x, np.ndarray):
        if x.dtype.kind not in "iuf":
            raise ValueError(f"{name}: expected numbers, got dtype {x.dtype}")
        return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float64))
    if isinstance(x, Tensor):
        return x.detach().cpu()
    raise ValueError(f"{name}: expected a numpy array or a torch.Tensor, got {type(x).__name__}")


def smpl_joints_table(
    pose: Tensor | np.ndarray | tuple[Tensor | np.ndarray, Tensor | np.ndarray],
    betas: Tensor | np.ndarray,
    body: BodyModel | BodyKeypoints,
    *,
    chunk_size: int = 4096,
) -> Tensor:
    """The Human3.6M joints ``[N, 17, 3]`` (float32, millimetres, hip-relative, in the frame
    of each row's global orientation) of ``N`` SMPL parameter rows, ``chunk_size`` rows at a
    time (on the device of ``body``; the result on the CPU): what :class:`WithSMPLJoints`
    adds to an item, for a whole table.

    Args:
        pose: ``[N, 72]`` axis-angle SMPL poses (root orientation first; SPIN's ``pose`` /
            :attr:`ImageDataset.pose <condflow.data.image_datasets.ImageDataset>`), or a pair
            ``(global_orient [N, 3], body_pose [N, 23, 3])``.
        betas: ``[N, 10]`` shape coefficients.
        body: the body model (or its :class:`~condflow.body.keypoints.BodyKeypoints`).
        chunk_size: rows per batched evaluation.
    """
    check_positive_int("chunk_size", chunk_size)
    if isinstance(pose, tuple):
        if len(pose) != 2:
            raise ValueError(f"pose: expected a pair (global_orient, body_pose), got "
                             f"{len(pose)} items")
        orient = check_tensor("pose[0] (global_orient)", _as_tensor("pose[0]", pose[0]),
                              ("N", 3))
        rest = check_tensor("pose[1] (body_pose)", _as_tensor("pose[1]", pose[1]),
                            (orient.shape[0], 23, 3))
    else:
        full = check_tensor("pose", _as_tensor("pose", pose), ("N", 72))
        orient, rest = full[:, :3], full[:, 3:].reshape(-1, 23, 3)
    shape = check_tensor("betas", _as_tensor("betas", betas), (orient.shape[0], 10))
    keypoints = _keypoint_model(body)
    out = [smpl_joints_mm(keypoints, orient[lo : lo + chunk_size], rest[lo : lo + chunk_size],
                          shape[lo : lo + chunk_size]).cpu()
           for lo in range(0, orient.shape[0], chunk_size)]
    return torch.cat(out) if out else torch.zeros(0, keypoints.num_eval_joints, 3)


class WithSMPLJoints(Dataset):
    """Items of ``dataset`` with the 3D skeleton of their SMPL ground truth added.

    Each item of ``dataset`` (a dict with :data:`SMPL_ITEM_KEYS`: ``global_orient [3]``,
    ``body_pose [23, 3]`` axis-angle, ``betas [10]``, scalar ``has_smpl``) gains

    - ``joints_3d`` ``[17, 3]`` float32: the body's Human3.6M evaluation joints, millimetres,
      relative to the hip, in the frame of the item's ``global_orient`` (after the item's
      augmentation: the crop's camera frame); zeros where the item has no SMPL;
    - ``has_joints_3d``: the item's ``has_smpl`` (its ``betas`` are used as given: a set with
      poses but no shapes gives the mean-shape skeleton).

    Args:
        dataset: any map-style dataset of such items (e.g. an
            :class:`~condflow.data.image_datasets.ImageDataset` or
            :class:`~condflow.data.augmentation_rounds.AugmentationRounds`).
        body: the body model (or its :class:`~condflow.body.keypoints.BodyKeypoints`), which
            must have a Human3.6M evaluation regressor.
    """

    def __init__(self, dataset: ItemDataset, body: BodyModel | BodyKeypoints) -> None:
        if not (hasattr(dataset, "__getitem__") and hasattr(dataset, "__len__")):
            raise ValueError(f"dataset: expected a map-style dataset (with __getitem__ and "
                             f"__len__), got {type(dataset).__name__}")
        self.dataset = dataset
        self.keypoints = _keypoint_model(body)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict[str, Any]:
        item = self.dataset[index]
        if not isinstance(item, dict):
            raise ValueError(f"dataset: item {index} is a {type(item).__name__}, expected a "
                             f"dict with keys {list(SMPL_ITEM_KEYS)}")
        missing = [k for k in SMPL_ITEM_KEYS if k not in item]
        if missing:
            raise ValueError(f"dataset: item {index} lacks keys {missing} (needs "
                             f"{list(SMPL_ITEM_KEYS)}; has {sorted(item)})")
        has_smpl = torch.as_tensor(item["has_smpl"], dtype=torch.float32)
        if float(has_smpl) > 0:
            joints = smpl_joints_mm(self.keypoints, item["global_orient"][None],
                                    item["body_pose"][None], item["betas"][None])[0]
        else:
            joints = torch.zeros(self.keypoints.num_eval_joints, 3)
        return {**item, "joints_3d": joints, "has_joints_3d": has_smpl}
