"""Both prediction pictures for both kinds of input: 2D keypoints → skeleton, image → skeleton,
image → mesh and 2D keypoints → mesh. One input panel draws either kind (the bones of the
Human3.6M-16 and SPIN-24 layouts, points only for an unknown count); the mesh seen from the
keypoints' camera lines up with its projected keypoints; a bad input kind is refused by name."""

import matplotlib.image as mpimg
import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from matplotlib.colors import to_rgba

from condflow.bijectors import CouplingNet
from condflow.body.camera import project_to_crop
from condflow.body.model import BodyModel
from condflow.body.poses import PoseGenerator
from condflow.data.image_datasets import IMAGENET_MEAN, IMAGENET_STD
from condflow.encoders.mlp_lifter import MLPLifter
from condflow.encoders.small_cnn import SmallCNN
from condflow.heads import ProHMRHead, SkeletonHead
from condflow.joints import SPIN_KEYPOINT_NAMES
from condflow.spaces.rotations import axis_angle_to_matrix
from condflow.spaces.skeleton import H36M_16, H36M_17, SkeletonSpace
from condflow.viz import agg_figure
from condflow.viz.inputs import (
    LEFT_COLOR,
    RIGHT_COLOR,
    SPIN_24,
    bone_colors,
    denormalize_image,
    draw_input,
    keypoint_layout,
)
from condflow.viz.mesh import (
    mesh_predictions_figure,
    plot_mesh_predictions,
    render_overlay,
    render_window,
)
from condflow.viz.skeleton import lifting_model_figure, plot_lifting

NET = CouplingNet(hidden_features=16, num_residual_blocks=1)
SPACE = SkeletonSpace(H36M_17, drop_root=True)
K = 2  # rows
RES, FOCAL = 1000, 1000.0  # the keypoints' camera: 1000 px focal length in a 1000 px image


def skeleton_head(encoder: torch.nn.Module) -> SkeletonHead:
    torch.manual_seed(0)
    return SkeletonHead(encoder, SPACE, num_blocks=2, coupling_net=NET,
                        mean=100 * torch.randn(SPACE.dim), std=50 + 50 * torch.rand(SPACE.dim))


def keypoints_to_mesh_head(body: BodyModel) -> ProHMRHead:
    torch.manual_seed(0)
    return ProHMRHead(MLPLifter(24, 3, hidden=32, num_residual_blocks=1), body, num_blocks=2,
                      coupling_net=NET, point_hidden=16, img_res=RES, focal_length=FOCAL).eval()


def image_to_mesh_head(body: BodyModel) -> ProHMRHead:
    torch.manual_seed(0)
    return ProHMRHead(SmallCNN(3, 16, width=4), body, num_blocks=2, coupling_net=NET,
                      point_hidden=16, img_res=32).eval()


def random_keypoints(j: int, seed: int = 0) -> torch.Tensor:
    kp = torch.rand(K, j, 3, generator=torch.Generator().manual_seed(seed)) * 1.2 - 0.6
    kp[..., 2] = 1.0
    return kp


def images(res: int = 32) -> torch.Tensor:
    return torch.randn(K, 3, res, res, generator=torch.Generator().manual_seed(0))


def camera_frame_bodies(head: ProHMRHead) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Rotations ``[K, 24, 3, 3]`` and shapes ``[K, 10]`` of upright bodies in the camera
    frame (y down), and their 24 keypoints ``[K, 24, 3]`` seen by the head's camera."""
    poses = PoseGenerator(0).sample(K)
    rotmat = axis_angle_to_matrix(torch.cat([poses.global_orient[:, None], poses.body_pose], 1))
    rotmat[:, 0] = torch.diag(torch.tensor([1.0, -1.0, -1.0])) @ rotmat[:, 0]  # y up → down
    _, _, kp3d = head.keypoints(rotmat, poses.betas)
    cam = torch.tensor([[0.9, 0.0, 0.1]] * K)
    kp = project_to_crop(kp3d, cam, head.focal_length, head.img_res)
    return rotmat, poses.betas, torch.cat([kp, torch.ones(K, 24, 1)], -1)


def png_shape(path) -> tuple[int, int]:
    picture = mpimg.imread(path)
    assert picture[..., :3].std() > 0.05  # something is drawn
    return picture.shape[:2]


# -- the four combinations ----------------------------------------------------------------------
def test_skeleton_pictures_for_keypoint_and_image_inputs(tmp_path):
    gt = 200 * torch.randn(K, 17, 3, generator=torch.Generator().manual_seed(1))
    shapes = {}
    for name, head, inputs, kind in (
            ("keypoints", skeleton_head(MLPLifter(16, 3, hidden=32, num_residual_blocks=1)),
             random_keypoints(16), None),  # the head's own input kind
            ("images", skeleton_head(SmallCNN(3, 16, width=4)), images(), "images")):
        path = tmp_path / f"{name}.png"
        plot_lifting(head, inputs, gt, str(path), num_samples=4, input_kind=kind)
        shapes[name] = png_shape(path)
    # 2 rows of input, 3D, camera and side views and a colour bar: 14.36 x 6.6 in at 90 dpi.
    assert shapes["keypoints"] == shapes["images"] == (594, 1292)


def test_image_to_skeleton_shows_the_crop_as_the_first_panel():
    head = skeleton_head(SmallCNN(3, 16, width=4))
    x = images()
    fig = lifting_model_figure(head, x, num_samples=3, input_kind="images")
    first = fig.axes[0]
    assert first.get_title() == "input crop" and not first.axison
    assert np.allclose(first.get_images()[0].get_array(), denormalize_image(x[0]))
    plt.close(fig)
    # The head reads its input kind off its encoder: no override needed.
    assert head.input_kind == "images"
    fig = lifting_model_figure(head, x, num_samples=3)
    assert np.allclose(fig.axes[0].get_images()[0].get_array(), denormalize_image(x[0]))
    plt.close(fig)
    with pytest.raises(ValueError, match=r"inputs: expected 2D keypoints \[K, J, 3\]"):
        lifting_model_figure(head, x, input_kind="keypoints_2d")


def test_mesh_pictures_for_image_and_keypoint_inputs(tmp_path, body):
    shapes = {}
    image_head = image_to_mesh_head(body)
    plot_mesh_predictions(image_head, images(), str(tmp_path / "images.png"), num_samples=2)
    shapes["images"] = png_shape(tmp_path / "images.png")
    kp_head = keypoints_to_mesh_head(body)
    rotmat, betas, kp = camera_frame_bodies(kp_head)
    plot_mesh_predictions(kp_head, kp, str(tmp_path / "keypoints.png"), num_samples=2,
                          gt_rotmat=rotmat, gt_betas=betas, input_kind="keypoints_2d")
    shapes["keypoints"] = png_shape(tmp_path / "keypoints.png")
    # input, mode, 2 samples, side view(s); 2.2 in a panel at 90 dpi, 2.3 in a row.
    assert shapes["images"] == (414, 5 * 198)
    assert shapes["keypoints"] == (414, 6 * 198)


def test_keypoints_to_mesh_draws_the_input_and_the_projected_keypoints(body):
    head = keypoints_to_mesh_head(body)
    _, _, kp = camera_frame_bodies(head)
    kp[0, 5, 2] = 0.0  # hidden: no dot, no residual, no bone
    fig = mesh_predictions_figure(head, kp, num_samples=1, input_kind="keypoints_2d")
    axes = np.array(fig.axes).reshape(K, 4)
    assert [ax.get_title() for ax in axes[0]] == [
        "2D input (hidden joints left out)", "mode f(0; c)", "sample 1", "mode, side view"]
    seen = kp[0, :, 2] > 0
    with torch.no_grad():
        c = head.context(kp)
        mode = head.mode(c)
        sample = head.sample(1, c, generator=torch.Generator().manual_seed(0))
    for ax, pred in ((axes[0, 1], mode), (axes[0, 2], sample)):
        projected, observed = (np.asarray(p.get_offsets()) for p in ax.collections)
        assert np.allclose(projected, pred.keypoints_2d[0, 0, seen].double(), atol=1e-6)
        assert np.allclose(observed, kp[0, seen, :2].double())
        assert len(ax.get_lines()) == int(seen.sum())  # one residual per seen keypoint
        assert ax.get_aspect() == 1.0 and ax.yaxis_inverted()
    assert len(axes[0, 0].get_lines()) == len(bone_colors(SPIN_24)) - 1  # the ankle: a leaf
    plt.close(fig)


# -- the camera of the keypoint panels ----------------------------------------------------------
def test_full_window_is_the_overlay_on_a_white_crop(body):
    head = keypoints_to_mesh_head(body)
    rotmat, betas, _ = camera_frame_bodies(head)
    verts = body(rotmat[:1, :1], rotmat[:1, 1:], betas[:1], eval_joints=False).vertices[0]
    faces, cam = body.faces, torch.tensor([0.9, 0.0, 0.1])
    res, upscale = 40, 4
    window = render_window(verts, faces, cam, 50.0, res, (0.0, 0.0, 1.0), res * upscale,
                           outline=None)
    crop = render_overlay(np.ones((res, res, 3)), verts, faces, cam, 50.0, upscale,
                          outline=None)
    assert np.allclose(window, crop, atol=1e-6)


def test_zoomed_window_puts_the_mesh_under_its_projected_keypoints(body):
    head = keypoints_to_mesh_head(body)
    rotmat, betas, kp = camera_frame_bodies(head)
    verts = body(rotmat[:1, :1], rotmat[:1, 1:], betas[:1], eval_joints=False).vertices[0]
    cam = torch.tensor([0.9, 0.0, 0.1])
    size = 200
    centre = kp[0, :, :2].mean(0)
    for h in (0.9, 0.4):  # the whole body, then its middle
        cx, cy = float(centre[0]), float(centre[1])
        picture = render_window(verts, body.faces, cam, FOCAL, RES, (cx, cy, h), size)
        covered = (picture < 0.99).any(-1)
        assert 0.02 < covered.mean() < 0.9
        # pelvis, thorax, spine: inside the body, whatever the pose
        for j in (SPIN_KEYPOINT_NAMES.index(n) for n in
                  ("Pelvis (MPII)", "Thorax (MPII)", "Spine (H36M)")):
            u = kp[0, j, :2].double().numpy()
            col, row = np.round((u - [cx - h, cy - h]) * size / (2 * h) - 0.5).astype(int)
            assert covered[row, col], (h, SPIN_KEYPOINT_NAMES[j])


# -- the input panel ---------------------------------------------------------------------------
@pytest.mark.parametrize("layout", [H36M_16, SPIN_24], ids=lambda lay: lay.name)
def test_keypoint_panel_draws_the_bones_of_its_layout(layout):
    j = len(layout.joint_names)
    assert keypoint_layout(j) is layout
    kp = random_keypoints(j)[0]
    fig = agg_figure()
    ax = fig.add_subplot()
    draw_input(ax, kp, "keypoints_2d")
    lines = ax.get_lines()
    assert len(lines) == j - 1  # a tree: one bone per keypoint but the root
    for line, (c, p, color) in zip(lines, bone_colors(layout), strict=True):
        assert np.allclose(np.c_[line.get_xdata(), line.get_ydata()], kp[[p, c], :2].double())
        assert to_rgba(line.get_color()) == to_rgba(color)
    assert {to_rgba(line.get_color()) for line in lines} >= {to_rgba(LEFT_COLOR),
                                                             to_rgba(RIGHT_COLOR)}
    assert len(ax.collections[0].get_offsets()) == j
    assert ax.get_aspect() == 1.0 and ax.yaxis_inverted()  # image y points down


def test_spin_24_is_one_tree_with_sides_by_name():
    reach_root = []
    for j in range(24):
        while SPIN_24.parents[j] >= 0:
            j = SPIN_24.parents[j]
        reach_root.append(j)
    assert set(reach_root) == {SPIN_KEYPOINT_NAMES.index("Pelvis (MPII)")}
    for j, _, color in bone_colors(SPIN_24):
        name = SPIN_KEYPOINT_NAMES[j]
        side = LEFT_COLOR if name.startswith("Left") else RIGHT_COLOR if name.startswith(
            "Right") else None
        if side is not None:
            assert color == side, name
        else:
            assert color not in (LEFT_COLOR, RIGHT_COLOR), name


def test_hidden_keypoints_lose_their_dots_and_bones_and_unknown_counts_draw_points():
    kp = random_keypoints(16)[0]
    kp[H36M_16.joint_names.index("LKnee"), 2] = 0.0  # two bones: hip-knee, knee-foot
    fig = agg_figure()
    ax = fig.add_subplot()
    draw_input(ax, kp, "keypoints_2d")
    assert len(ax.get_lines()) == 15 - 2 and len(ax.collections[0].get_offsets()) == 15
    other = fig.add_subplot()
    draw_input(other, random_keypoints(17)[0], "keypoints_2d")
    assert keypoint_layout(17) is None
    assert not other.get_lines() and len(other.collections[0].get_offsets()) == 17


def test_image_panel_shows_the_denormalized_crop():
    x = images(8)[0]
    fig = agg_figure()
    ax = fig.add_subplot()
    draw_input(ax, x, "images", upscale=2)
    shown = np.asarray(ax.get_images()[0].get_array())
    expected = np.clip(x.numpy().transpose(1, 2, 0) * IMAGENET_STD + IMAGENET_MEAN, 0, 1)
    assert shown.shape == (16, 16, 3) and np.allclose(shown[::2, ::2], expected, atol=1e-6)


# -- bad input ---------------------------------------------------------------------------------
def test_a_bad_input_kind_is_refused_by_name(tmp_path, body):
    head = skeleton_head(MLPLifter(16, 3, hidden=32, num_residual_blocks=1))
    kp = random_keypoints(16)
    match = r"input_kind: expected one of 'keypoints_2d', 'images', got 'depth'"
    with pytest.raises(ValueError, match=match):
        plot_lifting(head, kp, torch.zeros(K, 17, 3), str(tmp_path / "a.png"),
                     input_kind="depth")
    with pytest.raises(ValueError, match=match):
        plot_mesh_predictions(image_to_mesh_head(body), images(), str(tmp_path / "b.png"),
                              input_kind="depth")
    with pytest.raises(ValueError, match=match):
        draw_input(agg_figure().add_subplot(), kp[0], "depth")
    assert not list(tmp_path.iterdir())  # nothing written


def test_inputs_of_the_wrong_shape_are_refused_by_name(body):
    head = image_to_mesh_head(body)
    expected = r"\[K, 3, H, W\] \(input_kind 'images'\), got \[2, 16, 3\]"
    with pytest.raises(ValueError, match=r"inputs: expected ImageNet-normalized crops " + expected):
        mesh_predictions_figure(head, random_keypoints(16))
    with pytest.raises(ValueError, match=r"inputs: expected an ImageNet-normalized crop"):
        draw_input(agg_figure().add_subplot(), torch.zeros(16, 3), "images")
