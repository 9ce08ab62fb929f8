"""Skeleton pictures: panels, units, equal aspect sized to the skeleton, colours by side,
samples under the prediction, spread ellipses, colour bar, legend clear of the panels."""

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from matplotlib.colors import to_rgba
from matplotlib.patches import Ellipse
from mpl_toolkits.mplot3d import Axes3D

from condflow.saving import build_model
from condflow.spaces.skeleton import H36M_17, H36M_17_TO_16
from condflow.tasks import load_config
from condflow.viz.skeleton import (
    LEFT_COLOR,
    RIGHT_COLOR,
    bone_colors,
    lifting_figure,
    lifting_fit_figure,
    lifting_model_figure,
)

TINY = {"lifter_hidden": 32, "lifter_blocks": 1, "flow_hidden": 16, "flow_blocks": 2}


def standing(scale: float = 1.0) -> torch.Tensor:
    """A rough standing skeleton ``[17, 3]`` (mm, y down), left joints at +x."""
    j = torch.zeros(17, 3)
    for name, xyz in {"RHip": (-100, 0, 0), "RKnee": (-110, 420, 20), "RFoot": (-110, 850, 0),
                      "LHip": (100, 0, 0), "LKnee": (110, 420, 20), "LFoot": (110, 850, 0),
                      "Spine": (0, -230, 10), "Thorax": (0, -480, 0), "Nose": (0, -560, -90),
                      "Head": (0, -650, 0), "LShoulder": (160, -450, 0),
                      "LElbow": (200, -200, 30), "LWrist": (210, 30, 60),
                      "RShoulder": (-160, -450, 0), "RElbow": (-200, -200, 30),
                      "RWrist": (-210, 30, 60)}.items():
        j[H36M_17.joint_names.index(name)] = torch.tensor(xyz, dtype=torch.float32)
    return j * scale


def inputs(k: int, scale: float = 1.0, n: int = 8):
    gt = torch.stack([standing(scale)] * k)
    kp = torch.cat([gt[:, list(H36M_17_TO_16), :2] / 5000, torch.ones(k, 16, 1)], -1)
    gen = torch.Generator().manual_seed(0)
    samples = gt[:, None] + torch.randn(k, n, 17, 3, generator=gen) * torch.tensor([10, 10, 80])
    samples[:, :, 0] = 0
    log_prob = -samples.pow(2).sum((-1, -2)) / 1e6
    return kp, gt, samples, log_prob


def panels(fig):
    """Plot panels (no colour bars), row-major."""
    return [ax for ax in fig.axes if ax.get_label() != "colorbar"]


def test_rows_show_input_3d_camera_and_side_views_with_units_and_equal_aspect():
    kp, gt, samples, log_prob = inputs(2)
    fig = lifting_figure(kp, gt + 5, samples, log_prob, gt)
    axes = panels(fig)
    assert len(axes) == 2 * 4
    assert sum(isinstance(ax, Axes3D) for ax in axes) == 2
    for row in (axes[:4], axes[4:]):
        two_d, ax3, camera, side = row
        assert "normalized" in two_d.get_xlabel() and two_d.get_aspect() == 1.0
        assert [ax3.get_xlabel(), ax3.get_ylabel(), ax3.get_zlabel()] == [
            "x (mm)", "z, depth (mm)", "−y, up (mm)"]
        spans = [np.ptp(lim()) for lim in (ax3.get_xlim, ax3.get_ylim, ax3.get_zlim)]
        assert np.allclose(spans, spans[0]) and np.allclose(ax3.get_box_aspect(),
                                                            ax3.get_box_aspect()[0])
        assert (camera.get_title(), side.get_title()) == ("camera view", "side view")
        assert (camera.get_xlabel(), side.get_xlabel()) == ("x (mm)", "z, depth (mm)")
        for view in (camera, side):
            assert "(mm)" in view.get_ylabel() and view.get_aspect() == 1.0
            assert np.ptp(view.get_xlim()) == pytest.approx(abs(np.ptp(view.get_ylim())))
            assert view.yaxis_inverted()  # image y points down
    plt.close(fig)


def test_axes_are_sized_to_the_skeleton():
    sides = []
    for scale in (0.5, 1.0):
        kp, gt, _, _ = inputs(1, scale)
        fig = lifting_figure(kp, gt, ground_truth=gt)
        camera = panels(fig)[2]
        sides.append(np.ptp(camera.get_xlim()))
        height = float(gt[0, :, 1].max() - gt[0, :, 1].min())  # the largest extent
        assert height <= sides[-1] <= 1.25 * height
        plt.close(fig)
    assert sides[0] == pytest.approx(sides[1] / 2)


def test_limbs_are_coloured_by_side_and_the_prediction_is_drawn_over_faint_samples():
    kp, gt, samples, log_prob = inputs(1)
    pred = gt + 7.0
    fig = lifting_figure(kp, pred, samples, log_prob, gt)
    camera = panels(fig)[2]
    lines = camera.get_lines()
    # bones per skeleton: samples first, then the ground truth, then the prediction on top.
    bones = bone_colors(H36M_17)
    nb = len(bones)
    assert len(lines) == nb * (samples.shape[1] + 2)
    assert all(line.get_alpha() is not None and line.get_alpha() < 0.6
               for line in lines[: nb * samples.shape[1]])
    top = lines[-nb:]
    for line, (j, p, _) in zip(top, bones, strict=True):
        name = H36M_17.joint_names[j]
        expected = LEFT_COLOR if name.startswith("L") else RIGHT_COLOR if name.startswith(
            "R") else None
        if expected is not None:
            assert to_rgba(line.get_color()) == to_rgba(expected), name
        assert np.allclose(line.get_xdata(), pred[0, [p, j], 0])
        assert np.allclose(line.get_ydata(), pred[0, [p, j], 1])
    assert {to_rgba(line.get_color()) for line in top} >= {to_rgba(LEFT_COLOR),
                                                           to_rgba(RIGHT_COLOR)}
    plt.close(fig)


def test_spread_ellipses_and_a_log_p_colour_bar_come_with_samples():
    kp, gt, samples, log_prob = inputs(2)
    fig = lifting_figure(kp, gt, samples, log_prob, gt)
    bars = [ax for ax in fig.axes if ax.get_label() == "colorbar"]
    assert len(bars) == 2 and "log p" in bars[0].get_ylabel()
    lo, hi = bars[0].get_ylim()
    assert lo == pytest.approx(log_prob[0].min().item()) and hi == pytest.approx(
        log_prob[0].max().item())
    camera, side = panels(fig)[2:4]
    for view, (h, v) in ((camera, (0, 1)), (side, (2, 1))):
        ellipses = [p for p in view.patches if isinstance(p, Ellipse)]
        assert len(ellipses) == 16  # every joint but the root, which does not move
        # Full axes 2 s.d. long: the widest is 4 sqrt(largest eigenvalue) of a joint's
        # covariance in the view's plane (the sampled depth's s.d. is 80 mm, x and y 10 mm).
        pts = samples[0, :, 1:][..., [h, v]].double().numpy()
        sd = max(np.sqrt(np.linalg.eigvalsh(np.cov(pts[:, j].T)).max()) for j in range(16))
        widest = max(max(e.width, e.height) for e in ellipses)
        assert widest == pytest.approx(4 * sd, rel=1e-6)
    plt.close(fig)
    fig = lifting_figure(kp, gt, ground_truth=gt)  # no samples: no bar, no ellipses
    assert all(ax.get_label() != "colorbar" for ax in fig.axes)
    assert not any(isinstance(p, Ellipse) for ax in fig.axes for p in ax.patches)
    plt.close(fig)


def _overlaps(a, b) -> bool:
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


def test_legend_sits_above_the_panels():
    kp, gt, samples, log_prob = inputs(2)
    for fig in (lifting_figure(kp, gt, samples, log_prob, gt),
                lifting_fit_figure(kp, kp[..., :2], kp[..., :2], gt, gt)):
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        (legend,) = fig.legends
        box = legend.get_window_extent(renderer)
        for ax in fig.axes:
            assert not _overlaps(box, ax.get_window_extent(renderer)), ax.get_title()
        plt.close(fig)


@pytest.mark.parametrize("kind, label", [("flow", "mode f(0; c)"), ("regression", "regression")])
def test_the_prediction_is_named_by_the_head(kind, label):
    cfg = load_config({"task": "lifting", "model": {**TINY, "kind": kind}})
    model = build_model(cfg).eval()
    kp, gt, _, _ = inputs(1)
    fig = lifting_model_figure(model, kp, gt, num_samples=4)
    texts = [t.get_text() for t in fig.legends[0].get_texts()]
    assert f"{label}: left" in texts and f"{label}: right" in texts
    assert ("samples (colour: log p)" in texts) == (kind == "flow")
    if kind == "regression":
        assert not any("mode" in t for t in texts)
    plt.close(fig)


def test_fit_picture_keeps_the_2d_panel_square_and_tick_labels_apart():
    kp, gt, _, _ = inputs(3)
    fit_2d = kp[..., :2] + 0.01
    fig = lifting_fit_figure(kp, kp[..., :2], fit_2d, gt, gt + 20)
    axes = fig.axes
    assert len(axes) == 9 and sum(isinstance(ax, Axes3D) for ax in axes) == 3
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    labels = []
    for ax in axes:
        if not isinstance(ax, Axes3D):
            assert ax.get_aspect() == 1.0
            assert np.ptp(ax.get_xlim()) == pytest.approx(abs(np.ptp(ax.get_ylim())))
        for axis in (ax.xaxis, ax.yaxis) + ((ax.zaxis,) if isinstance(ax, Axes3D) else ()):
            lo, hi = sorted(axis.get_view_interval())
            labels += [label.get_window_extent(renderer) for tick, label in
                       zip(axis.get_majorticklocs(), axis.get_majorticklabels(), strict=True)
                       if label.get_visible() and label.get_text() and lo <= tick <= hi]
    assert len(labels) > 20
    clashes = [(a, b) for i, a in enumerate(labels) for b in labels[i + 1:] if _overlaps(a, b)]
    assert not clashes
    plt.close(fig)
