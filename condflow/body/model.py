"""The SMPL body model: a thin layer over ``smplx.SMPLLayer`` taking rotation matrices.

Which model file is used: ``model_path`` if given, else ``$CONDFLOW_SMPL_PATH`` if set, else
condflow's synthetic SMPL-format model (generated into the cache on first use). Official SMPL
files work as they are (chumpy objects are read without chumpy); their evaluation regressor
``J_regressor_h36m.npy`` is looked up next to the model file.
"""

from __future__ import annotations

import contextlib
import io
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import smplx
import torch
from smplx.lbs import batch_rodrigues
from smplx.utils import Struct
from torch import Tensor, nn

from condflow._checks import check_tensor
from condflow._recipe import Recorded
from condflow.body.convert import load_smpl_dict
from condflow.body.synthetic import synthetic_model_dir
from condflow.joints import H36M_JOINT_NAMES, H36M_REGRESSOR_FILENAME, SMPL_MODEL_FILENAME

SMPL_PATH_ENV = "CONDFLOW_SMPL_PATH"
__all__ = ["BodyModel", "BodyOutput", "resolve_model_file"]


@dataclass
class BodyOutput:
    """Posed body: ``vertices [B, V, 3]``, ``joints [B, 24, 3]`` (SMPL's kinematic joints),
    ``eval_joints [B, 17, 3]`` (Human3.6M joints regressed from the vertices, ``None`` if not
    computed). All in metres."""

    vertices: Tensor
    joints: Tensor
    eval_joints: Tensor | None


def resolve_model_file(model_path: str | Path | None = None, gender: str = "neutral") -> Path:
    """The SMPL model file to load.

    ``model_path`` may be a file or a folder holding ``SMPL_{GENDER}.pkl``; ``None`` means
    ``$CONDFLOW_SMPL_PATH`` if set, else the synthetic model (neutral only).
    """
    if gender not in ("neutral", "male", "female"):
        raise ValueError(f"gender: expected 'neutral', 'male' or 'female', got {gender!r}")
    source = "model_path"
    if model_path is None and os.environ.get(SMPL_PATH_ENV):
        model_path, source = os.environ[SMPL_PATH_ENV], f"${SMPL_PATH_ENV}"
    if model_path is None:
        if gender != "neutral":
            raise ValueError(
                f"gender: the synthetic body model is neutral only, got {gender!r}; set "
                f"${SMPL_PATH_ENV} or model_path to a SMPL model for gendered bodies"
            )
        return synthetic_model_dir() / SMPL_MODEL_FILENAME
    path = Path(model_path).expanduser()
    if path.is_dir():
        path = path / f"SMPL_{gender.upper()}.pkl"
    if not path.is_file():
        raise FileNotFoundError(
            f"SMPL model file not found: {path} (from {source}). Point model_path or "
            f"${SMPL_PATH_ENV} at a SMPL_{gender.upper()}.pkl (or the folder holding it), or "
            f"leave both unset to use condflow's synthetic body model"
        )
    return path


class BodyModel(Recorded, nn.Module):
    """SMPL posed from rotation matrices, with SMPL's 24 joints and 17 evaluation joints.

    Args:
        model_path: SMPL ``.pkl`` file or folder; ``None`` uses ``$CONDFLOW_SMPL_PATH`` or the
            synthetic model.
        gender: ``"neutral"``, ``"male"`` or ``"female"`` (selects the file in a folder).
        eval_regressor_path: ``[17, V]`` ``.npy`` regressor for the Human3.6M joints; default
            ``J_regressor_h36m.npy`` next to the model file, if present.
        dtype: floating dtype of the model's buffers (inputs must match it).
    """

    num_joints = 24
    eval_regressor: Tensor | None  # [17, V], or None without a regressor file
    _eval_vertex_ids: Tensor | None  # the vertices the regressor uses

    def __init__(
        self,
        model_path: str | Path | None = None,
        gender: str = "neutral",
        *,
        eval_regressor_path: str | Path | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        super().__init__()
        if dtype not in (torch.float32, torch.float64):
            raise ValueError(f"dtype: expected torch.float32 or torch.float64, got {dtype}")
        self.model_file = resolve_model_file(model_path, gender)
        data = load_smpl_dict(self.model_file)
        self.is_synthetic = str(data.get("generator", "")).startswith("condflow.body.synthetic")
        # The synthetic mesh has its own landmark vertices; real SMPL uses smplx's defaults.
        self.vertex_ids: dict[str, int] | None = data.get("vertex_ids")
        with contextlib.redirect_stdout(io.StringIO()):  # smplx prints a note on 10 betas
            self.smpl = smplx.SMPLLayer(
                model_path=str(self.model_file),
                data_struct=Struct(**data),
                gender=gender,
                num_betas=10,
                vertex_ids=self.vertex_ids,
                dtype=dtype,
            )
        self.num_betas: int = self.smpl.num_betas
        # Model arrays come from the model file (licensed data for real SMPL): they move with
        # .to() but stay out of state_dict, so checkpoints never carry them.
        for module in self.smpl.modules():
            for name, buffer in list(module.named_buffers(recurse=False)):
                module.register_buffer(name, buffer, persistent=False)

        if eval_regressor_path is None:
            default = self.model_file.parent / H36M_REGRESSOR_FILENAME
            eval_regressor_path = default if default.is_file() else None
        self.eval_regressor_path = eval_regressor_path
        eval_regressor = None
        if eval_regressor_path is not None:
            if not Path(eval_regressor_path).is_file():
                raise FileNotFoundError(f"evaluation regressor not found: {eval_regressor_path}")
            array = np.load(eval_regressor_path)
            if array.shape != (len(H36M_JOINT_NAMES), self.num_vertices):
                raise ValueError(
                    f"eval_regressor_path: expected an array of shape "
                    f"[{len(H36M_JOINT_NAMES)}, {self.num_vertices}], got {list(array.shape)}"
                )
            eval_regressor = torch.as_tensor(array, dtype=dtype)
        self.register_buffer("eval_regressor", eval_regressor, persistent=False)
        # The regressor is sparse: keep the vertices it uses to skip the others.
        used = None if eval_regressor is None else eval_regressor.abs().sum(0).nonzero()[:, 0]
        self.register_buffer("_eval_vertex_ids", used, persistent=False)

    @property
    def faces(self) -> Tensor:
        """Triangle vertex indices, LongTensor ``[F, 3]``."""
        return self.smpl.faces_tensor

    @property
    def num_vertices(self) -> int:
        """Number of mesh vertices ``V``."""
        return int(self.smpl.v_template.shape[0])

    @property
    def parents(self) -> Tensor:
        """Parent joint of each of the 24 joints, LongTensor ``[24]`` (``-1`` for the root)."""
        return self.smpl.parents

    @property
    def dtype(self) -> torch.dtype:
        """Floating dtype of the model's buffers."""
        return self.smpl.v_template.dtype

    def regress_eval_joints(self, vertices: Tensor) -> Tensor:
        """Human3.6M joints ``[B, 17, 3]`` from vertices ``[B, V, 3]``."""
        self._require_eval_regressor()
        check_tensor("vertices", vertices, ("B", self.num_vertices, 3))
        return self._eval_joints(vertices)

    def _require_eval_regressor(self) -> tuple[Tensor, Tensor]:
        """The evaluation regressor ``[17, V]`` and the vertex ids it uses."""
        if self.eval_regressor is None or self._eval_vertex_ids is None:
            raise FileNotFoundError(
                f"no evaluation regressor for {self.model_file}: put {H36M_REGRESSOR_FILENAME} "
                "([17, V]) next to the model file or pass eval_regressor_path"
            )
        return self.eval_regressor, self._eval_vertex_ids

    def _eval_joints(self, vertices: Tensor) -> Tensor:
        regressor, ids = self._require_eval_regressor()
        return torch.einsum("jk,bkc->bjc", regressor[:, ids], vertices[:, ids])

    def forward(
        self,
        global_orient: Tensor,
        body_pose: Tensor,
        betas: Tensor,
        transl: Tensor | None = None,
        *,
        eval_joints: bool | None = None,
    ) -> BodyOutput:
        """Pose the body.

        Args:
            global_orient: root rotation ``[B, 3, 3]`` or ``[B, 1, 3, 3]``.
            body_pose: rotations of the 23 other joints relative to their parents
                ``[B, 23, 3, 3]``.
            betas: shape coefficients ``[B, 10]``.
            transl: translation ``[B, 3]`` in metres, or ``None``.
            eval_joints: compute the 17 evaluation joints: ``None`` when a regressor is
                available, ``True`` always (error without regressor), ``False`` never.
        """
        check_tensor("body_pose", body_pose, ("B", 23, 3, 3))
        batch = body_pose.shape[0]
        if global_orient.dim() == 3:
            check_tensor("global_orient", global_orient, (batch, 3, 3))
            global_orient = global_orient.unsqueeze(1)
        else:
            check_tensor("global_orient", global_orient, (batch, 1, 3, 3))
        check_tensor("betas", betas, (batch, self.num_betas))
        inputs = {"global_orient": global_orient, "body_pose": body_pose, "betas": betas}
        if transl is not None:
            inputs["transl"] = check_tensor("transl", transl, (batch, 3))
        for name, x in inputs.items():
            if x.dtype != self.dtype:
                raise ValueError(
                    f"{name}: expected dtype {self.dtype} (the model's dtype), got {x.dtype}"
                )
        out = self.smpl(
            betas=betas,
            body_pose=body_pose,
            global_orient=global_orient,
            transl=transl,
            pose2rot=False,
        )
        vertices = out.vertices
        want_eval = self.eval_regressor is not None if eval_joints is None else eval_joints
        if want_eval:
            self._require_eval_regressor()
        return BodyOutput(
            vertices=vertices,
            joints=out.joints[:, : self.num_joints],
            eval_joints=self._eval_joints(vertices) if want_eval else None,
        )

    def forward_axis_angle(
        self,
        global_orient: Tensor,
        body_pose: Tensor,
        betas: Tensor,
        transl: Tensor | None = None,
        *,
        eval_joints: bool | None = None,
    ) -> BodyOutput:
        """Pose the body from axis-angle vectors: ``global_orient [B, 3]``,
        ``body_pose [B, 23, 3]``, ``betas [B, 10]``, ``transl [B, 3]`` or ``None``."""
        check_tensor("global_orient", global_orient, ("B", 3))
        batch = global_orient.shape[0]
        check_tensor("body_pose", body_pose, (batch, 23, 3))
        rot_orient = batch_rodrigues(global_orient).view(batch, 1, 3, 3)
        rot_pose = batch_rodrigues(body_pose.reshape(-1, 3)).view(batch, 23, 3, 3)
        return self(rot_orient, rot_pose, betas, transl, eval_joints=eval_joints)
