import pytest
import torch

from condflow.body.model import BodyModel
from condflow.body.poses import PoseGenerator
from condflow.spaces.rotations import axis_angle_to_matrix


@pytest.fixture(autouse=True)
def _seed_and_threads():
    torch.manual_seed(0)
    yield


def pytest_configure(config):
    """Generated data (body model, synthetic sets) goes to a per-run cache unless set."""
    import os
    import tempfile

    os.environ.setdefault("CONDFLOW_CACHE_DIR", tempfile.mkdtemp(prefix="condflow-test-cache-"))


@pytest.fixture(scope="module")
def body() -> BodyModel:
    """The body model of the tests (the synthetic SMPL-format body unless
    ``$CONDFLOW_SMPL_PATH`` is set), one per test module."""
    return BodyModel()


@pytest.fixture
def random_rotmat():
    """``random_rotmat(n, seed=0)``: rotation matrices ``[n, 24, 3, 3]`` and shapes
    ``[n, 10]`` of ``n`` bodies of the pose generator."""

    def draw(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        poses = PoseGenerator(seed).sample(n)
        aa = torch.cat([poses.global_orient[:, None], poses.body_pose], 1)
        return axis_angle_to_matrix(aa), poses.betas

    return draw
