"""ProHMR head: image encoder → c → p(SMPL pose | c) (+ a point head for shape and camera).

    image ──encoder──▶ c ──┬──▶ conditional Glow f(·; c): z ↔ θ (144-d 6D pose, 24 joints)
                           └──▶ MLP h(c) → β [10], weak-perspective camera (s, tx, ty)
    (θ, β) ──body model──▶ vertices, SMPL joints, evaluation joints, 3D keypoints
    (keypoints, camera) ──perspective projection──▶ 2D keypoints (normalized crop coords)

The keypoints are SPIN's 24 (:data:`condflow.body.keypoints.KEYPOINT_SOURCES`), computed
without posing the whole mesh by :class:`condflow.body.keypoints.BodyKeypoints`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from condflow._checks import check_positive_int, check_tensor
from condflow._recipe import Recorded
from condflow.bijectors import Compose, CouplingNet, Permutation
from condflow.bijectors.nets import ResidualBlock, check_coupling_net
from condflow.body.camera import DEFAULT_FOCAL_LENGTH, DEFAULT_IMG_RES, project_to_crop
from condflow.body.capture import capturable, lbs_vertices
from condflow.body.keypoints import KEYPOINT_SOURCES, BodyKeypoints
from condflow.body.model import BodyModel
from condflow.flow import ConditionalFlow, ConditionalGlow
from condflow.heads.base import (
    Head,
    HeadAdapter,
    Prediction,
    RegressionHead,
    encoder_context_features,
)
from condflow.spaces.smpl_pose import SMPL_POSE_DIM, SMPLPoseSpace

__all__ = [
    "MeshHead",
    "ProHMRHead",
    "ProHMRPrediction",
    "ProHMRRegressionHead",
    "SMPLAdapter",
    "prohmr_6d_order",
]

_SPACE = SMPLPoseSpace()


@dataclass
class ProHMRPrediction(Prediction):
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
    def native(self) -> Tensor:
        """The rotation matrices ``[B, n, 24, 3, 3]``."""
        return self.rotmat

    @property
    def joints_mm(self) -> Tensor:
        """The Human3.6M evaluation joints relative to the pelvis, ``[B, n, 17, 3]`` mm."""
        return 1000.0 * (self.eval_joints - self.eval_joints[..., :1, :])


class PointHead(nn.Module):
    """ProHMR's MLP h(c) → (β, camera) as offsets from ``init_betas``/``init_cam``."""

    init_betas: Tensor
    init_cam: Tensor

    def __init__(
        self,
        context_features: int,
        hidden_features: int = 1024,
        init_cam: tuple[float, float, float] = (0.9, 0.0, 0.0),
        num_betas: int = 10,
    ) -> None:
        super().__init__()
        self.num_betas = num_betas
        first = nn.Linear(context_features, hidden_features)
        last = nn.Linear(hidden_features, num_betas + 3)
        nn.init.xavier_uniform_(last.weight, gain=0.02)
        nn.init.zeros_(last.bias)
        self.layers = nn.Sequential(first, nn.ReLU(inplace=True), last)
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


#: Outputs of a mesh head's mode (and of each sample, prefixed ``sample_`` when exported).
MESH_FIELDS = ("vertices", "eval_joints", "keypoints_2d", "rotmat", "betas", "cam")
#: The fields that differ between samples (shape and camera come from h(c)).
MESH_SAMPLE_FIELDS = ("vertices", "eval_joints", "keypoints_2d", "rotmat")
#: Units of a mesh head's outputs.
MESH_UNITS: dict[str, str] = {
    "vertices": "metres, body frame (camera-aligned orientation, no translation)",
    "eval_joints": "metres, Human3.6M-17 joints regressed from the vertices, body frame",
    "keypoints_2d": "normalized crop coordinates in [-1, 1] (SPIN's 24 keypoints)",
    "rotmat": "rotation matrices of SMPL's 24 joints, the global orientation first",
    "betas": "SMPL shape coefficients (10)",
    "cam": "weak-perspective camera (s, tx, ty) in normalized crop coordinates",
    "log_prob": "nats, log density over the 144-d 6D pose (24 joints x 6)",
}


class _MeshOutputs:
    """What both SMPL heads (flow and regression, on any encoder) share: the prediction from
    a 6D pose and c (body, keypoints, camera), export names and units."""

    input_argument: ClassVar[str] = "inputs"
    mode_outputs: ClassVar[tuple[str, ...]] = MESH_FIELDS
    sample_outputs: ClassVar[tuple[str, ...]] = MESH_SAMPLE_FIELDS
    output_units: ClassVar[dict[str, str]] = MESH_UNITS
    encoder: nn.Module
    space: SMPLPoseSpace
    point_head: PointHead
    keypoints: BodyKeypoints
    body: BodyModel
    img_res: int
    focal_length: float

    def features(self, target: Tensor) -> Tensor:
        """Accepts 6D poses ``[B, (n,) 144]`` or rotation matrices ``[B, (n,) 24, 3, 3]``."""
        check_tensor("pose", target)
        if target.shape[-1] == SMPL_POSE_DIM and target.dim() in (2, 3):
            return target
        if target.shape[-3:] == (24, 3, 3) and target.dim() in (4, 5):
            return self.space.from_rotmat(target)
        raise ValueError(
            "pose: expected 6D poses [B, 144] / [B, n, 144] or rotation matrices "
            f"[B, 24, 3, 3] / [B, n, 24, 3, 3], got {list(target.shape)}"
        )

    to_pose_6d = features

    def predict(
        self,
        features: Tensor,
        context: Tensor,
        log_prob: Tensor | None = None,
        vertices: bool = False,
    ) -> ProHMRPrediction:
        """Body, keypoints and camera of given poses ``[B, n, 144]`` for contexts ``[B, C]``
        (with ``vertices``, also the mesh)."""
        pose_6d = features
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

    def export_prediction(self, context: Tensor, noise: Tensor | None = None
                          ) -> ProHMRPrediction:
        """The mode (or f(noise; c)) with its vertices, posed by :func:`lbs_vertices`."""
        pred = self.mode(context) if noise is None else self.generate(noise, context)  # type: ignore[attr-defined]
        b, n = pred.rotmat.shape[:2]
        rotmat = pred.rotmat.reshape(-1, 24, 3, 3)
        verts = lbs_vertices(self.body, rotmat, pred.betas.reshape(rotmat.shape[0], -1))
        pred.vertices = verts.reshape(b, n, -1, 3)
        return pred

    def capturable(self) -> Any:
        """smplx's rigid transform made capturable (:func:`condflow.body.capture.capturable`)."""
        return capturable(self.body)


def _init_image_parts(
    head: _MeshOutputs,
    encoder: nn.Module,
    context_features: int | None,
    img_res: int,
    focal_length: float | None,
) -> int:
    """What both image heads share, set on ``head``: the encoder, the crop camera
    (``img_res``, focal length in pixels at it) and the 6D pose space, and with
    :func:`_init_body_parts` the point head and the body. Returns the context size C."""
    context_features = encoder_context_features(encoder, context_features)
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
    head: _MeshOutputs,
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


class ProHMRHead(_MeshOutputs, Recorded, Head):
    """ProHMR: a conditional Glow over the 144-d SMPL 6D pose and a point head for β and the
    camera, both conditioned on ``c = encoder(images)``.

    Args:
        encoder: images ``[B, 3, H, W]`` → ``[B, C]`` (``C = encoder.out_features`` unless
            ``context_features`` is given).
        body: the body model (default: ``BodyModel()``); not saved in the ``state_dict``.
        num_blocks: the Glow's blocks.
        coupling_net: the Glow's coupling nets (:class:`~condflow.bijectors.CouplingNet`).
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

    space: SMPLPoseSpace  # narrows Head's OutputSpace, as _MeshOutputs does

    def __init__(
        self,
        encoder: nn.Module,
        body: BodyModel | None = None,
        context_features: int | None = None,
        num_blocks: int = 4,
        *,
        coupling_net: CouplingNet = CouplingNet(),
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
            coupling_net=coupling_net,
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

    # -- density (Head's log_prob over the 144-d 6D features) -----------------------------
    def generate(self, noise: Tensor, context: Tensor, vertices: bool = False
                 ) -> ProHMRPrediction:
        """θ = f(z; c) for given noise ``[B, n, 144]``, with its body and log-density."""
        check_tensor("noise", noise, (context.shape[0], "n", SMPL_POSE_DIM))
        pose_6d, log_prob = self.flow.generate(noise, context)
        return self.predict(pose_6d, context, log_prob, vertices)

    def mode(self, context: Tensor, vertices: bool = False) -> ProHMRPrediction:
        """The most likely pose f(0; c) and its body: every field ``[B, 1, ...]``."""
        pose_6d, log_prob = self.flow.mode_and_log_prob(context)
        return self.predict(pose_6d[:, None], context, log_prob[:, None], vertices)

    def sample(
        self,
        num_samples: int,
        context: Tensor,
        generator: torch.Generator | None = None,
        vertices: bool = False,
    ) -> ProHMRPrediction:
        """``num_samples`` poses per image and their bodies: every field ``[B, n, ...]``."""
        pose_6d, log_prob = self.flow.sample_and_log_prob(num_samples, context, generator)
        return self.predict(pose_6d, context, log_prob, vertices)

    def fitting_adapter(self, **kwargs: Any) -> SMPLAdapter:
        """:class:`SMPLAdapter` (no options)."""
        return SMPLAdapter(self, **kwargs)


class ProHMRRegressionHead(_MeshOutputs, RegressionHead):
    """The deterministic baseline of :class:`ProHMRHead` (HMR/SPIN-style direct regression):
    the same encoder and point head, and an MLP of the flow's coupling-net shape regressing
    the 144-d 6D pose from c. It predicts what :meth:`ProHMRHead.mode` predicts, in the same
    :class:`ProHMRPrediction` (n = 1), so the same losses and evaluation apply.

    The pose starts, as in HMR, at a mean-like pose: every body joint at the identity and the
    global orientation at a half turn about x (camera looking at an upright body, y down).

    Args:
        encoder, body, context_features, point_hidden, img_res, focal_length, init_cam: as
            for :class:`ProHMRHead`.
        pose_net: the shape of the pose MLP (input layer, residual blocks, near-zero output
            layer), a :class:`~condflow.bijectors.CouplingNet` like the flow's coupling nets.
    """

    space: SMPLPoseSpace  # narrows Head's OutputSpace, as _MeshOutputs does
    init_pose: Tensor

    def __init__(
        self,
        encoder: nn.Module,
        body: BodyModel | None = None,
        context_features: int | None = None,
        *,
        pose_net: CouplingNet = CouplingNet(),
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
        net = check_coupling_net("pose_net", pose_net)
        output = nn.Linear(net.hidden_features, SMPL_POSE_DIM)
        nn.init.uniform_(output.weight, -1e-3, 1e-3)
        nn.init.zeros_(output.bias)
        self.regressor = nn.Sequential(
            nn.Linear(context_features, net.hidden_features),
            *(ResidualBlock(net.hidden_features, dropout=net.dropout, batch_norm=net.batch_norm)
              for _ in range(net.num_residual_blocks)),
            output,
        )
        init = torch.eye(3).expand(24, 3, 3).clone()
        init[0] = torch.diag(torch.tensor([1.0, -1.0, -1.0]))
        self.register_buffer("init_pose", self.space.from_rotmat(init))
        _init_body_parts(self, body, context_features, point_hidden, init_cam)

    def regress(self, context: Tensor) -> Tensor:
        """The regressed 6D pose ``[B, C] -> [B, 144]``."""
        context = check_tensor("context", context, ("B", self.context_features))
        return self.regressor(context) + self.init_pose

    def mode(self, context: Tensor, vertices: bool = False) -> ProHMRPrediction:
        """The regressed pose and its body: every field ``[B, 1, ...]`` (``log_prob`` None)."""
        return self.predict(self.regress(context)[:, None], context, None, vertices)

    def sample(
        self,
        num_samples: int,
        context: Tensor,
        generator: torch.Generator | None = None,
        vertices: bool = False,
    ) -> ProHMRPrediction:
        """Refused (``NotProbabilisticError``), with :meth:`ProHMRHead.sample`'s arguments."""
        raise self._refuse("samples")

    def generate(self, noise: Tensor, context: Tensor, vertices: bool = False
                 ) -> ProHMRPrediction:
        """Refused (``NotProbabilisticError``), with :meth:`ProHMRHead.generate`'s arguments."""
        raise self._refuse("latent space")


#: Either mesh head: what the mesh task builds, trains, evaluates and draws.
MeshHead = ProHMRHead | ProHMRRegressionHead


class SMPLAdapter(HeadAdapter):
    """ProHMR head: θ = 6D SMPL pose ``[B, 144]``; extras β ``[B, 10]`` and the
    weak-perspective camera ``[B, 3]`` (initialized from the point head h(c)); the body
    model's 24 keypoints projected into normalized crop coordinates (focal
    ``head.focal_length`` at ``head.img_res``); E_β = ‖β‖².
    """

    head: ProHMRHead

    def __init__(self, head: ProHMRHead) -> None:
        if not isinstance(head, ProHMRHead):
            raise ValueError(f"head: expected a ProHMRHead, got {type(head).__name__}")
        self.head = head
        self.num_keypoints = len(KEYPOINT_SOURCES)

    def initial_extras(self, theta: Tensor, context: Tensor, keypoints: Tensor
                       ) -> dict[str, Tensor]:
        betas, cam = self.head.point_head(context)
        return {"betas": betas.detach(), "cam": cam.detach()}

    def body(self, theta: Tensor, betas: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Rotations ``[B, 24, 3, 3]``, SMPL joints ``[B, 24, 3]``, evaluation joints
        ``[B, 17, 3]`` and 3D keypoints ``[B, 24, 3]`` (metres, body frame)."""
        rotmat = self.head.space.to_rotmat(theta)
        joints, eval_joints, kp3d = self.head.keypoints(rotmat, betas)
        return rotmat, joints, eval_joints, kp3d

    def project_keypoints(self, kp3d: Tensor, cam: Tensor) -> Tensor:
        """3D keypoints ``[B, K, 3]`` and cameras ``[B, 3]`` → ``[B, K, 2]`` crop coords."""
        return project_to_crop(kp3d, cam, self.head.focal_length, self.head.img_res)

    def project(self, theta: Tensor, extras: dict[str, Tensor]) -> Tensor:
        kp3d = self.body(theta, extras["betas"])[3]
        return self.project_keypoints(kp3d, extras["cam"])

    def extra_residuals(self, extras: dict[str, Tensor]) -> Tensor:
        return extras["betas"]

    def outputs(self, theta: Tensor, extras: dict[str, Tensor]) -> dict[str, Tensor]:
        rotmat, joints, eval_joints, kp3d = self.body(theta, extras["betas"])
        eval_mm = 1000.0 * (eval_joints - eval_joints[:, :1])
        return {
            "joints_mm": eval_mm,
            "rotmat": rotmat,
            "betas": extras["betas"],
            "cam": extras["cam"],
            "keypoints_2d": self.project_keypoints(kp3d, extras["cam"]),
        }
