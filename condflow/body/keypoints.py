"""SPIN's 24 keypoints of a posed body (:data:`KEYPOINT_SOURCES`), from the body model's
Human3.6M evaluation regressor, two SMPL joints and five face landmarks.

Training needs only keypoints, so :class:`BodyKeypoints` computes them without posing the
whole mesh: linear blend skinning is linear in the vertices, so any vertex regressor can be
folded through the skinning weights into per-joint terms (exact, and ~50x cheaper than the
full mesh). :func:`keypoints_from_body` reads the same keypoints off a fully posed body.
"""

from __future__ import annotations

import torch
from smplx.vertex_ids import vertex_ids as SMPLX_VERTEX_IDS
from torch import Tensor, nn

from condflow.body.model import BodyModel

__all__ = [
    "KEYPOINT_PELVIS",
    "KEYPOINT_SOURCES",
    "BodyKeypoints",
    "keypoints_from_body",
]

#: Where each of SPIN's 24 keypoints (``condflow.joints.SPIN_KEYPOINT_NAMES``)
#: comes from: ``("h36m", k)`` the body model's k-th Human3.6M evaluation joint,
#: ``("smpl", j)`` SMPL's kinematic joint j, ``("vertex", name)`` a surface landmark.
KEYPOINT_SOURCES: tuple[tuple[str, int | str], ...] = (
    ("h36m", 3), ("h36m", 2), ("h36m", 1),  # right ankle, knee, hip
    ("h36m", 4), ("h36m", 5), ("h36m", 6),  # left hip, knee, ankle
    ("h36m", 16), ("h36m", 15), ("h36m", 14),  # right wrist, elbow, shoulder
    ("h36m", 11), ("h36m", 12), ("h36m", 13),  # left shoulder, elbow, wrist
    ("smpl", 12), ("h36m", 10),  # neck (LSP), top of head (LSP)
    ("h36m", 0), ("h36m", 8), ("h36m", 7), ("h36m", 9),  # pelvis, thorax, spine, jaw
    ("smpl", 15),  # head (H36M)
    ("vertex", "nose"), ("vertex", "leye"), ("vertex", "reye"),
    ("vertex", "lear"), ("vertex", "rear"),
)  # fmt: skip

#: The pelvis keypoint (SPIN's "Pelvis (MPII)"), the root of 3D keypoint alignment.
KEYPOINT_PELVIS = 14

_LANDMARKS = tuple(str(name) for kind, name in KEYPOINT_SOURCES if kind == "vertex")


def _landmark_vertex_ids(body: BodyModel) -> list[int]:
    ids = body.vertex_ids or SMPLX_VERTEX_IDS["smplh"]
    return [int(ids[name]) for name in _LANDMARKS]


def _keypoint_index(num_h36m: int = 17) -> tuple[list[int], list[int]]:
    """For every keypoint: which table (0 SMPL joints, 1 regressed points) and which row."""
    table, row = [], []
    for kind, key in KEYPOINT_SOURCES:
        if kind == "smpl":
            table.append(0)
            row.append(int(key))
        elif kind == "h36m":
            table.append(1)
            row.append(int(key))
        else:
            table.append(1)
            row.append(num_h36m + _LANDMARKS.index(str(key)))
    return table, row


def keypoints_from_body(
    joints: Tensor, eval_joints: Tensor, vertices: Tensor, body: BodyModel
) -> Tensor:
    """SPIN's 24 keypoints ``[..., 24, 3]`` from a posed body.

    Args:
        joints: SMPL joints ``[..., 24, 3]``; eval_joints: ``[..., 17, 3]``;
        vertices: ``[..., V, 3]``; body: the model that posed them (for the landmark ids).
    """
    landmarks = vertices[..., _landmark_vertex_ids(body), :]
    regressed = torch.cat([eval_joints, landmarks], dim=-2)
    table, row = _keypoint_index(eval_joints.shape[-2])
    parts = [(joints if t == 0 else regressed)[..., r, :] for t, r in zip(table, row, strict=True)]
    return torch.stack(parts, dim=-2)


class BodyKeypoints(nn.Module):
    """SMPL joints, evaluation joints and the 24 keypoints of a body model, without the mesh.

    A point regressed from posed vertices, ``p = Σ_v r_v x_v``, with linear blend skinning
    ``x_v = Σ_j w_vj A_j [v_posed_v; 1]`` equals ``Σ_j A_j [P_j; m_j]`` with
    ``m_j = Σ_v r_v w_vj`` and ``P_j = Σ_v r_v w_vj v_posed_v``, which is linear in the
    shape and pose-corrective blend shapes. Those per-joint tensors are precomputed once,
    so each body costs 24 rigid transforms instead of V skinned vertices. The results equal
    :class:`BodyModel`'s up to rounding. Buffers are derived from the model file and stay
    out of the ``state_dict``.
    """

    # Buffers (derived from the body model file, not saved).
    point_weight: Tensor  # m: [K, 24]
    point_template: Tensor  # [K, 24, 3]
    point_shapedirs: Tensor  # [K, 24, 3, 10]
    point_posedirs: Tensor  # [K, 24, 3, 207]
    joint_template: Tensor  # [24, 3]
    joint_shapedirs: Tensor  # [24, 3, 10]

    def __init__(self, body: BodyModel) -> None:
        super().__init__()
        if body.eval_regressor is None:
            raise ValueError(
                "body: needs a Human3.6M evaluation regressor (J_regressor_h36m.npy next to the "
                "model file) for the evaluation joints and keypoints"
            )
        smpl = body.smpl
        f64 = torch.float64
        template = smpl.v_template.to(f64)  # [V, 3]
        shapedirs = smpl.shapedirs.to(f64)  # [V, 3, 10]
        posedirs = smpl.posedirs.to(f64).reshape(-1, body.num_vertices, 3)  # [207, V, 3]
        skinning = smpl.lbs_weights.to(f64)  # [V, 24]
        ids = _landmark_vertex_ids(body)
        landmark_rows = torch.zeros(len(ids), body.num_vertices, dtype=f64)  # one-hot [5, V]
        landmark_rows[torch.arange(len(ids)), ids] = 1.0
        regressor = torch.cat([body.eval_regressor.to(f64), landmark_rows])  # [K, V]
        weights = torch.einsum("kv,vj->kvj", regressor, skinning)  # [K, V, 24]
        dtype = body.dtype

        def buffer(name: str, value: Tensor) -> None:
            self.register_buffer(name, value.to(dtype).contiguous(), persistent=False)

        buffer("point_weight", weights.sum(1))  # m: [K, 24]
        buffer("point_template", torch.einsum("kvj,vc->kjc", weights, template))
        buffer("point_shapedirs", torch.einsum("kvj,vcd->kjcd", weights, shapedirs))
        buffer("point_posedirs", torch.einsum("kvj,pvc->kjcp", weights, posedirs))
        j_regressor = smpl.J_regressor.to(f64)
        buffer("joint_template", j_regressor @ template)  # [24, 3]
        buffer("joint_shapedirs", torch.einsum("jv,vcd->jcd", j_regressor, shapedirs))
        self.has_posedirs = bool(posedirs.abs().max() > 0)  # all zero in the synthetic model
        self.num_eval_joints = int(body.eval_regressor.shape[0])
        self._table, self._row = _keypoint_index(self.num_eval_joints)
        parents = [int(p) for p in smpl.parents]
        depth = [0] * len(parents)
        for j in range(1, len(parents)):
            depth[j] = depth[parents[j]] + 1
        # Joints grouped by depth in the kinematic tree: each level is one batched step.
        self._levels = [
            ([j for j in range(len(parents)) if depth[j] == d],
             [parents[j] for j in range(len(parents)) if depth[j] == d])
            for d in range(1, max(depth) + 1)
        ]
        self._parents = parents

    def rigid_transforms(self, rotmat: Tensor, rest_joints: Tensor) -> tuple[Tensor, Tensor]:
        """World rotations ``[N, 24, 3, 3]`` and posed joints ``[N, 24, 3]`` of the kinematic
        chain, from local rotations ``[N, 24, 3, 3]`` and rest joints ``[N, 24, 3]``."""
        offsets = rest_joints.clone()
        offsets[:, 1:] -= rest_joints[:, self._parents[1:]]
        rot: list[Tensor] = [rotmat[:, 0]] * 24  # every entry set below, parents first
        pos: list[Tensor] = [rest_joints[:, 0]] * 24
        rot[0], pos[0] = rotmat[:, 0], rest_joints[:, 0]
        for joints, parents in self._levels:
            parent_rot = torch.stack([rot[p] for p in parents], 1)  # [N, m, 3, 3]
            parent_pos = torch.stack([pos[p] for p in parents], 1)
            child_rot = parent_rot @ rotmat[:, joints]
            child_pos = (parent_rot @ offsets[:, joints, :, None])[..., 0] + parent_pos
            for i, j in enumerate(joints):
                rot[j], pos[j] = child_rot[:, i], child_pos[:, i]
        return torch.stack(rot, 1), torch.stack(pos, 1)

    def forward(self, rotmat: Tensor, betas: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Rotations ``[N, 24, 3, 3]`` (joint 0 global) and shapes ``[N, 10]`` → SMPL joints
        ``[N, 24, 3]``, evaluation joints ``[N, 17, 3]`` and keypoints ``[N, 24, 3]`` (metres,
        body frame: no translation)."""
        n = rotmat.shape[0]
        k = self.point_weight.shape[0]
        rest_joints = self.joint_template + (betas @ self.joint_shapedirs.reshape(-1, 10).T
                                             ).reshape(n, 24, 3)
        world_rot, joints = self.rigid_transforms(rotmat, rest_joints)
        # Translation of each joint's skinning transform: posed joint - R · rest joint.
        shift = joints - (world_rot @ rest_joints[..., None])[..., 0]  # [N, 24, 3]
        points = self.point_template + (betas @ self.point_shapedirs.reshape(-1, 10).T
                                        ).reshape(n, k, 24, 3)
        if self.has_posedirs:
            eye = torch.eye(3, dtype=rotmat.dtype, device=rotmat.device)
            pose_feature = (rotmat[:, 1:] - eye).reshape(n, -1)  # [N, 207]
            posedirs = self.point_posedirs.reshape(-1, pose_feature.shape[1])
            points = points + (pose_feature @ posedirs.T).reshape(n, k, 24, 3)
        # Σ_j R_j P_kj as one batched product over the (joint, coordinate) pairs.
        rot_t = world_rot.transpose(-1, -2).reshape(n, 72, 3)
        regressed = points.reshape(n, k, 72) @ rot_t + self.point_weight @ shift
        parts = [
            (joints if t == 0 else regressed)[:, r] for t, r in zip(self._table, self._row,
                                                                     strict=True)
        ]
        return joints, regressed[:, : self.num_eval_joints], torch.stack(parts, dim=1)
