"""Head adapters: how a head's output θ (plus per-example extras) becomes 2D keypoints.

An adapter tells the generic fitting code four things about a head:

* ``flow``: the conditional flow θ = f(z; c) with ``d = flow.features``;
* ``initial_extras(theta, context, keypoints)``: starting values of the variables fitted
  alongside θ (a root translation; shape β and a camera), ``{name: [B, ...]}``;
* ``project(theta, extras)``: 2D keypoints ``[B, K, 2]`` in the units of the observations;
* ``extra_energy(extras)``: a penalty on the extras ``[B]`` (E_β = ‖β‖², or 0).

``outputs(theta, extras)`` returns what people measure (``"joints_mm"``: root-relative 3D
joints ``[B, 17, 3]`` in millimetres, the Human3.6M joints, plus head-specific fields).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from condflow.flow import ConditionalFlow
from condflow.heads.skeleton import SkeletonHead
from condflow.spaces.skeleton import H36M_17_TO_16

if TYPE_CHECKING:
    from condflow.heads.prohmr import ProHMRHead

__all__ = [
    "HeadAdapter",
    "SMPLAdapter",
    "SkeletonAdapter",
    "make_adapter",
    "pinhole_translation",
]


class HeadAdapter:
    """Interface of a head adapter (see the module docstring)."""

    head: nn.Module
    num_keypoints: int

    @property
    def flow(self) -> ConditionalFlow:
        return self.head.flow

    @property
    def dim(self) -> int:
        """d, the dimension of θ and z."""
        return self.flow.features

    def initial_extras(self, theta: Tensor, context: Tensor, keypoints: Tensor
                       ) -> dict[str, Tensor]:
        raise NotImplementedError

    def project(self, theta: Tensor, extras: dict[str, Tensor]) -> Tensor:
        raise NotImplementedError

    def extra_energy(self, extras: dict[str, Tensor]) -> Tensor:
        first = next(iter(extras.values()))
        return first.new_zeros(first.shape[0])

    def outputs(self, theta: Tensor, extras: dict[str, Tensor]) -> dict[str, Tensor]:
        raise NotImplementedError


def pinhole_translation(
    points: Tensor,
    keypoints: Tensor,
    focal: float,
    default_depth: float = 5.0,
    ridge: float = 1e-8,
) -> Tensor:
    """Least-squares translation T ``[B, 3]`` so that ``points + T`` project onto ``keypoints``.

    With ``u = f (X + T)_xy / (X + T)_z`` each visible keypoint gives two equations linear in
    T: ``f T_x − u_x T_z = u_x X_z − f X_x`` (and the same for y), weighted by the confidence.
    A small ridge towards ``(0, 0, default_depth)`` keeps examples with fewer than two visible
    keypoints well posed; the depth is kept ≥ 0.1 · ``default_depth``.

    Args:
        points: ``[B, K, 3]`` 3D points (metres) before translation.
        keypoints: ``[B, K, 3]`` observed ``(u, v, confidence)``.
        focal: focal length in the units of ``u`` (normalized: 2 · focal_px / image_size).
    """
    w = keypoints[..., 2]
    u = keypoints[..., :2] * (w > 0)[..., None]
    zero, f = torch.zeros_like(u[..., 0]), torch.full_like(u[..., 0], focal)
    rows_x = torch.stack([f, zero, -u[..., 0]], -1)  # [B, K, 3]
    rows_y = torch.stack([zero, f, -u[..., 1]], -1)
    a = torch.cat([rows_x, rows_y], 1)
    b = torch.cat([u[..., 0] * points[..., 2] - focal * points[..., 0],
                   u[..., 1] * points[..., 2] - focal * points[..., 1]], 1)
    ww = torch.cat([w, w], 1)
    ata = torch.einsum("bki,bk,bkj->bij", a, ww, a)
    atb = torch.einsum("bki,bk,bk->bi", a, ww, b)
    lam = ridge * (1.0 + ata.diagonal(dim1=-2, dim2=-1).sum(-1))[:, None, None]
    prior = points.new_tensor([0.0, 0.0, default_depth])
    t = torch.linalg.solve(ata + lam * torch.eye(3, dtype=a.dtype, device=a.device),
                           atb + lam[..., 0] * prior)
    depth = t[:, 2].clamp_min(0.1 * default_depth)
    return torch.cat([t[:, :2], depth[:, None]], 1)


class SkeletonAdapter(HeadAdapter):
    """Skeleton head: root-relative joints (mm) plus a root translation T ``[B, 3]`` (metres,
    camera frame; fitted as ``offset``/``log_depth``, see :meth:`initial_extras`), seen by a
    pinhole camera with the principal point at the origin of the normalized screen
    coordinates.

    Args:
        head: a :class:`SkeletonHead` over a 17-joint Human3.6M skeleton (camera frame).
        focal: normalized focal length ``2 · focal_px / image_size`` (2.0 for the synthetic
            lifting set: 1000 px at 1000 px).
        keypoint_joints: which of the head's joints the K observed keypoints are
            (default the 16 Human3.6M joints without the nose, ``H36M_17_TO_16``).
        min_depth: depths are clamped to at least this (metres) before dividing.
    """

    def __init__(
        self,
        head: SkeletonHead,
        focal: float = 2.0,
        keypoint_joints: tuple[int, ...] = H36M_17_TO_16,
        min_depth: float = 0.05,
    ) -> None:
        if not isinstance(head, SkeletonHead):
            raise ValueError(f"head: expected a SkeletonHead, got {type(head).__name__}")
        if not focal > 0:
            raise ValueError(f"focal: expected a positive number, got {focal!r}")
        self.head = head
        self.focal = float(focal)
        self.keypoint_joints = list(keypoint_joints)
        self.num_keypoints = len(self.keypoint_joints)
        self.min_depth = float(min_depth)

    def joints_mm(self, theta: Tensor) -> Tensor:
        """θ ``[B, d]`` → root-relative joints ``[B, J, 3]`` in millimetres."""
        return self.head.space.to_joints(theta)

    def initial_extras(self, theta: Tensor, context: Tensor, keypoints: Tensor
                       ) -> dict[str, Tensor]:
        """The root translation by least squares (:func:`pinhole_translation`) for the joints
        ``theta``, as ``offset [B, 2]`` (the root's image position f·T_xy/T_z) and
        ``log_depth [B, 1]`` (log T_z): a well-scaled parametrization with T_z > 0."""
        points = self.joints_mm(theta)[:, self.keypoint_joints] / 1000.0
        return self.from_translation(pinhole_translation(points, keypoints, self.focal))

    def from_translation(self, transl: Tensor) -> dict[str, Tensor]:
        """Translation ``[B, 3]`` (T_z > 0) → extras ``{offset, log_depth}``."""
        depth = transl[:, 2:]
        return {"offset": self.focal * transl[:, :2] / depth, "log_depth": depth.log()}

    def translation(self, extras: dict[str, Tensor]) -> Tensor:
        """Extras → root translation T ``[B, 3]`` (metres, camera frame)."""
        depth = extras["log_depth"].exp()
        return torch.cat([extras["offset"] * depth / self.focal, depth], 1)

    def camera_points(self, theta: Tensor, extras: dict[str, Tensor]) -> Tensor:
        """Joints in the camera frame ``[B, J, 3]`` (metres)."""
        return self.joints_mm(theta) / 1000.0 + self.translation(extras)[:, None]

    def project(self, theta: Tensor, extras: dict[str, Tensor]) -> Tensor:
        p = self.camera_points(theta, extras)[:, self.keypoint_joints]
        return self.focal * p[..., :2] / p[..., 2:].clamp_min(self.min_depth)

    def outputs(self, theta: Tensor, extras: dict[str, Tensor]) -> dict[str, Tensor]:
        return {"joints_mm": self.joints_mm(theta), "transl": self.translation(extras)}


class SMPLAdapter(HeadAdapter):
    """ProHMR head: θ = 6D SMPL pose ``[B, 144]``; extras β ``[B, 10]`` and the
    weak-perspective camera ``[B, 3]`` (initialized from the point head h(c)); the body
    model's 24 keypoints projected into normalized crop coordinates (focal
    ``head.focal_length`` at ``head.img_res``); E_β = ‖β‖².
    """

    head: ProHMRHead

    def __init__(self, head: nn.Module) -> None:
        from condflow.heads.prohmr import KEYPOINT_SOURCES, ProHMRHead

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
        from condflow.body.camera import project_to_crop

        return project_to_crop(kp3d, cam, self.head.focal_length, self.head.img_res)

    def project(self, theta: Tensor, extras: dict[str, Tensor]) -> Tensor:
        kp3d = self.body(theta, extras["betas"])[3]
        return self.project_keypoints(kp3d, extras["cam"])

    def extra_energy(self, extras: dict[str, Tensor]) -> Tensor:
        return extras["betas"].pow(2).sum(-1)

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


def make_adapter(head: nn.Module | HeadAdapter, **kwargs: object) -> HeadAdapter:
    """The adapter of a head (an adapter is returned as it is); ``kwargs`` go to the
    adapter's constructor (e.g. ``focal`` for a skeleton head)."""
    if isinstance(head, HeadAdapter):
        return head
    if isinstance(head, SkeletonHead):
        return SkeletonAdapter(head, **kwargs)  # type: ignore[arg-type]
    if type(head).__name__ == "ProHMRHead":
        return SMPLAdapter(head, **kwargs)
    raise ValueError(
        f"head: expected a SkeletonHead or a ProHMRHead (or a HeadAdapter), "
        f"got {type(head).__name__}"
    )
