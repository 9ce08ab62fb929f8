import pytest
import torch


@pytest.fixture(autouse=True)
def _seed_and_threads():
    torch.manual_seed(0)
    yield


def pytest_configure(config):
    """Generated data (body model, synthetic sets) goes to a per-run cache unless set."""
    import os
    import tempfile

    os.environ.setdefault("CONDFLOW_CACHE_DIR", tempfile.mkdtemp(prefix="condflow-test-cache-"))
