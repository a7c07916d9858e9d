"""progress.progress_bar: tqdm that also appends throttled JSON lines for the study runner."""
from __future__ import annotations

import io
import json

import pytest
from tqdm import tqdm

from foamlib import progress
from foamlib.progress import PROGRESS_FILE_VARIABLE, PROGRESS_STAGE_VARIABLE, progress_bar, read_records


@pytest.fixture
def progress_file(tmp_path, monkeypatch):
    path = tmp_path / "progress.jsonl"
    monkeypatch.setenv(PROGRESS_FILE_VARIABLE, str(path))
    monkeypatch.setenv(PROGRESS_STAGE_VARIABLE, "04_unet_step1")
    return path


def test_without_the_variable_it_is_tqdm_and_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.delenv(PROGRESS_FILE_VARIABLE, raising=False)
    monkeypatch.chdir(tmp_path)
    out = io.StringIO()
    assert list(progress_bar(range(5), desc="epoch", file=out)) == [0, 1, 2, 3, 4]
    assert "epoch" in out.getvalue() and "5/5" in out.getvalue()
    hidden = progress_bar(range(3), disable=True)
    assert isinstance(hidden, tqdm) and hidden.disable and list(hidden) == [0, 1, 2]
    assert list(tmp_path.iterdir()) == []


def test_a_hidden_bar_reports_its_first_and_last_state_and_is_throttled_between(progress_file, monkeypatch):
    monkeypatch.setattr(progress, "REPORT_INTERVAL_S", 3600.0)
    bar = progress_bar(total=100, desc="epoch 2/12", unit="batch", disable=True)
    for _ in range(100):
        bar.update(1)
    bar.close()
    records, offset = read_records(progress_file)
    assert offset == progress_file.stat().st_size
    assert [(r.n, r.total, r.closed) for r in records] == [(0, 100, False), (100, 100, True)]
    first = records[0]
    assert (first.stage, first.desc, first.unit) == ("04_unet_step1", "epoch 2/12", "batch")
    assert records[1].elapsed >= 0 and records[1].bar == first.bar


def test_without_throttling_every_refresh_is_a_line(progress_file, monkeypatch):
    monkeypatch.setattr(progress, "REPORT_INTERVAL_S", 0.0)
    for _ in progress_bar(range(5), desc="walls", mininterval=0, miniters=1, disable=True):
        pass
    ns = [r.n for r in read_records(progress_file)[0]]
    assert ns[0] == 0 and ns[-1] == 5 and len(ns) >= 6 and ns == sorted(ns)


def test_a_shown_bar_reports_too_and_still_draws(progress_file):
    out = io.StringIO()
    with progress_bar(total=3, desc="segment", unit="batch", file=out) as bar:
        bar.update(3)
    assert "segment" in out.getvalue() and "3/3" in out.getvalue()
    records = read_records(progress_file)[0]
    assert records[-1].closed and records[-1].n == 3
    assert len({r.bar for r in records}) == 1


def test_bars_are_told_apart(progress_file):
    for desc in ("a", "b"):
        progress_bar(total=1, desc=desc, disable=True).close()
    records = read_records(progress_file)[0]
    assert [r.desc for r in records] == ["a", "a", "b", "b"]
    assert len({r.bar for r in records}) == 2


def test_read_records_follows_a_file_being_written_and_skips_foreign_lines(tmp_path):
    path = tmp_path / "p.jsonl"
    assert read_records(path) == ([], 0)
    line = {"stage": "s", "bar": "1-1", "desc": "d", "n": 1, "total": None, "unit": "it", "elapsed": 0.5,
            "closed": False, "time": 1.0}
    path.write_text(json.dumps(line) + "\nnot json\n" + json.dumps({**line, "n": 2})[:20])
    records, offset = read_records(path)
    assert [r.n for r in records] == [1] and records[0].total is None
    with open(path, "a") as handle:
        handle.write(json.dumps({**line, "n": 2})[20:] + "\n")
    more, end = read_records(path, offset)
    assert [r.n for r in more] == [2] and end == path.stat().st_size


def test_a_file_that_cannot_be_written_does_not_stop_the_loop(tmp_path, monkeypatch):
    monkeypatch.setenv(PROGRESS_FILE_VARIABLE, str(tmp_path))  # a folder: open() fails
    assert sum(progress_bar(range(4), disable=True)) == 6
