"""Fixtures shared by the test suite."""
from pathlib import Path

import pytest

#: The real scans that the project develops against; never copied into the repository.
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture
def shared_data() -> Path:
    """Path to ``../shared/data``; skips the test with a message where it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real scans not found at {SHARED_DATA} (they live beside the checkout, in ../shared/data)")
    return SHARED_DATA


@pytest.fixture
def torch_one_thread():
    """Run a test with one torch thread: tests share the cores, and CPU results then repeat exactly."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
