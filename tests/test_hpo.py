"""Tests of foamlib.hpo: the two-stage (Hyperband, then TPE) architecture search."""

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


def test_storage_resumes_a_search_and_logging_is_restored(data, tmp_path):
    train, val = data
    small = ((train[0][:8], train[1][:8]), (val[0][:4], val[1][:4]))
    url = f"sqlite:///{tmp_path / 'hpo.db'}"
    optuna.logging.set_verbosity(optuna.logging.DEBUG)
    try:
        kwargs = dict(space=TINY_SPACE, max_epochs=1, train_config=FAST, storage=url)
        first = search(*small, hyperband_trials=2, bayes_trials=0, **kwargs)
        assert optuna.logging.get_verbosity() == optuna.logging.DEBUG
        more = search(*small, hyperband_trials=3, bayes_trials=1, **kwargs)
    finally:
        optuna.logging.set_verbosity(optuna.logging.INFO)
    assert len(first.trials) == 2
    assert list(more.trials["stage"]) == ["hyperband"] * 3 + ["bayes"]
    assert list(more.trials["params"])[:2] == list(first.trials["params"])


@pytest.mark.parametrize(
    ("kwargs", "word"),
    [
        ({"hyperband_trials": 0}, "hyperband_trials"),
        ({"bayes_trials": -1}, "bayes_trials"),
        ({"max_epochs": 0}, "max_epochs"),
        ({"max_epochs": 1.5}, "max_epochs"),
        ({"seed": -1}, "seed"),
        ({"train_config": {"epochs": 3}}, "train_config"),
    ],
)
def test_invalid_budgets_raise(data, kwargs, word):
    with pytest.raises(ValueError, match=word):
        search(*data, **kwargs)


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
