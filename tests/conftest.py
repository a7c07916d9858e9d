"""Fixtures shared by the test suite."""
import os
from dataclasses import dataclass
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


@dataclass(frozen=True)
class SmokeStudy:
    """The shared smoke study: its run folders, the CLI arguments that made them, and its kernels' read log."""

    root: Path
    runs: Path
    args: list
    read_log: Path


@pytest.fixture(scope="session")
def smoke_study(tmp_path_factory) -> SmokeStudy:
    """The real notebooks on the demo sample foam89, smoke profile, through ``foamlib study run`` (minutes).

    Run once per test session and shared by the tests that need a whole study (test_study's checks of
    the run folder and the read log, test_book's build beside ``runs/``); they must not change the run
    folders. The kernels log
    every read of the scan and its segmentations (tests/read_log.py).
    """
    from read_log import SITECUSTOMIZE

    from foamlib.cli import main

    root = tmp_path_factory.mktemp("smoke_study")
    instrument = root / "instrument"
    instrument.mkdir()
    (instrument / "sitecustomize.py").write_text(SITECUSTOMIZE)
    runs, read_log = root / "book" / "runs", root / "reads.jsonl"  # inside the folder test_book builds the book in
    args = ["study", "run", "--samples", "foam89", "--profile", "smoke", "--runs-dir", str(runs),
            "--notebooks", str(Path(__file__).resolve().parents[1] / "notebooks"), "--jobs", "1"]
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PYTHONPATH", os.pathsep.join([str(instrument), *filter(None, [os.environ.get("PYTHONPATH")])]))
        patch.setenv("FOAMLIB_TEST_READ_LOG", str(read_log))
        assert main(args) == 0
    return SmokeStudy(root=root, runs=runs, args=args, read_log=read_log)
