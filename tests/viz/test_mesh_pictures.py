"""Mesh pictures: the side view's up convention, and the keypoint-fit figure (meshes before and
after over the crop, residuals, markers that stay visible on any body colour)."""

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from matplotlib.colors import to_rgba

from condflow.viz.mesh import FIT_COLOR, MODE_COLOR, MeshFitState, mesh_fit_figure, render_side_view


def box(lo, hi) -> tuple[np.ndarray, np.ndarray]:
    """An axis-aligned box: 8 vertices ``[8, 3]``, 12 triangles ``[12, 3]``."""
    v = np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1])
                  for z in (lo[2], hi[2])], dtype=float)
    quads = [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)]
    f = np.array([t for a, b, c, d in quads for t in ((a, b, c), (a, c, d))])
    return v, f


def t_shape_y_up() -> tuple[np.ndarray, np.ndarray]:
    """A "T" standing y-up (like SMPL's rest pose): a thin stem and a wide bar at the top."""
    stem_v, stem_f = box((-0.05, 0.0, -0.05), (0.05, 1.4, 0.05))
    bar_v, bar_f = box((-0.8, 1.4, -0.05), (0.8, 1.6, 0.05))
    return np.concatenate([stem_v, bar_v]), np.concatenate([stem_f, bar_f + 8])


def widest_row(image: np.ndarray) -> float:
    """Where the mesh is widest, as a fraction of the height from the top (0) to bottom (1)."""
    covered = (image < 0.99).any(-1).sum(1)
    return float(np.argmax(covered)) / len(covered)


def test_side_view_states_its_up_axis_and_keeps_either_convention_upright():
    v, f = t_shape_y_up()
    assert widest_row(render_side_view(v, f, 64, angle_deg=0.0, up="+y")) < 0.25
    # Read as the camera frame (y down), the same vertices are a T upside down...
    assert widest_row(render_side_view(v, f, 64, angle_deg=0.0)) > 0.75
    # ...and the camera-frame T (y negated) is upright by default.
    y_down = v * np.array([1.0, -1.0, 1.0])
    assert widest_row(render_side_view(y_down, f, 64, angle_deg=0.0)) < 0.25
    # Turned 90° about the vertical, the bar is seen end-on but stays at the top.
    side = render_side_view(v, f, 64, up="+y")
    assert widest_row(side) < 0.25
    with pytest.raises(ValueError, match="up: expected '-y'"):
        render_side_view(v, f, 64, up="z")


def test_fit_figure_shows_the_crop_the_meshes_before_and_after_and_residuals():
    v, f = t_shape_y_up()
    verts = torch.tensor(v * np.array([1.0, -1.0, 1.0]) - [0, -0.8, 0], dtype=torch.float32)
    res, p = 32, 2
    images = torch.zeros(p, 3, res, res)  # ImageNet-normalized mean grey
    observed = torch.zeros(p, 5, 3)
    observed[..., 0] = torch.linspace(-0.5, 0.5, 5)
    observed[..., 2] = 1.0
    observed[:, 4, 2] = 0.0  # unseen: no dot, no residual
    before_kp = observed[..., :2] + 0.2
    after_kp = observed[..., :2] + 0.05
    cam = torch.tensor([[0.8, 0.0, 0.0]] * p)
    state = lambda kp: MeshFitState(verts.expand(p, -1, -1), cam, kp)  # noqa: E731
    fig = mesh_fit_figure(images, observed, f, 5000.0 * res / 224, state(before_kp),
                          state(after_kp))
    axes = np.array(fig.axes).reshape(p, 4)
    titles = [ax.get_title() for ax in axes[0]]
    assert titles[0].startswith("input crop") and titles[3] == "after (fit), side view"
    # Mean residual over the 4 seen keypoints, in crop pixels: |(0.2, 0.2)| res / 2.
    assert titles[1] == f"before (mode): {np.hypot(0.2, 0.2) * res / 2:.1f} px"
    assert titles[2] == f"after (fit): {np.hypot(0.05, 0.05) * res / 2:.1f} px"
    crop = axes[0, 0].get_images()[0].get_array()
    for ax, color in ((axes[0, 1], MODE_COLOR), (axes[0, 2], FIT_COLOR)):
        picture = np.asarray(ax.get_images()[0].get_array())
        changed = np.abs(picture - crop).max(-1) > 0.05
        assert 0.01 < changed.mean() < 0.9  # the mesh is drawn over the crop
        # 4 residual lines, then reprojected and observed points with black edges.
        assert len(ax.get_lines()) == 4
        for points in ax.collections:
            assert len(points.get_offsets()) == 4
            assert all(to_rgba(e) == to_rgba("black") for e in points.get_edgecolors())
        # the mesh is tinted by its own colour where it covers the crop
        tint = picture[changed].mean(0)
        assert np.argmax(tint) == np.argmax(color)
    (legend,) = fig.legends
    assert {"observed keypoint", "reprojected keypoint", "mode mesh", "fitted mesh"} <= {
        t.get_text() for t in legend.get_texts()}
    plt.close(fig)


def test_overlay_outlines_the_silhouette_so_it_shows_on_its_own_colour():
    from condflow.viz.mesh import render_overlay

    v, f = t_shape_y_up()
    verts = v * np.array([1.0, -1.0, 1.0]) - [0, -0.8, 0]
    crop = np.broadcast_to(np.array(MODE_COLOR), (32, 32, 3)).copy()  # the mesh's own colour
    args = (crop, verts, f, np.array([0.8, 0.0, 0.0]), 5000.0 * 32 / 224, 4)
    plain, outlined = render_overlay(*args, outline=None), render_overlay(*args)
    edge = np.abs(outlined - plain).max(-1) > 0
    assert edge.any() and np.allclose(outlined[edge], 0.1)
    # the outline is a thin ring: the mesh's inside keeps its blended colour
    covered = np.abs(plain - np.kron(crop, np.ones((4, 4, 1)))).max(-1) > 1e-6
    assert edge.sum() < covered.sum()
