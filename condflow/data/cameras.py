"""Random look-at pinhole cameras around a subject (for synthetic data)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["CameraSample", "look_at_cameras"]


@dataclass
class CameraSample:
    """``rotation [N, 3, 3]`` (world → camera, OpenCV axes: x right, y down, z forward) and
    camera ``position [N, 3]`` in world coordinates (metres); ``x_cam = R (x_world - position)``.
    """

    rotation: np.ndarray
    position: np.ndarray

    def to_camera(self, points: np.ndarray) -> np.ndarray:
        """World points ``[N, K, 3]`` → camera coordinates ``[N, K, 3]``."""
        return np.einsum("nij,nkj->nki", self.rotation, points - self.position[:, None])


def look_at_cameras(
    rng: np.random.Generator,
    n: int,
    elevation_deg: tuple[float, float] = (-10.0, 40.0),
    distance_m: tuple[float, float] = (3.5, 7.0),
    target_jitter_m: float = 0.2,
) -> CameraSample:
    """Cameras at uniform azimuths (all of [0, 2π)), elevations and distances around the
    origin (SMPL world: y up), each looking at the origin plus a random jitter."""
    azimuth = rng.uniform(0, 2 * np.pi, n)
    elevation = np.deg2rad(rng.uniform(*elevation_deg, n))
    distance = rng.uniform(*distance_m, n)
    target = rng.normal(0, target_jitter_m, (n, 3))
    direction = np.stack(
        [
            np.sin(azimuth) * np.cos(elevation),
            np.sin(elevation),
            np.cos(azimuth) * np.cos(elevation),
        ],
        -1,
    )
    position = target + distance[:, None] * direction
    forward = -direction
    right = np.cross(forward, np.array([0.0, 1.0, 0.0]))
    right /= np.linalg.norm(right, axis=-1, keepdims=True)
    down = np.cross(forward, right)
    return CameraSample(np.stack([right, down, forward], axis=1), position)
