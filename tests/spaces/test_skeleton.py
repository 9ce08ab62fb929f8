import pytest
import torch

from condflow.spaces.skeleton import (
    H36M_16,
    H36M_17,
    H36M_17_TO_16,
    H36M_TO_J14,
    LSP_14,
    SkeletonLayout,
    SkeletonSpace,
    flip_joints,
)


def _joints(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, 3, generator=torch.Generator().manual_seed(seed))


def test_h36m_17_layout():
    names = H36M_17.joint_names
    assert H36M_17.num_joints == 17
    assert names[0] == "Hip" and names[9] == "Nose" and names[16] == "RWrist"
    parent = {names[j]: names[p] for j, p in enumerate(H36M_17.parents) if p >= 0}
    assert parent["RKnee"] == "RHip" and parent["LElbow"] == "LShoulder"
    assert parent["Head"] == "Nose" and parent["RShoulder"] == "Thorax"
    for j, k in enumerate(H36M_17.flip_perm):
        swapped = names[j].replace("L", "#").replace("R", "L").replace("#", "R")
        assert names[k] == swapped


def test_h36m_16_drops_the_nose_and_reattaches_the_head():
    assert H36M_16.num_joints == 16 and "Nose" not in H36M_16.joint_names
    assert H36M_16.joint_names == tuple(H36M_17.joint_names[i] for i in H36M_17_TO_16)
    head = H36M_16.joint_names.index("Head")
    assert H36M_16.joint_names[H36M_16.parents[head]] == "Thorax"
    for j, k in enumerate(H36M_16.flip_perm):
        assert H36M_17.flip_perm[H36M_17_TO_16[j]] == H36M_17_TO_16[k]


def test_lsp_14_subset_and_flip_match_the_17_joint_skeleton():
    j17 = _joints(4, 17)
    j14 = j17[:, list(H36M_TO_J14)]
    flipped17 = flip_joints(j17, H36M_17)
    torch.testing.assert_close(flip_joints(j14, LSP_14), flipped17[:, list(H36M_TO_J14)])
    space = SkeletonSpace(LSP_14)
    mid_hip = (j17[:, 1] + j17[:, 4]) / 2
    torch.testing.assert_close(space.root_relative(j14), j14 - mid_hip[:, None])


def test_flip_is_an_involution_that_mirrors_x():
    j = _joints(3, 17, seed=1)
    f = flip_joints(j, H36M_17)
    torch.testing.assert_close(flip_joints(f, H36M_17), j)
    torch.testing.assert_close(f[:, 1, 0], -j[:, 4, 0])  # RHip <- mirrored LHip
    torch.testing.assert_close(f[:, 9], j[:, 9] * torch.tensor([-1.0, 1.0, 1.0]))


@pytest.mark.parametrize("layout", [H36M_17, H36M_16, LSP_14])
def test_space_round_trip(layout):
    space = SkeletonSpace(layout)
    j = _joints(2, 5, layout.num_joints, seed=2)
    x = space.from_joints(j)
    assert x.shape == (2, 5, 3 * layout.num_joints) and space.dim == 3 * layout.num_joints
    rel = space.to_joints(x)
    torch.testing.assert_close(rel, space.root_relative(j))
    root = rel[..., list(layout.root), :].mean(-2)
    torch.testing.assert_close(root, torch.zeros_like(root))
    torch.testing.assert_close(space.from_joints(j, root_relative=False).reshape(j.shape), j)


def test_drop_root_removes_the_zero_joint():
    space = SkeletonSpace(H36M_17, drop_root=True)
    assert space.dim == 48
    j = _joints(6, 17, seed=3)
    x = space.from_joints(j)
    assert x.shape == (6, 48)
    torch.testing.assert_close(space.to_joints(x), j - j[:, :1])
    with pytest.raises(ValueError, match="root_relative"):
        space.from_joints(j, root_relative=False)
    with pytest.raises(ValueError, match="drop_root"):
        SkeletonSpace(LSP_14, drop_root=True)


def test_bad_inputs_raise():
    space = SkeletonSpace(H36M_16)
    with pytest.raises(ValueError, match="joints: expected shape"):
        space.from_joints(_joints(2, 17))
    with pytest.raises(ValueError, match="x: expected shape"):
        space.to_joints(torch.zeros(2, 51))
    bad = _joints(2, 16)
    bad[0, 3, 1] = float("nan")
    with pytest.raises(ValueError, match="joints: contains NaN"):
        space.from_joints(bad)
    with pytest.raises(ValueError, match="flip_perm"):
        SkeletonLayout("bad", ("a", "b"), (-1, 0), (1, 1))
    with pytest.raises(ValueError, match="parents"):
        SkeletonLayout("bad", ("a", "b"), (-1, 5), (0, 1))
    with pytest.raises(ValueError, match="not closed under flipping"):
        H36M_17.subset([0, 1, 2], name="right_leg")
    with pytest.raises(ValueError, match="root"):
        H36M_17.subset([1, 4], name="hips")
