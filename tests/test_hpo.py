"""Tests of foamlib.hpo: the two-stage (Hyperband, then TPE) architecture search."""

import dataclasses
import json

import numpy as np
import optuna
import pandas as pd
import pytest
import torch

from foamlib.hpo import SMOKE_SPACE, SearchSpace, search
from foamlib.training import TrainConfig
from foamlib.unet import UNet, build_unet

#: Two-level, four-channel networks only: a trial takes a fraction of a second.
TINY_SPACE = SearchSpace(levels=(2,), convs_per_level=(1, 2), kernel_size=(3, 4), base_channels=(4,), learning_rate=(1e-3, 1e-2))
FAST = TrainConfig(batch_size=8, noise_sigma=0.0)


pytestmark = pytest.mark.usefixtures("torch_one_thread")


def _disks(n: int, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    labels = np.zeros((n, size, size), dtype=bool)
    for i in range(n):
        cy, cx = rng.uniform(8, size - 8, size=2)
        labels[i] = (yy - cy) ** 2 + (xx - cx) ** 2 < rng.uniform(4, 8) ** 2
    images = np.where(labels, 0.7, 0.3) + rng.normal(0, 0.05, labels.shape)
    return (np.clip(images, 0, 1) * 255).round().astype(np.uint8), labels


@pytest.fixture(scope="module")
def data():
    return _disks(16, 32, seed=0), _disks(8, 32, seed=1)


@pytest.fixture(scope="module")
def result(data):
    torch.set_num_threads(1)
    return search(*data, space=TINY_SPACE, hyperband_trials=4, bayes_trials=2, max_epochs=2, train_config=FAST, seed=3)


def test_search_returns_a_buildable_config_and_a_table_of_both_stages(result):
    assert set(result.best_config) == {"levels", "convs_per_level", "kernel_size", "pooling", "base_channels"}
    assert isinstance(build_unet(result.best_config, seed=0), UNet)
    assert 1e-3 <= result.best_learning_rate <= 1e-2
    table = result.trials
    assert list(table["stage"]) == ["hyperband"] * 4 + ["bayes"] * 2
    assert list(table.columns[:7]) == ["stage", "number", "params", "value", "state", "epochs", "seconds"]
    assert set(table["state"]) <= {"COMPLETE", "PRUNED"}
    assert table["epochs"].between(1, 2).all() and (table["seconds"] > 0).all()
    complete = table[table["state"] == "COMPLETE"]
    assert result.best_value == pytest.approx(complete["value"].max())
    assert 0 <= result.best_value <= 1
    best_row = complete.loc[complete["value"].idxmax()]
    assert json.loads(best_row["params"])["learning_rate"] == pytest.approx(result.best_learning_rate)


def test_seeded_searches_are_identical(data, result, tmp_path):
    again = search(*data, space=TINY_SPACE, hyperband_trials=4, bayes_trials=2, max_epochs=2, train_config=FAST, seed=3)
    columns = ["stage", "number", "params", "state", "epochs"]
    pd.testing.assert_frame_equal(again.trials[columns], result.trials[columns])
    np.testing.assert_allclose(again.trials["value"], result.trials["value"], rtol=1e-6)
    assert again.best_config == result.best_config
    path = result.to_csv(tmp_path / "hpo" / "trials.csv")
    assert list(pd.read_csv(path)["params"]) == list(result.trials["params"])


def test_hyperband_prunes_when_trials_are_many(data):
    train, val = data
    small = ((train[0][:8], train[1][:8]), (val[0][:4], val[1][:4]))
    res = search(*small, space=TINY_SPACE, hyperband_trials=10, bayes_trials=0, max_epochs=4, train_config=FAST, seed=0)
    states = list(res.trials["state"])
    assert states.count("PRUNED") >= 1 and "COMPLETE" in states
    pruned = res.trials[res.trials["state"] == "PRUNED"]
    assert (pruned["epochs"] < 4).all()


class _Killed(BaseException):
    """Stands for the process being killed: Optuna does not catch it, so the trial stays RUNNING."""


def _counting_train(monkeypatch, *, kill_at=None, after_epochs=0, exc=_Killed):
    """Patch the search's ``train_unet``: count the trials trained; raise ``exc`` in the ``kill_at``-th (1-based).

    It is raised before training (``after_epochs=0``) or after that many reported epochs.
    """
    import foamlib.hpo

    real = foamlib.hpo.train_unet
    calls = []

    def train(*args, on_epoch_end, **kwargs):
        calls.append(1)
        if len(calls) == kill_at and after_epochs == 0:
            raise exc

        def report(epoch, row):
            on_epoch_end(epoch, row)
            if len(calls) == kill_at and epoch == after_epochs:
                raise exc

        return real(*args, on_epoch_end=report, **kwargs)

    monkeypatch.setattr(foamlib.hpo, "train_unet", train)
    return calls


def _same_trials(resumed, uninterrupted):
    columns = ["stage", "number", "params", "state", "epochs"]
    pd.testing.assert_frame_equal(resumed.trials[columns], uninterrupted.trials[columns])
    np.testing.assert_allclose(resumed.trials["value"], uninterrupted.trials["value"], rtol=1e-6)
    assert resumed.best_config == uninterrupted.best_config
    assert resumed.best_learning_rate == uninterrupted.best_learning_rate


RESULT_ARGS = dict(space=TINY_SPACE, hyperband_trials=4, bayes_trials=2, max_epochs=2, train_config=FAST, seed=3)


@pytest.mark.parametrize("done", [2, 5])
def test_search_killed_between_trials_resumes_to_the_uninterrupted_result(data, result, tmp_path, monkeypatch, done):
    db = tmp_path / "step1" / "hpo.db"
    _counting_train(monkeypatch, kill_at=done + 1)
    with pytest.raises(_Killed):
        search(*data, **RESULT_ARGS, storage=db)
    calls = _counting_train(monkeypatch)
    resumed = search(*data, **RESULT_ARGS, storage=db)
    assert len(calls) == 6 - done and resumed.resumed_trials == done  # only the missing trials ran
    _same_trials(resumed, result)
    assert result.resumed_trials == 0
    # A finished search in storage runs nothing and gives the same answer.
    again = search(*data, **RESULT_ARGS, storage=db)
    assert len(calls) == 6 - done and again.resumed_trials == 6
    pd.testing.assert_frame_equal(again.trials, resumed.trials)


@pytest.mark.parametrize("exc", [_Killed, KeyboardInterrupt])
def test_trial_cut_short_runs_again_under_its_number(data, tmp_path, monkeypatch, exc):
    train, val = data
    small = ((train[0][:8], train[1][:8]), (val[0][:4], val[1][:4]))
    # Three epochs: two Hyperband brackets, which Optuna assigns by trial number.
    kwargs = dict(space=TINY_SPACE, hyperband_trials=4, bayes_trials=1, max_epochs=3, train_config=FAST, seed=1)
    uninterrupted = search(*small, **kwargs)
    # Cut short, after its second epoch, the first trial after trial 0 that trains more than one.
    cut = next(i for i, epochs in enumerate(uninterrupted.trials["epochs"]) if i > 0 and epochs > 2)
    _counting_train(monkeypatch, kill_at=cut + 1, after_epochs=2, exc=exc)
    with pytest.raises(exc):
        search(*small, **kwargs, storage=tmp_path / "hpo.db")
    calls = _counting_train(monkeypatch)
    resumed = search(*small, **kwargs, storage=tmp_path / "hpo.db")
    assert len(calls) == 5 - cut  # the cut trial again and those after it; none before it
    assert "FAIL" not in set(resumed.trials["state"])
    _same_trials(resumed, uninterrupted)


def test_trial_that_raises_is_stored_failed_and_the_search_goes_on(data, tmp_path, monkeypatch):
    train, val = data
    small = ((train[0][:8], train[1][:8]), (val[0][:4], val[1][:4]))
    kwargs = dict(space=TINY_SPACE, hyperband_trials=3, bayes_trials=0, max_epochs=1, train_config=FAST)
    kwargs["storage"] = tmp_path / "hpo.db"
    _counting_train(monkeypatch, kill_at=2, exc=RuntimeError("out of memory"))
    with pytest.raises(RuntimeError, match="out of memory"):
        search(*small, **kwargs)
    calls = _counting_train(monkeypatch)
    res = search(*small, **kwargs)
    assert len(calls) == 1  # the failed trial counts as tried
    assert list(res.trials["state"].iloc[:2]) == ["COMPLETE", "FAIL"] and len(res.trials) == 3
    assert np.isnan(res.trials["value"].iloc[1])
    assert res.trials["params"].iloc[2] != res.trials["params"].iloc[1]  # the next slot, not the failed point again
    complete = res.trials[res.trials["state"] == "COMPLETE"]
    assert res.best_value == pytest.approx(complete["value"].max())


def test_storage_from_other_settings_or_data_is_refused_or_restarted(data, tmp_path, monkeypatch, caplog):
    train, val = data
    small = ((train[0][:8], train[1][:8]), (val[0][:4], val[1][:4]))
    db = tmp_path / "hpo.db"
    kwargs = dict(space=TINY_SPACE, hyperband_trials=1, bayes_trials=0, max_epochs=1, train_config=FAST, storage=db)
    search(*small, **kwargs)
    storage = optuna.storages.RDBStorage(f"sqlite:///{db}")
    try:  # both stages' studies, named after the settings' key
        names = sorted(optuna.study.get_all_study_names(storage))
    finally:
        storage.engine.dispose()
    assert len(names) == 1 and names[0].startswith("foamlib-search-") and names[0].endswith("-hyperband")
    calls = _counting_train(monkeypatch)
    with pytest.raises(ValueError, match="seed: 0 -> 1"):
        search(*small, **{**kwargs, "seed": 1})
    with pytest.raises(ValueError, match="hyperband_trials: 1 -> 2"):
        search(*small, **{**kwargs, "hyperband_trials": 2})
    with pytest.raises(ValueError, match=r"space.kernel_size: \[3, 4\] -> \[3\]"):
        search(*small, **{**kwargs, "space": dataclasses.replace(TINY_SPACE, kernel_size=(3,))})
    with pytest.raises(ValueError, match="train_config.batch_size: 8 -> 4"):
        search(*small, **{**kwargs, "train_config": TrainConfig(batch_size=4, noise_sigma=0.0)})
    other = ((train[0][8:16], train[1][8:16]), small[1])
    with pytest.raises(ValueError, match="data_fingerprint"):
        search(*other, **kwargs)
    assert not calls and not list(tmp_path.glob("*.stale-*"))
    with caplog.at_level("WARNING", logger="foamlib.hpo"):
        res = search(*other, **kwargs, on_mismatch="restart")
    assert len(calls) == 1 and len(res.trials) == 1
    assert len(list(tmp_path.glob("hpo.stale-*.db"))) == 1 and "started afresh" in caplog.text
    search(*other, **kwargs)  # the new search is now the stored one
    assert len(calls) == 1


def test_storage_restores_logging_and_no_storage_writes_nothing(data, tmp_path, monkeypatch):
    train, val = data
    small = ((train[0][:8], train[1][:8]), (val[0][:4], val[1][:4]))
    monkeypatch.chdir(tmp_path)
    optuna.logging.set_verbosity(optuna.logging.DEBUG)
    try:
        search(*small, space=TINY_SPACE, hyperband_trials=1, bayes_trials=0, max_epochs=1, train_config=FAST)
        assert optuna.logging.get_verbosity() == optuna.logging.DEBUG
    finally:
        optuna.logging.set_verbosity(optuna.logging.INFO)
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(
    ("kwargs", "word"),
    [
        ({"hyperband_trials": 0}, "hyperband_trials"),
        ({"bayes_trials": -1}, "bayes_trials"),
        ({"max_epochs": 0}, "max_epochs"),
        ({"seed": -1}, "seed"),
        ({"train_config": {"epochs": 3}}, "train_config"),
        ({"storage": "sqlite:///hpo.db"}, "not a URL"),
        ({"storage": 3}, "storage"),
        ({"on_mismatch": "keep"}, "on_mismatch"),
    ],
)
def test_invalid_budgets_raise(data, kwargs, word):
    with pytest.raises(ValueError, match=word):
        search(*data, **kwargs)


def test_a_budget_of_a_wrong_type_raises_type_error(data):
    with pytest.raises(TypeError, match="^max_epochs must be an integer"):
        search(*data, max_epochs=1.5)


@pytest.mark.parametrize(
    "kwargs",
    [{"levels": ()}, {"kernel_size": (0, 3)}, {"pooling": ("min",)}, {"learning_rate": (1e-2, 1e-3)}, {"base_channels": (8, 8)}],
)
def test_invalid_search_spaces_raise(kwargs):
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        SearchSpace(**kwargs)


def test_default_and_smoke_spaces():
    assert SearchSpace().levels == (3, 4, 5) and SearchSpace().learning_rate == (1e-4, 3e-3)
    assert max(SMOKE_SPACE.levels) <= 3
