"""ProHMR head: image encoder → c → p(SMPL pose | c) (+ a point head for shape and camera).

    image ──encoder──▶ c ──┬──▶ conditional Glow f(·; c): z ↔ θ (144-d 6D pose, 24 joints)
                           └──▶ MLP h(c) → β [10], weak-perspective camera (s, tx, ty)
    (θ, β) ──body model──▶ vertices, SMPL joints, evaluation joints, 3D keypoints
    (keypoints, camera) ──perspective projection──▶ 2D keypoints (normalized crop coords)

The keypoints are SPIN's 24 (:data:`KEYPOINT_SOURCES`), built from the body model's
Human3.6M evaluation regressor, two SMPL joints and five face landmarks. Training needs only
keypoints, so :class:`BodyKeypoints` computes them without posing the whole mesh: linear
blend skinning is linear in the vertices, so any vertex regressor can be folded through the
skinning weights into per-joint terms (exact, and ~50x cheaper than the full mesh).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch
from smplx.vertex_ids import vertex_ids as SMPLX_VERTEX_IDS
from torch import Tensor, nn

from condflow._checks import check_module_dtype, check_positive_int, check_tensor
from condflow._recipe import Recorded
from condflow.bijectors import Compose, Permutation
from condflow.bijectors.nets import ResidualBlock
from condflow.body.camera import DEFAULT_FOCAL_LENGTH, DEFAULT_IMG_RES, project_to_crop
from condflow.body.model import BodyModel
from condflow.flow import ConditionalFlow, ConditionalGlow
from condflow.losses.prohmr import BodyPrediction
from condflow.spaces.smpl_pose import SMPL_POSE_DIM, SMPLPoseSpace

__all__ = [
    "KEYPOINT_PELVIS",
    "KEYPOINT_SOURCES",
    "BodyKeypoints",
    "ProHMRHead",
    "ProHMRPrediction",
    "ProHMRRegressionHead",
    "keypoints_from_body",
    "prohmr_6d_order",
]

#: Where each of SPIN's 24 keypoints (``condflow.data.image_datasets.SPIN_KEYPOINT_NAMES``)
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
_SPACE = SMPLPoseSpace()


def _landmark_vertex_ids(body: BodyModel) -> list[int]:
    ids = body.vertex_ids or SMPLX_VERTEX_IDS["smplh"]
    return [int(ids[name]) for name in _LANDMARKS]


def _keypoint_index(num_h36m: int = 17) -> tuple[list[int], list[int]]:
    """For every keypoint: which table (0 SMPL joints, 1 regressed points) and which row."""
    table, row = [], []
    for kind, key in KEYPOINT_SOURCES:
        if kind == "smpl":
            table.append(0), row.append(int(key))
        elif kind == "h36m":
            table.append(1), row.append(int(key))
        else:
            table.append(1), row.append(num_h36m + _LANDMARKS.index(str(key)))
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
        rot = [None] * 24
        pos = [None] * 24
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


@dataclass
class ProHMRPrediction:
    """SMPL parameters and what they produce, for ``n`` predictions per image.

    Attributes (metres for 3D quantities; body frame, i.e. camera-aligned orientation
    without the camera translation):
        pose_6d: ``[B, n, 144]`` the flow's raw 6D output (24 joints, global first).
        rotmat: ``[B, n, 24, 3, 3]`` its Gram-Schmidt rotation matrices.
        betas: ``[B, n, 10]`` shape; cam: ``[B, n, 3]`` weak-perspective camera (s, tx, ty).
        joints: ``[B, n, 24, 3]`` SMPL joints; eval_joints: ``[B, n, 17, 3]`` Human3.6M joints.
        keypoints_3d: ``[B, n, 24, 3]`` SPIN keypoints;
        keypoints_2d: ``[B, n, 24, 2]`` their projections, normalized crop coordinates.
        log_prob: ``[B, n]`` log p(pose_6d | c) (``None`` if not computed).
        vertices: ``[B, n, V, 3]`` (``None`` unless asked for).
    """

    pose_6d: Tensor
    rotmat: Tensor
    betas: Tensor
    cam: Tensor
    joints: Tensor
    eval_joints: Tensor
    keypoints_3d: Tensor
    keypoints_2d: Tensor
    log_prob: Tensor | None = None
    vertices: Tensor | None = None

    @property
    def num_samples(self) -> int:
        return int(self.pose_6d.shape[1])

    def __getitem__(self, index: slice | int) -> ProHMRPrediction:
        """Select along the sample axis (an int keeps the axis with size 1)."""
        if isinstance(index, int):
            index = slice(index, index + 1 if index != -1 else None)
        return ProHMRPrediction(
            **{
                f.name: None if getattr(self, f.name) is None else getattr(self, f.name)[:, index]
                for f in fields(self)
            }
        )

    def loss_inputs(self) -> BodyPrediction:
        """The fields the ProHMR losses supervise."""
        return BodyPrediction(
            keypoints2d=self.keypoints_2d,
            joints3d=self.keypoints_3d,
            rotmat=self.rotmat,
            betas=self.betas,
        )


class PointHead(nn.Module):
    """ProHMR's MLP h(c) → (β, camera) as offsets from ``init_betas``/``init_cam``."""

    def __init__(
        self,
        context_features: int,
        hidden_features: int = 1024,
        init_cam: tuple[float, float, float] = (0.9, 0.0, 0.0),
        num_betas: int = 10,
    ) -> None:
        super().__init__()
        self.num_betas = num_betas
        self.layers = nn.Sequential(
            nn.Linear(context_features, hidden_features),
            nn.ReLU(inplace=True),
            nn.Linear(hidden_features, num_betas + 3),
        )
        nn.init.xavier_uniform_(self.layers[2].weight, gain=0.02)
        nn.init.zeros_(self.layers[2].bias)
        self.register_buffer("init_betas", torch.zeros(num_betas))
        self.register_buffer("init_cam", torch.tensor(init_cam, dtype=torch.float32))

    def forward(self, context: Tensor) -> tuple[Tensor, Tensor]:
        """``[B, C] -> (betas [B, 10], cam [B, 3])``."""
        out = self.layers(context)
        return out[:, : self.num_betas] + self.init_betas, out[:, self.num_betas :] + self.init_cam


def prohmr_6d_order() -> Tensor:
    """``[144]`` indices taking ProHMR's 6D layout to ours: ``ours = theirs[..., order]``.

    Both represent a joint by the first two columns ``a1, a2`` of its rotation matrix;
    ProHMR lays them out column after column (``[a1; a2]``, ``rot6d_to_rotmat`` reading
    ``x.reshape(2, 3).T``), condflow row after row (``x.reshape(3, 2)``).
    """
    row, col = torch.meshgrid(torch.arange(3), torch.arange(2), indexing="ij")
    per_joint = (3 * col + row).reshape(6)  # ours[2 r + c] = theirs[3 c + r]
    return (6 * torch.arange(SMPL_POSE_DIM // 6)[:, None] + per_joint).reshape(-1)


def _init_image_parts(
    head: nn.Module,
    encoder: nn.Module,
    context_features: int | None,
    img_res: int,
    focal_length: float | None,
) -> int:
    """What both image heads share, set on ``head``: the encoder, the crop camera
    (``img_res``, focal length in pixels at it) and the 6D pose space, and with
    :func:`_init_body_parts` the point head and the body. Returns the context size C."""
    context_features = context_features or encoder.out_features
    head.img_res = check_positive_int("img_res", img_res)
    if focal_length is None:
        focal_length = DEFAULT_FOCAL_LENGTH * img_res / DEFAULT_IMG_RES
    if not focal_length > 0:
        raise ValueError(f"focal_length: expected a positive number, got {focal_length!r}")
    head.focal_length = float(focal_length)
    head.encoder = encoder
    head.space = _SPACE
    return context_features


def _init_body_parts(
    head: nn.Module,
    body: BodyModel | None,
    context_features: int,
    point_hidden: int,
    init_cam: tuple[float, float, float],
) -> None:
    """The point head h(c) → (β, camera) and the body with its keypoints, set on ``head``
    after its pose part (module order, hence initialization order, is kept)."""
    head.point_head = PointHead(context_features, point_hidden, init_cam)
    head.body = body if body is not None else BodyModel()
    head.keypoints = BodyKeypoints(head.body)


class ProHMRHead(Recorded, nn.Module):
    """ProHMR: a conditional Glow over the 144-d SMPL 6D pose and a point head for β and the
    camera, both conditioned on ``c = encoder(images)``.

    Args:
        encoder: images ``[B, 3, H, W]`` → ``[B, C]`` (``C = encoder.out_features`` unless
            ``context_features`` is given).
        body: the body model (default: ``BodyModel()``); not saved in the ``state_dict``.
        num_blocks, hidden_features, num_residual_blocks, dropout, batch_norm: the Glow's.
        point_hidden: width of the point head's hidden layer.
        img_res: side of the input crops in pixels.
        focal_length: focal length in pixels at ``img_res``; default ProHMR's 5000 px at 224 px,
            scaled to ``img_res``.
        init_cam: the point head's camera at initialization (s, tx, ty).
        flow_convention: ``"condflow"``, or ``"prohmr"`` for weights imported from ProHMR
            (:mod:`condflow.interop.prohmr`): the flow of ProHMR's nflows fork
            (``ConditionalGlow(convention="nflows")``) followed by a fixed permutation from
            ProHMR's 6D layout to ours (:func:`prohmr_6d_order`; log-det 0).
        conditional_volume: give every Glow block a context-dependent elementwise affine map
            (:class:`~condflow.bijectors.ConditionalAffine`; net width ``volume_hidden``), so
            log p(mode | c) follows the image. Default: ProHMR's blocks.
    """

    #: A density over poses: ``sample``/``log_prob``/``mode`` exist.
    probabilistic = True
    #: What ``forward`` returns, as pictures and tables name it.
    point_label = "mode f(0; c)"
    # Set by _init_image_parts / _init_body_parts.
    space: SMPLPoseSpace
    point_head: PointHead
    body: BodyModel
    keypoints: BodyKeypoints
    img_res: int
    focal_length: float

    def __init__(
        self,
        encoder: nn.Module,
        body: BodyModel | None = None,
        context_features: int | None = None,
        num_blocks: int = 4,
        hidden_features: int = 1024,
        num_residual_blocks: int = 2,
        dropout: float = 0.0,
        batch_norm: bool = True,
        point_hidden: int = 1024,
        img_res: int = DEFAULT_IMG_RES,
        focal_length: float | None = None,
        init_cam: tuple[float, float, float] = (0.9, 0.0, 0.0),
        flow_convention: str = "condflow",
        conditional_volume: bool = False,
        volume_hidden: int = 128,
    ) -> None:
        super().__init__()
        if flow_convention not in ("condflow", "prohmr"):
            raise ValueError(
                f"flow_convention: expected 'condflow' or 'prohmr', got {flow_convention!r}"
            )
        context_features = _init_image_parts(
            self, encoder, context_features, img_res, focal_length
        )
        self.flow = ConditionalGlow(
            SMPL_POSE_DIM,
            context_features,
            num_blocks,
            hidden_features,
            num_residual_blocks,
            dropout,
            batch_norm,
            convention="nflows" if flow_convention == "prohmr" else "condflow",
            conditional_volume=conditional_volume,
            volume_hidden=volume_hidden,
        )
        if flow_convention == "prohmr":
            layout = Permutation(prohmr_6d_order())
            self.flow = ConditionalFlow(
                Compose([self.flow.bijector, layout]), SMPL_POSE_DIM, context_features
            )
        _init_body_parts(self, body, context_features, point_hidden, init_cam)

    # -- conditioning ---------------------------------------------------------------------
    def context(self, images: Tensor) -> Tensor:
        """c = encoder(images): ``[B, 3, H, W] -> [B, C]``."""
        return self.encoder(check_module_dtype("images", images, self))

    # -- density --------------------------------------------------------------------------
    def to_pose_6d(self, pose: Tensor) -> Tensor:
        """Accepts 6D poses ``[B, (n,) 144]`` or rotation matrices ``[B, (n,) 24, 3, 3]``."""
        check_tensor("pose", pose)
        if pose.shape[-1] == SMPL_POSE_DIM and pose.dim() in (2, 3):
            return pose
        if pose.shape[-3:] == (24, 3, 3) and pose.dim() in (4, 5):
            return self.space.from_rotmat(pose)
        raise ValueError(
            "pose: expected 6D poses [B, 144] / [B, n, 144] or rotation matrices "
            f"[B, 24, 3, 3] / [B, n, 24, 3, 3], got {list(pose.shape)}"
        )

    def log_prob(self, pose: Tensor, context: Tensor) -> Tensor:
        """log p(θ | c): ``[B, 144]`` or ``[B, 24, 3, 3]`` → ``[B]``; with a sample axis
        ``[B, n, ...]`` → ``[B, n]``. Densities are over the 144-d 6D features."""
        return self.flow.log_prob(self.to_pose_6d(pose), context)

    # -- prediction -----------------------------------------------------------------------
    def predict(
        self,
        pose_6d: Tensor,
        context: Tensor,
        log_prob: Tensor | None = None,
        vertices: bool = False,
    ) -> ProHMRPrediction:
        """Body, keypoints and camera of given poses ``[B, n, 144]`` for contexts ``[B, C]``."""
        b, n = pose_6d.shape[:2]
        rotmat = self.space.to_rotmat(pose_6d)  # [B, n, 24, 3, 3]
        betas, cam = self.point_head(context)
        betas = betas[:, None].expand(b, n, -1)
        cam = cam[:, None].expand(b, n, -1)
        flat_rot = rotmat.reshape(b * n, 24, 3, 3)
        flat_betas = betas.reshape(b * n, -1)
        joints, eval_joints, kp3d = self.keypoints(flat_rot, flat_betas)
        kp2d = project_to_crop(kp3d, cam.reshape(b * n, 3), self.focal_length, self.img_res)
        mesh = None
        if vertices:
            mesh = self.body(flat_rot[:, :1], flat_rot[:, 1:], flat_betas, eval_joints=False)
            mesh = mesh.vertices.reshape(b, n, -1, 3)
        return ProHMRPrediction(
            pose_6d=pose_6d,
            rotmat=rotmat,
            betas=betas,
            cam=cam,
            joints=joints.reshape(b, n, 24, 3),
            eval_joints=eval_joints.reshape(b, n, -1, 3),
            keypoints_3d=kp3d.reshape(b, n, -1, 3),
            keypoints_2d=kp2d.reshape(b, n, -1, 2),
            log_prob=log_prob,
            vertices=mesh,
        )

    def generate(self, noise: Tensor, context: Tensor, vertices: bool = False) -> ProHMRPrediction:
        """θ = f(z; c) for given noise ``[B, n, 144]``, with its body and log-density."""
        check_tensor("noise", noise, (context.shape[0], "n", SMPL_POSE_DIM))
        pose_6d, log_prob = self.flow.generate(noise, context)
        return self.predict(pose_6d, context, log_prob, vertices)

    def mode(self, context: Tensor, vertices: bool = False) -> ProHMRPrediction:
        """The most likely pose f(0; c) and its body: every field ``[B, 1, ...]``."""
        context = check_tensor("context", context, ("B", self.flow.context_features))
        zero = context.new_zeros(context.shape[0], 1, SMPL_POSE_DIM)
        return self.generate(zero, context, vertices)

    def sample(
        self,
        num_samples: int,
        context: Tensor,
        generator: torch.Generator | None = None,
        vertices: bool = False,
    ) -> ProHMRPrediction:
        """``num_samples`` poses per image and their bodies: every field ``[B, n, ...]``."""
        check_positive_int("num_samples", num_samples)
        context = check_tensor("context", context, ("B", self.flow.context_features))
        shape = (context.shape[0], num_samples, SMPL_POSE_DIM)
        noise = torch.randn(shape, generator=generator, dtype=context.dtype,
                            device=context.device)
        return self.generate(noise, context, vertices)

    def forward(self, images: Tensor) -> ProHMRPrediction:
        """The mode prediction from images (the deterministic predictor): ``[B, 1, ...]``."""
        return self.mode(self.context(images))


class ProHMRRegressionHead(nn.Module):
    """The deterministic baseline of :class:`ProHMRHead` (HMR/SPIN-style direct regression):
    the same encoder and point head, and an MLP of the flow's coupling-net shape regressing
    the 144-d 6D pose from c. It predicts what :meth:`ProHMRHead.mode` predicts, in the same
    :class:`ProHMRPrediction` (n = 1), so the same losses and evaluation apply.

    The pose starts, as in HMR, at a mean-like pose: every body joint at the identity and the
    global orientation at a half turn about x (camera looking at an upright body, y down).

    Args:
        encoder, body, context_features, point_hidden, img_res, focal_length, init_cam: as
            for :class:`ProHMRHead`.
        hidden_features, num_residual_blocks, dropout, batch_norm: the pose MLP (input
            layer, residual blocks, near-zero output layer; the coupling nets' shape).
    """

    probabilistic = False
    point_label = "regression"

    def __init__(
        self,
        encoder: nn.Module,
        body: BodyModel | None = None,
        context_features: int | None = None,
        hidden_features: int = 1024,
        num_residual_blocks: int = 2,
        dropout: float = 0.0,
        batch_norm: bool = True,
        point_hidden: int = 1024,
        img_res: int = DEFAULT_IMG_RES,
        focal_length: float | None = None,
        init_cam: tuple[float, float, float] = (0.9, 0.0, 0.0),
    ) -> None:
        super().__init__()
        context_features = _init_image_parts(
            self, encoder, context_features, img_res, focal_length
        )
        self.context_features = check_positive_int("context_features", context_features)
        output = nn.Linear(hidden_features, SMPL_POSE_DIM)
        nn.init.uniform_(output.weight, -1e-3, 1e-3)
        nn.init.zeros_(output.bias)
        self.regressor = nn.Sequential(
            nn.Linear(context_features, hidden_features),
            *(ResidualBlock(hidden_features, dropout, batch_norm)
              for _ in range(num_residual_blocks)),
            output,
        )
        init = torch.eye(3).expand(24, 3, 3).clone()
        init[0] = torch.diag(torch.tensor([1.0, -1.0, -1.0]))
        self.register_buffer("init_pose", self.space.from_rotmat(init))
        _init_body_parts(self, body, context_features, point_hidden, init_cam)

    context = ProHMRHead.context
    predict = ProHMRHead.predict

    def mode(self, context: Tensor, vertices: bool = False) -> ProHMRPrediction:
        """The regressed pose and its body: every field ``[B, 1, ...]`` (``log_prob`` None)."""
        context = check_tensor("context", context, ("B", self.context_features))
        pose_6d = self.regressor(context) + self.init_pose
        return self.predict(pose_6d[:, None], context, None, vertices)

    def sample(
        self,
        num_samples: int,
        context: Tensor,
        generator: torch.Generator | None = None,
        vertices: bool = False,
    ) -> ProHMRPrediction:
        """A point mass: every one of the ``num_samples`` "samples" is the regressed pose
        (fields ``[B, n, ...]``), so code written for :class:`ProHMRHead` runs unchanged."""
        check_positive_int("num_samples", num_samples)
        pred = self.mode(context, vertices)
        return ProHMRPrediction(**{
            f.name: None if getattr(pred, f.name) is None
            else getattr(pred, f.name).expand(-1, num_samples, *getattr(pred, f.name).shape[2:])
            for f in fields(pred)
        })

    def forward(self, images: Tensor) -> ProHMRPrediction:
        """The prediction from images: ``[B, 1, ...]``."""
        return self.mode(self.context(images))
