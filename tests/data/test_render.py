import colorsys

import numpy as np
import pytest
import torch
from matplotlib.path import Path as MplPath
from scipy.spatial import ConvexHull
from scipy.spatial.transform import Rotation

from condflow.data.render import (
    BODY_PART_PALETTE,
    SMPL_PART_NAMES,
    default_camera_center,
    face_part_labels,
    overlay,
    project_points,
    rasterize,
    render_body_part_colors,
    render_mesh,
)

QUAD_FACES = np.array([[0, 1, 2], [0, 2, 3]])


def quad(x0, x1, y0, y1, z):
    return np.array([[x0, y0, z], [x1, y0, z], [x1, y1, z], [x0, y1, z]], dtype=float)


def pixel_centres(size):
    jj, ii = np.meshgrid(np.arange(size), np.arange(size))
    return np.stack([jj.ravel(), ii.ravel()], axis=1).astype(float)


def min_edge_distance(poly, points):
    d = np.inf
    for a, b in zip(poly, np.roll(poly, -1, axis=0), strict=True):
        t = np.clip(((points - a) @ (b - a)) / ((b - a) @ (b - a)), 0, 1)
        d = min(d, np.linalg.norm(points - (a + t[:, None] * (b - a)), axis=1).min())
    return d


def cube(half=0.3):
    v = np.array([[x, y, z] for x in (-half, half) for y in (-half, half) for z in (-half, half)])
    f = []
    for axis in range(3):  # two faces per axis side, each split into two triangles
        for side in (0, 1):
            ids = [i for i in range(8) if ((i >> (2 - axis)) & 1) == side]
            a, b, c, d = ids[0], ids[1], ids[3], ids[2]  # cyclic order on the face
            f += [[a, b, c], [a, c, d]]
    return v, np.array(f)


def sphere(n_lat=30, n_lon=50):
    th = np.linspace(0, np.pi, n_lat)
    ph = np.linspace(0, 2 * np.pi, n_lon, endpoint=False)
    t, p = np.meshgrid(th, ph, indexing="ij")
    v = np.stack([np.sin(t) * np.cos(p), np.cos(t), np.sin(t) * np.sin(p)], -1).reshape(-1, 3)
    f = []
    for i in range(n_lat - 1):
        for j in range(n_lon):
            a, b = i * n_lon + j, i * n_lon + (j + 1) % n_lon
            f += [[a, b, a + n_lon], [b, b + n_lon, a + n_lon]]
    return v, np.array(f)


def test_square_covers_the_projected_rectangle():
    v = quad(-0.3, 0.5, -0.2, 0.4, 2.5)
    cc = np.array([30.2, 33.7])
    _, mask, depth = render_mesh(v, QUAD_FACES, 80.0, 64, camera_center=cc)
    uv = project_points(v, 80.0, cc)
    cols = np.arange(np.ceil(uv[:, 0].min()), np.floor(uv[:, 0].max()) + 1).astype(int)
    rows = np.arange(np.ceil(uv[:, 1].min()), np.floor(uv[:, 1].max()) + 1).astype(int)
    expected = np.zeros((64, 64), bool)
    expected[np.ix_(rows, cols)] = True
    np.testing.assert_array_equal(mask, expected)
    np.testing.assert_allclose(depth[mask], 2.5, rtol=1e-6)
    assert (depth[~mask] == 0).all()


def test_tilted_triangle_coverage_matches_analytic_projection():
    v = np.array([[-0.41, -0.33, 2.07], [0.52, -0.11, 3.03], [0.03, 0.61, 2.51]])
    f = np.array([[0, 1, 2]])
    _, mask, _ = render_mesh(v, f, 70.0, 48)
    uv = project_points(v, 70.0, default_camera_center(48))
    assert min_edge_distance(uv, pixel_centres(48)) > 1e-3  # no pixel centre on an edge
    inside = MplPath(uv).contains_points(pixel_centres(48)).reshape(48, 48)
    np.testing.assert_array_equal(mask, inside)
    assert mask.sum() > 100


def test_rotated_cube_covers_convex_hull_of_projected_corners():
    v, f = cube(0.3)
    rot = Rotation.from_euler("xyz", [25, 40, 10], degrees=True).as_matrix()
    trans = np.array([0.1, 0.0, 2.0])
    v = v @ rot.T + trans
    _, mask, depth = render_mesh(v, f, 60.0, 64)
    uv = project_points(v, 60.0, default_camera_center(64))
    hull_uv = uv[ConvexHull(uv).vertices]
    assert min_edge_distance(hull_uv, pixel_centres(64)) > 1e-3
    hull = MplPath(hull_uv)
    inside = hull.contains_points(pixel_centres(64)).reshape(64, 64)
    np.testing.assert_array_equal(mask, inside)
    # depth = where the pixel's ray enters the box (slab method in the cube frame)
    rays = np.concatenate([(pixel_centres(64) - 31.5) / 60.0, np.ones((64 * 64, 1))], axis=1)
    origin, direction = rot.T @ -trans, rays @ rot
    with np.errstate(divide="ignore"):
        t0, t1 = (-0.3 - origin) / direction, (0.3 - origin) / direction
    entry = np.minimum(t0, t1).max(axis=1).reshape(64, 64)
    np.testing.assert_allclose(depth[mask], entry[mask], rtol=1e-5)


def test_perspective_correct_depth_on_a_slanted_plane():
    # plane z = 2 + 0.5 x: along the ray x = (u - cx) z / f the depth is 2 / (1 - 0.5 (u - cx) / f)
    v = np.array([[-1.0, -1.0, 1.5], [1.0, -1.0, 2.5], [1.0, 1.0, 2.5], [-1.0, 1.0, 1.5]])
    face_index, bary, depth = rasterize(v, QUAD_FACES, 40.0, 32)
    mask = face_index >= 0
    u = np.broadcast_to(np.arange(32.0), (32, 32))
    expected = 2.0 / (1.0 - 0.5 * (u - 15.5) / 40.0)
    np.testing.assert_allclose(depth[mask], expected[mask], rtol=1e-9)
    np.testing.assert_allclose(bary[mask].sum(-1), 1.0, atol=1e-12)
    assert (bary[mask] >= 0).all()


@pytest.mark.parametrize("near_first", [True, False])
def test_zbuffer_keeps_the_nearer_quad(near_first):
    near = quad(-0.4, 0.2, -0.4, 0.2, 2.0)
    far = quad(-0.2, 0.4, -0.2, 0.4, 3.0)
    verts = np.concatenate([near, far] if near_first else [far, near])
    faces = np.concatenate([QUAD_FACES, QUAD_FACES + 4])
    colors = np.array([[1, 0, 0], [1, 0, 0], [0, 0, 1], [0, 0, 1]], float)
    if not near_first:
        colors = colors[::-1]
    img, mask, depth = render_mesh(verts, faces, 100.0, 64, face_colors=colors,
                                   light_dir=(0, 0, -1), ambient=0.2)
    c = 31  # pixel centre inside both quads
    assert depth[c, c] == pytest.approx(2.0)
    np.testing.assert_allclose(img[c, c], [1, 0, 0], atol=1e-6)
    # a pixel covered only by the far quad
    uv = project_points(np.array([[0.35, 0.35, 3.0]]), 100.0, default_camera_center(64))[0]
    j, i = int(round(uv[0])), int(round(uv[1]))
    assert depth[i, j] == pytest.approx(3.0)
    np.testing.assert_allclose(img[i, j], [0, 0, 1], atol=1e-6)


def test_mesh_behind_or_through_the_camera_is_culled():
    v, f = cube(0.3)
    bg = np.full((32, 32, 3), 0.25)
    straddling = np.array([[-0.2, -0.2, -0.5], [0.3, -0.1, 1.0], [0.0, 0.3, 1.5]])
    for verts, faces in ((v + [0, 0, -2.0], f), (straddling, np.array([[0, 1, 2]]))):
        img, mask, depth = render_mesh(verts, faces, 50.0, 32, background=bg)
        assert not mask.any()
        assert np.isfinite(img).all() and np.isfinite(depth).all()
        np.testing.assert_allclose(img, bg)
        assert (depth == 0).all()
    # camera inside the cube: only the face at z = +0.3 lies in front, and it fills the view
    img, mask, depth = render_mesh(v, f, 50.0, 32, background=bg)
    assert mask.all() and np.isfinite(img).all()
    np.testing.assert_allclose(depth, 0.3, rtol=1e-6)


def test_rendering_is_deterministic_and_accepts_tensors():
    v, f = sphere()
    v = v * 0.5 + [0.0, 0.0, 3.0]
    rng = np.random.default_rng(0)
    vc = rng.random((len(v), 3))
    a = render_mesh(v, f, 100.0, 64, vertex_colors=vc)
    b = render_mesh(v, f, 100.0, 64, vertex_colors=vc)
    c = render_mesh(torch.tensor(v), torch.tensor(f), 100.0, 64, vertex_colors=torch.tensor(vc))
    for x, y, z in zip(a, b, c, strict=True):
        np.testing.assert_array_equal(x, y)
        np.testing.assert_array_equal(x, z)
    assert a[0].dtype == np.float32 and a[1].dtype == bool and a[0].shape == (64, 64, 3)
    assert a[0].min() >= 0 and a[0].max() <= 1


def test_lambertian_shading_of_face_normals():
    v = quad(-0.5, 0.5, -0.5, 0.5, 2.0)
    col = np.array([[0.8, 0.4, 0.2]] * 2)
    lit, m, _ = render_mesh(v, QUAD_FACES, 50.0, 32, face_colors=col, light_dir=(0, 0, -2))
    np.testing.assert_allclose(lit[m], np.broadcast_to(col[0], (m.sum(), 3)), atol=1e-6)
    side, _, _ = render_mesh(v, QUAD_FACES, 50.0, 32, face_colors=col, light_dir=(1, 0, 0),
                             ambient=0.3)
    np.testing.assert_allclose(side[m], np.broadcast_to(0.3 * col[0], (m.sum(), 3)), atol=1e-6)
    angled, _, _ = render_mesh(v, QUAD_FACES[:, ::-1], 50.0, 32, face_colors=col,
                               light_dir=(0, np.sin(0.5), -np.cos(0.5)), ambient=0.3)
    expected = (0.3 + 0.7 * np.cos(0.5)) * col[0]  # two-sided: winding does not matter
    np.testing.assert_allclose(angled[m], np.broadcast_to(expected, (m.sum(), 3)), atol=1e-6)


def test_body_part_colors_follow_dominant_skinning_weight():
    v, f = sphere(12, 16)
    v = v * 0.5 + [0.0, 0.0, 2.5]
    rng = np.random.default_rng(1)
    weights = rng.dirichlet(np.ones(24) * 0.3, size=len(v))
    labels = face_part_labels(f, weights)
    np.testing.assert_array_equal(labels, weights[f].sum(1).argmax(1))
    img, mask, _ = render_body_part_colors(v, f, weights, 90.0, 48, light_dir=(0, 0, -1),
                                           ambient=1.0)
    face_index, _, _ = rasterize(v, f, 90.0, 48)
    np.testing.assert_allclose(img[mask], BODY_PART_PALETTE[labels[face_index[mask]]], atol=1e-6)


def test_palette_left_and_right_parts_have_distinct_hues():
    hue = np.array([colorsys.rgb_to_hsv(*c)[0] for c in BODY_PART_PALETTE])
    pairs = [(i, SMPL_PART_NAMES.index(n.replace("left", "right")))
             for i, n in enumerate(SMPL_PART_NAMES) if n.startswith("left")]
    assert len(pairs) == 9
    for left, right in pairs:
        d = abs(hue[left] - hue[right])
        assert min(d, 1 - d) > 0.2, (SMPL_PART_NAMES[left], hue[left], hue[right])
    assert len({tuple(c) for c in BODY_PART_PALETTE}) == 24


def test_overlay_blends_only_inside_the_mask():
    rng = np.random.default_rng(2)
    img = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    ren = rng.random((8, 8, 3))
    mask = rng.random((8, 8)) > 0.5
    out = overlay(img, ren, mask, alpha=0.25)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out[~mask], img[~mask])
    expected = np.round((0.25 * ren + 0.75 * img / 255.0) * 255)[mask]
    np.testing.assert_array_equal(out[mask], expected.astype(np.uint8))
    np.testing.assert_allclose(overlay(img / 255.0, ren, mask, 1.0)[mask], ren[mask])


def test_bad_inputs_raise():
    v = quad(-0.5, 0.5, -0.5, 0.5, 2.0)
    with pytest.raises(ValueError, match="faces"):
        render_mesh(v, QUAD_FACES + 2, 50.0, 32)
    with pytest.raises(ValueError, match="vertices"):
        render_mesh(v[:, :2], QUAD_FACES, 50.0, 32)
    with pytest.raises(ValueError, match="vertices.*NaN"):
        render_mesh(np.where(v == 2.0, np.nan, v), QUAD_FACES, 50.0, 32)
    with pytest.raises(ValueError, match="face_colors"):
        render_mesh(v, QUAD_FACES, 50.0, 32, face_colors=np.ones((3, 3)))
    with pytest.raises(ValueError, match="background"):
        render_mesh(v, QUAD_FACES, 50.0, 32, background=np.ones((16, 16, 3)))
    with pytest.raises(ValueError, match="img_size"):
        render_mesh(v, QUAD_FACES, 50.0, 0)
