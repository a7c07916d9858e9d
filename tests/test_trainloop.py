"""Tests of foamlib.trainloop, the checkpointed-training skeleton."""

import csv

import numpy as np
import pytest
import torch

from foamlib import __version__
from foamlib.torchfiles import ModelFileError, load_torch_file
from foamlib.trainloop import TrainingRun, check_config, due

pytestmark = pytest.mark.usefixtures("torch_one_thread")

FORMAT = "foamlib-test-checkpoint"


class _Parts:
    """A module, its optimiser and two random generators, all seeded."""

    def __init__(self, seed: int) -> None:
        with torch.random.fork_rng(devices=[]):  # seeded initial weights; the caller's global RNG is left alone
            torch.manual_seed(seed)
            self.net = torch.nn.Linear(3, 2)
        self.opt = torch.optim.Adam(self.net.parameters(), lr=0.1)
        self.np_rng = np.random.default_rng(seed)
        self.torch_gen = torch.Generator().manual_seed(seed)

    def state(self) -> dict:
        return {"net_state": self.net, "opt": {"adam": self.opt}, "rng": {"np": self.np_rng, "torch": self.torch_gen}}

    def step(self) -> dict:
        x = torch.randn(4, 3, generator=self.torch_gen)
        loss = self.net(x).pow(2).mean() + float(self.np_rng.random())
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        return {"loss": loss.item(), "seconds": 0.5}


def _run(path, parts: _Parts, **options) -> TrainingRun:
    return TrainingRun(path, file_format=FORMAT, kind="test checkpoint", counter="step", state=parts.state(),
                       identity={"config": {"lr": 0.1}}, **options)  # fmt: skip


def _accept(checkpoint: dict) -> None:
    pass


def test_save_then_resume_restores_everything_and_continues_identically(tmp_path):
    straight = _Parts(0)
    for _ in range(4):
        straight.step()

    first = _Parts(0)
    run = _run(tmp_path / "ck.pt", first, history_csv=tmp_path / "history.csv")
    assert run.resume(_accept) is None and run.history == []
    for step in (1, 2):
        run.history.append({"step": step, **first.step()})
    run.save(2, extra_entry=[1, 2])

    stored = load_torch_file(tmp_path / "ck.pt", FORMAT, kind="test checkpoint")
    assert stored["step"] == 2 and stored["extra_entry"] == [1, 2] and stored["config"] == {"lr": 0.1}
    assert stored["foamlib_version"] == __version__
    assert set(stored["opt"]) == {"adam"} and set(stored["rng"]) == {"np", "torch"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck.pt", "history.csv"]  # no temporary files left
    with open(tmp_path / "history.csv", newline="") as handle:
        assert [int(row["step"]) for row in csv.DictReader(handle)] == [1, 2]

    resumed = _Parts(99)  # other initial weights and RNG states: all are restored
    again = _run(tmp_path / "ck.pt", resumed)
    checkpoint = again.resume(_accept)
    assert checkpoint["extra_entry"] == [1, 2]
    assert [row["step"] for row in again.history] == [1, 2]
    assert again.seconds == 1.0
    rows = again.rows()
    rows[0]["loss"] = None
    assert again.history[0]["loss"] is not None  # rows() is a copy
    for _ in range(2):
        resumed.step()
    for name, tensor in straight.net.state_dict().items():
        assert torch.equal(tensor, resumed.net.state_dict()[name]), name


def test_without_a_path_nothing_is_read_or_written(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run = TrainingRun.in_folder(None, file_format=FORMAT, kind="test checkpoint", counter="epoch",
                                state=_Parts(0).state(), identity={})  # fmt: skip
    assert run.path is None and run.history_csv is None
    assert run.resume(_accept) is None
    run.save(1)
    assert list(tmp_path.iterdir()) == []


def test_in_folder_names_the_files_and_write_can_be_replaced(tmp_path):
    written = []
    run = TrainingRun.in_folder(tmp_path / "run", file_format=FORMAT, kind="test checkpoint", counter="step",
                                state={}, identity={}, write=lambda payload, path: written.append((payload, path)))  # fmt: skip
    assert run.path == tmp_path / "run" / "checkpoint.pt"
    assert run.history_csv == tmp_path / "run" / "history.csv"
    run.history.append({"step": 1, "seconds": 0.0})
    run.save(1)
    assert written[0][1] == run.path and written[0][0]["step"] == 1 and written[0][0]["format"] == FORMAT
    assert (tmp_path / "run" / "history.csv").is_file()


def test_a_checkpoint_of_another_run_is_refused_or_moved_aside(tmp_path):
    path = tmp_path / "ck.pt"
    run = _run(path, _Parts(0))
    run.save(1)

    def refuse(checkpoint: dict) -> None:
        raise ValueError("another run")

    with pytest.raises(ValueError, match="another run"):
        _run(path, _Parts(0)).resume(refuse)
    assert _run(path, _Parts(0)).resume(refuse, on_mismatch="restart") is None
    assert not path.exists() and len(list(tmp_path.glob("ck.stale-*.pt"))) == 1
    with pytest.raises(ValueError, match="on_mismatch"):
        _run(path, _Parts(0)).resume(refuse, on_mismatch="ignore")
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(ModelFileError, match="not a readable torch file"):
        _run(path, _Parts(0)).resume(_accept)


def test_counter_must_be_epoch_or_step():
    with pytest.raises(ValueError, match="counter"):
        TrainingRun(None, file_format=FORMAT, kind="x", counter="batch", state={}, identity={})


def test_check_config_names_every_change_but_the_resumable_ones(tmp_path):
    saved = {"a": 1, "b": 2, "steps": 3, "old": 0}
    check_config(saved, {"a": 1, "b": 2, "steps": 9}, path=tmp_path, name="Cfg", resumable={"steps"})
    with pytest.raises(ValueError, match=r"different Cfg \(a: 1 -> 5, b: 2 -> 6\); cannot resume\. Advice$"):
        check_config(saved, {"a": 5, "b": 6, "steps": 9}, path=tmp_path, name="Cfg", resumable={"steps"},
                     advice=". Advice")  # fmt: skip
    with pytest.raises(ValueError, match=r"\(old: 0 -> None\)"):
        check_config(saved, {"a": 1, "b": 2, "steps": 3}, path=tmp_path, name="Cfg", resumable=(),
                     keys=set(saved) | {"a"})  # fmt: skip


def test_due():
    assert [s for s in range(1, 8) if due(s, 3, 7)] == [3, 6, 7]
    assert [s for s in range(1, 8) if due(s, None, 7)] == [7]
