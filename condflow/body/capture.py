"""The body model inside graphs captured by ``torch.export`` with a dynamic batch.

smplx's ``SMPLLayer.forward`` takes ``max(1, batch size)``, which fixes a symbolic batch
size to the traced one, and its rigid transform indexes a Python list with a tensor element
(a data-dependent index). :func:`lbs_vertices` calls smplx's linear blend skinning directly,
and :func:`capturable` swaps the rigid transform for one with the kinematic tree as Python
ints (the same arithmetic) while a graph is captured.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import smplx.lbs
import torch
import torch.nn.functional as F
from torch import Tensor

from condflow.body.model import BodyModel

__all__ = ["capturable", "lbs_vertices"]


def lbs_vertices(body: BodyModel, rotmat: Tensor, betas: Tensor) -> Tensor:
    """Vertices ``[N, V, 3]`` (metres, body frame) of rotations ``[N, 24, 3, 3]`` (joint 0
    global) and shapes ``[N, 10]``: smplx's ``lbs`` on the body model's arrays."""
    smpl = body.smpl
    vertices, _ = smplx.lbs.lbs(betas, rotmat, smpl.v_template, smpl.shapedirs, smpl.posedirs,
                      smpl.J_regressor, smpl.parents, smpl.lbs_weights, pose2rot=False)
    return vertices


def _rigid_transform(
    rot_mats: Tensor, joints: Tensor, parents: tuple[int, ...]
) -> tuple[Tensor, Tensor]:
    """smplx's ``batch_rigid_transform`` with the kinematic tree as Python ints.

    smplx indexes its Python list of transforms with ``parents[i]``, a tensor element, which
    ``torch.export`` cannot capture (a data-dependent list index); the arithmetic is the same.
    """
    joints = torch.unsqueeze(joints, dim=-1)
    rel_joints = joints.clone()
    rel_joints[:, 1:] -= joints[:, list(parents[1:])]
    transforms_mat = smplx.lbs.transform_mat(
        rot_mats.reshape(-1, 3, 3), rel_joints.reshape(-1, 3, 1)
    ).reshape(-1, joints.shape[1], 4, 4)
    chain = [transforms_mat[:, 0]]
    for i in range(1, len(parents)):
        chain.append(torch.matmul(chain[parents[i]], transforms_mat[:, i]))
    transforms = torch.stack(chain, dim=1)
    posed_joints = transforms[:, :, :3, 3]
    joints_homogen = F.pad(joints, [0, 0, 0, 1])
    rel_transforms = transforms - F.pad(
        torch.matmul(transforms, joints_homogen), [3, 0, 0, 0, 0, 0, 0, 0]
    )
    return posed_joints, rel_transforms


@contextmanager
def capturable(body: BodyModel) -> Iterator[None]:
    """While inside, smplx's rigid transform is :func:`_rigid_transform` for ``body``'s
    kinematic tree, so that :func:`lbs_vertices` can be captured with a dynamic batch."""
    parents = tuple(int(p) for p in body.parents.tolist())
    original = smplx.lbs.batch_rigid_transform

    def batch_rigid_transform(
        rot_mats: Tensor, joints: Tensor, parents_tensor: Tensor, dtype: Any = None
    ) -> tuple[Tensor, Tensor]:
        return _rigid_transform(rot_mats, joints, parents)

    smplx.lbs.batch_rigid_transform = batch_rigid_transform
    try:
        yield
    finally:
        smplx.lbs.batch_rigid_transform = original
