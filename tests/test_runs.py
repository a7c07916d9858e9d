"""Run-folder helpers: atomic writes and JSON."""
from __future__ import annotations

import json

import numpy as np
import pytest

from foamlib.runs import atomic_path, read_json, update_metrics, write_json


def test_atomic_path_moves_into_place_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "sub" / "out.txt"
    with atomic_path(target) as tmp:
        assert tmp.parent == target.parent and tmp.suffix == ".txt"
        tmp.write_text("done")
        assert not target.exists()
    assert target.read_text() == "done"
    assert [p.name for p in target.parent.iterdir()] == ["out.txt"]


def test_atomic_path_keeps_the_old_file_when_the_writer_fails(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("writer failed")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_atomic_path_refuses_to_overwrite_when_asked(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("mine")
    with pytest.raises(FileExistsError, match="out.txt"), atomic_path(target, overwrite=False):
        pass
    assert target.read_text() == "mine"


def test_write_json_converts_numpy_and_non_finite_values(tmp_path):
    path = write_json(tmp_path / "m.json", {"a": np.float32(0.5), "b": np.arange(3), "c": float("nan"), "d": tmp_path})
    data = json.loads(path.read_text())
    assert data == {"a": 0.5, "b": [0, 1, 2], "c": None, "d": str(tmp_path)}
    assert read_json(path) == data


def test_read_json_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.json"):
        read_json(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ValueError, match="bad.json"):
        read_json(tmp_path / "bad.json")
    (tmp_path / "list.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="list"):
        read_json(tmp_path / "list.json")


def test_update_metrics_writes_into_the_stage_folder(tmp_path):
    path = update_metrics(tmp_path, "otsu", {"porosity": 0.9})
    assert path == tmp_path / "otsu" / "metrics.json"
    assert read_json(path) == {"porosity": 0.9}


def test_atomic_files_get_the_usual_permissions(tmp_path):
    import os

    umask = os.umask(0o022)
    try:
        with atomic_path(tmp_path / "shared.txt") as tmp:
            tmp.write_text("for everyone to read")
    finally:
        os.umask(umask)
    assert (tmp_path / "shared.txt").stat().st_mode & 0o777 == 0o644


def test_atomic_path_fails_when_nothing_was_written(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing was written"), atomic_path(tmp_path / "x.txt"):
        pass
    assert not (tmp_path / "x.txt").exists()


def test_write_csv_union_of_columns(tmp_path):
    import csv

    from foamlib.runs import write_csv

    path = write_csv(tmp_path / "log" / "history.csv", [{"step": 1, "loss": 0.5}, {"step": 2, "loss": 0.25, "extra": "x"}])
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert rows == [{"step": "1", "loss": "0.5", "extra": ""}, {"step": "2", "loss": "0.25", "extra": "x"}]


def test_write_table_keeps_the_index(tmp_path):
    import pandas as pd

    from foamlib.runs import write_table

    frame = pd.DataFrame({"fid": [1.5, 2.5]}, index=pd.Index(["a", "b"], name="set"))
    path = write_table(tmp_path / "new" / "t.csv", frame)
    assert path.read_text() == "set,fid\na,1.5\nb,2.5\n"
    assert not list(path.parent.glob(".*tmp*"))


def test_remove_temporaries_removes_only_atomic_path_leftovers(tmp_path):
    from foamlib.runs import is_temporary, remove_temporaries

    (tmp_path / "models").mkdir()
    stale = [tmp_path / f".00_samples.ipynb.{'a' * 32}.tmp.ipynb", tmp_path / "models" / f".step1.pt.{'0f' * 16}.tmp.pt"]
    keep = [tmp_path / "models" / "step1.pt", tmp_path / ".hidden", tmp_path / f".x.{'a' * 31}.tmp"]
    for path in stale + keep:
        path.write_text("x")
    assert sorted(remove_temporaries(tmp_path)) == sorted(stale)
    assert all(p.exists() for p in keep) and not any(p.exists() for p in stale)
    assert is_temporary(stale[1].name) and not is_temporary("step1.pt")


def test_run_lock_refuses_a_second_holder_and_names_the_first(tmp_path):
    import os
    import subprocess
    import sys

    from foamlib.runs import RunFolderBusy, run_lock

    with run_lock(tmp_path / "s1", what="test holder"):
        with pytest.raises(RunFolderBusy, match=rf"in use by pid {os.getpid()} .*test holder"):
            with run_lock(tmp_path / "s1"):
                pass
        # another process is refused too (flock locks are per open file, not per process)
        code = ("import sys; from foamlib.runs import run_lock, RunFolderBusy\n"
                "try:\n    run_lock(sys.argv[1]).__enter__()\nexcept RunFolderBusy as e:\n    print(e); sys.exit(3)")
        other = subprocess.run([sys.executable, "-c", code, str(tmp_path / "s1")], capture_output=True, text=True)
        assert other.returncode == 3 and "test holder" in other.stdout
    with run_lock(tmp_path / "s1"):  # released
        pass


def test_run_lock_of_a_killed_holder_is_free(tmp_path):
    import subprocess
    import sys

    from foamlib.runs import run_lock

    code = ("import sys, time; from foamlib.runs import run_lock\n"
            "with run_lock(sys.argv[1]):\n    print('held', flush=True); time.sleep(60)")
    holder = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    holder.kill()  # SIGKILL: no clean-up runs
    holder.wait()
    holder.stdout.close()
    with run_lock(tmp_path):
        assert (tmp_path / ".lock").is_file()


def test_file_sha256_reads_in_chunks(tmp_path):
    import hashlib

    from foamlib.runs import file_sha256

    data = np.random.default_rng(0).bytes(100_000)
    (tmp_path / "b.bin").write_bytes(data)
    assert file_sha256(tmp_path / "b.bin", chunk_size=4096) == hashlib.sha256(data).hexdigest()


def test_run_lock_can_wait_for_its_holder(tmp_path):
    import subprocess
    import sys
    import time

    from foamlib.runs import run_lock

    code = ("import sys, time; from foamlib.runs import run_lock\n"
            "with run_lock(sys.argv[1], what='the other study'):\n    print('held', flush=True); time.sleep(1.5)")
    holder = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    said, start = [], time.monotonic()
    with run_lock(tmp_path, wait=True, on_wait=said.append):
        assert time.monotonic() - start > 0.5
    assert len(said) == 1 and "the other study" in said[0] and "waiting" in said[0]
    holder.wait()
    holder.stdout.close()
