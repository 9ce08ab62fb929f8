import contextlib
import io
import pickle
from collections import Counter

import numpy as np
import pytest
import smplx
import torch

from condflow.body.synthetic import (
    SHAPE_NAMES,
    SMPL_LANDMARK_IDS,
    SMPL_NUM_VERTICES,
    _h36m_targets,
    build_synthetic_smpl,
    generate_synthetic_smpl,
    main,
    synthetic_joint_table,
    synthetic_model_dir,
)
from condflow.joints import H36M_REGRESSOR_FILENAME, SMPL_MODEL_FILENAME, SMPL_PARENTS


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("synthetic")
    generate_synthetic_smpl(out)
    return out


@pytest.fixture(scope="module")
def data(model_dir):
    with open(model_dir / SMPL_MODEL_FILENAME, "rb") as f:
        return pickle.load(f, encoding="latin1")


@pytest.fixture(scope="module")
def smpl(model_dir, data):
    """smplx's own SMPL class reading the generated file (no condflow code involved)."""
    with contextlib.redirect_stdout(io.StringIO()):
        return smplx.SMPL(model_path=str(model_dir), vertex_ids=data["vertex_ids"])


def _joints(smpl, betas=None, body_pose=None):
    betas = torch.zeros(1, 10) if betas is None else betas
    body_pose = torch.zeros(1, 69) if body_pose is None else body_pose
    out = smpl(betas=betas, body_pose=body_pose, global_orient=torch.zeros(1, 3))
    return out.vertices[0].detach().double(), out.joints[0].detach().double()


def test_smplx_loads_and_tpose_joints_sit_where_placed(smpl):
    vertices, joints = _joints(smpl)
    assert joints.shape == (24 + 21, 3)  # 24 kinematic joints + face, feet, finger landmarks
    table = torch.as_tensor(synthetic_joint_table())
    assert torch.allclose(joints[:24], table, atol=1e-5)


def test_plain_smplx_create_with_default_arguments(model_dir):
    """smplx.create(..., model_type="smpl") with smplx's own SMPL vertex ids for the extra
    joints: the landmarks are where a body has them."""
    # the file's own ids (which BodyModel and the ProHMR keypoints use) are smplx's defaults
    assert SMPL_LANDMARK_IDS == smplx.vertex_ids.vertex_ids["smplh"]
    with open(model_dir / SMPL_MODEL_FILENAME, "rb") as f:
        assert pickle.load(f)["vertex_ids"] == SMPL_LANDMARK_IDS
    with contextlib.redirect_stdout(io.StringIO()):
        model = smplx.create(str(model_dir / SMPL_MODEL_FILENAME), model_type="smpl")
    gen = torch.Generator().manual_seed(0)
    out = model(
        betas=0.5 * torch.randn(1, 10, generator=gen),
        body_pose=0.2 * torch.randn(1, 69, generator=gen),
        global_orient=torch.zeros(1, 3),
    )
    assert out.vertices.shape == (1, SMPL_NUM_VERTICES, 3) and out.joints.shape == (1, 45, 3)
    assert torch.isfinite(out.vertices).all() and torch.isfinite(out.joints).all()
    with torch.no_grad():
        t = model(betas=torch.zeros(1, 10)).joints[0]  # T-pose
    names = ["nose", "reye", "leye", "rear", "lear", "LBigToe", "LSmallToe", "LHeel",
             "RBigToe", "RSmallToe", "RHeel"]
    names += [side + tip for side in "lr" for tip in ("thumb", "index", "middle", "ring", "pinky")]
    lm = dict(zip(names, t[24:], strict=True))
    head, neck = t[15], t[12]
    assert lm["nose"][2] > head[2] + 0.08 and abs(lm["nose"][0]) < 0.01  # face front, midline
    for side, sign in (("l", 1), ("r", -1)):
        eye, ear = lm[side + "eye"], lm[side + "ear"]
        assert eye[2] > head[2] + 0.05 and sign * eye[0] > 0.02 and eye[1] > head[1]
        assert sign * ear[0] > 0.07 and abs(ear[1] - head[1]) < 0.1 and ear[2] < eye[2] - 0.05
        for tip in ("thumb", "index", "middle", "ring", "pinky"):  # beyond the wrist
            wrist = t[20 if sign > 0 else 21]
            assert sign * (lm[side + tip][0] - wrist[0]) > 0.05, side + tip
        foot = side.upper()
        ankle = t[7 if sign > 0 else 8]
        assert lm[foot + "BigToe"][2] > ankle[2] + 0.15  # toes in front of the ankle
        assert lm[foot + "SmallToe"][2] > ankle[2] + 0.15
        assert sign * (lm[foot + "SmallToe"][0] - lm[foot + "BigToe"][0]) > 0.02  # outside
        assert lm[foot + "Heel"][2] < ankle[2] - 0.03  # heel behind it
        for name in ("BigToe", "SmallToe", "Heel"):
            assert lm[foot + name][1] < ankle[1]  # on the sole
    assert lm["nose"][1] > neck[1]


def test_padding_vertices_copy_the_surface_and_are_unused(data, model_dir):
    v, f = data["v_template"], data["f"]
    used = np.zeros(len(v), dtype=bool)
    used[f.reshape(-1)] = True
    assert 4000 < used.sum() < len(v)  # the tube mesh, renumbered, plus unused copies
    regressors = [data["J_regressor"].toarray(), np.load(model_dir / H36M_REGRESSOR_FILENAME)]
    for reg in regressors:
        assert (reg[:, ~used] == 0).all()
    assert set(data["vertex_ids"].values()) <= set(np.flatnonzero(used))
    for i in np.flatnonzero(~used)[::97]:  # each copy equals a used vertex, blend shapes too
        twin = np.flatnonzero(used & (np.abs(v - v[i]).sum(1) == 0))
        assert len(twin) == 1
        assert np.array_equal(data["weights"][i], data["weights"][twin[0]])
        assert np.array_equal(data["shapedirs"][i], data["shapedirs"][twin[0]])


def test_joint_table_is_symmetric_and_humanoid():
    t = synthetic_joint_table()
    assert t[1, 0] > 0 > t[2, 0]  # left hip on +x
    assert np.allclose(t[1::3][:3] * [-1, 1, 1], t[2::3][:3])  # mirrored hips, knees, ankles
    assert t[15, 1] > t[12, 1] > t[9, 1] > t[0, 1] > t[4, 1] > t[7, 1]  # head above ... ankle
    assert t[20, 0] > t[18, 0] > t[16, 0] > t[13, 0] > 0  # left arm extends along +x


def test_file_layout_matches_smpl(data):
    v = data["v_template"]
    n = len(v)
    assert n == SMPL_NUM_VERTICES
    assert data["f"].shape[1] == 3 and data["f"].min() == 0 and data["f"].max() < n
    assert data["kintree_table"].shape == (2, 24)
    assert data["kintree_table"][0, 0] == 4294967295
    assert tuple(data["kintree_table"][0, 1:]) == SMPL_PARENTS[1:]
    assert data["weights"].shape == (n, 24)
    assert data["shapedirs"].shape == (n, 3, 10)
    assert data["posedirs"].shape == (n, 3, 207)
    assert data["J_regressor"].shape == (24, n)
    assert len(SHAPE_NAMES) == 10


def test_mesh_is_closed_outward_and_human_sized(data):
    v, f = data["v_template"], data["f"]
    edges = Counter()
    for a, b in ((0, 1), (1, 2), (2, 0)):
        for e in np.sort(f[:, [a, b]], axis=1):
            edges[tuple(e)] += 1
    assert set(edges.values()) == {2}  # every edge borders exactly two triangles
    a, b, c = v[f[:, 0]], v[f[:, 1]], v[f[:, 2]]
    assert np.sum(np.einsum("ij,ij->i", a, np.cross(b, c))) / 6 > 0.03  # outward, ~litres
    height = v[:, 1].max() - v[:, 1].min()
    assert 1.6 < height < 1.85
    ids = data["vertex_ids"]
    assert v[ids["nose"], 2] > 0.1  # the face looks along +z
    assert v[ids["leye"], 0] > 0 > v[ids["reye"], 0]
    assert v[ids["lmiddle"], 0] > 0.8 and v[ids["rmiddle"], 0] < -0.8  # finger tips
    assert v[ids["LBigToe"], 2] > v[ids["LHeel"], 2] + 0.2


def test_skinning_weights_are_convex_and_blend_at_joints(data):
    w = data["weights"]
    assert (w >= 0).all() and np.allclose(w.sum(1), 1.0)
    assert ((w > 0).sum(1) <= 2).all()
    blended = (w > 0.05) & (w < 0.95)
    # every joint with a child shares vertices smoothly with a neighbour
    for j in range(24):
        if j in SMPL_PARENTS or j in (15,):
            assert blended[:, j].sum() > 10, j
    # blending only between parent and child bones
    for row in w[blended.any(1)]:
        a, b = np.flatnonzero(row > 0)
        assert SMPL_PARENTS[a] == b or SMPL_PARENTS[b] == a


@pytest.mark.parametrize("key, rows", [("J_regressor", 24), ("h36m", 17)])
def test_regressors_are_local_convex_combinations(data, model_dir, key, rows):
    v = data["v_template"]
    if key == "h36m":
        reg = np.load(model_dir / H36M_REGRESSOR_FILENAME)
        targets = _h36m_targets(synthetic_joint_table())
    else:
        reg = data["J_regressor"].toarray()
        targets = synthetic_joint_table()
    assert reg.shape == (rows, len(v))
    assert (reg >= 0).all() and np.allclose(reg.sum(1), 1.0)
    assert np.allclose(reg @ v, targets, atol=1e-6)
    for j in range(rows):
        used = np.flatnonzero(reg[j] > 0)
        assert len(used) >= 10
        assert np.linalg.norm(v[used] - targets[j], axis=1).max() < 0.2


def test_h36m_targets_follow_videopose3d_order():
    t = _h36m_targets(synthetic_joint_table())
    assert t[1, 0] < 0 < t[4, 0]  # right hip on -x, left hip on +x
    assert t[10, 1] > t[9, 1] > t[8, 1] > t[7, 1] > t[0, 1] > t[2, 1] > t[3, 1]
    assert t[13, 0] > t[12, 0] > t[11, 0] > 0 > t[14, 0] > t[15, 0] > t[16, 0]


def _bone_lengths(joints):
    parents = torch.tensor(SMPL_PARENTS[1:])
    return (joints[1:24] - joints[parents]).norm(dim=-1)


@pytest.mark.parametrize("k", range(10))
def test_each_shape_coefficient_changes_bone_lengths(smpl, k):
    _, j0 = _joints(smpl)
    betas = torch.zeros(1, 10)
    betas[0, k] = 2.0
    vertices, j1 = _joints(smpl, betas)
    assert torch.isfinite(vertices).all()
    change = (_bone_lengths(j1) - _bone_lengths(j0)).abs().max()
    assert change > 0.005, SHAPE_NAMES[k]


def test_first_shape_coefficient_is_height(smpl):
    heights = []
    for b in (-2.0, 0.0, 2.0):
        betas = torch.zeros(1, 10)
        betas[0, 0] = b
        v, _ = _joints(smpl, betas)
        heights.append(float(v[:, 1].max() - v[:, 1].min()))
    assert heights[0] + 0.1 < heights[1] < heights[2] - 0.1


def test_generation_is_deterministic():
    a, ha = build_synthetic_smpl(seed=3)
    b, hb = build_synthetic_smpl(seed=3)
    c, _ = build_synthetic_smpl(seed=4)
    for key in ("v_template", "f", "weights", "shapedirs", "J"):
        assert np.array_equal(a[key], b[key])
    assert np.array_equal(a["J_regressor"].toarray(), b["J_regressor"].toarray())
    assert np.array_equal(ha, hb)
    assert not np.array_equal(a["v_template"], c["v_template"])  # the seed jitters the surface
    assert np.allclose(a["J"], c["J"], atol=1e-9)  # but joints stay where they are placed


def test_cache_dir_generates_once(tmp_path, monkeypatch):
    monkeypatch.setenv("CONDFLOW_CACHE_DIR", str(tmp_path))
    out = synthetic_model_dir()
    assert out == tmp_path / "body" / "synthetic-v2"
    model = out / SMPL_MODEL_FILENAME
    assert model.is_file() and (out / H36M_REGRESSOR_FILENAME).is_file()
    stamp = model.stat().st_mtime_ns
    assert synthetic_model_dir() == out
    assert model.stat().st_mtime_ns == stamp
    assert sorted(p.name for p in out.iterdir()) == sorted([SMPL_MODEL_FILENAME,
                                                            H36M_REGRESSOR_FILENAME])


def test_script_entry_writes_files(tmp_path, capsys):
    assert main([str(tmp_path / "out"), "--seed", "1"]) == 0
    assert (tmp_path / "out" / SMPL_MODEL_FILENAME).is_file()
    assert "wrote" in capsys.readouterr().out
