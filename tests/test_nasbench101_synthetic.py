"""The synthetic table: which models, plausible deterministic numbers, always marked synthetic."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pytest

import benchmarks.nasbench101.synthetic as synthetic
from benchmarks.nasbench1shot1 import get_search_space
from benchmarks.nasbench101 import ModelSpec, NASBench101
from benchmarks.nasbench101.enumeration import cell_structures, random_models
from benchmarks.nasbench101.model_spec import LABEL_OPS
from benchmarks.nasbench101.synthetic import FULL_BUDGETS, choose_models, synthetic_numbers, write_synthetic


def test_models_are_the_union_of_the_spaces() -> None:
    cells = choose_models(spaces=(1, 2))
    expected = set(get_search_space(1).hashes()) | set(get_search_space(2).hashes())
    assert [c[0] for c in cells] == sorted(expected)
    for module_hash, matrix, labels in cells[::500]:
        assert ModelSpec(matrix, [LABEL_OPS[x] for x in labels]).hash() == module_hash


def test_padding_and_subset() -> None:
    space1 = {c[0] for c in choose_models(spaces=(1,))}
    padded = choose_models(spaces=(1,), models=len(space1) + 25, seed=3)
    hashes = [c[0] for c in padded]
    assert len(set(hashes)) == len(space1) + 25 and space1 < set(hashes) and hashes == sorted(hashes)
    for module_hash, matrix, labels in padded:
        if module_hash not in space1:
            assert ModelSpec(matrix, [LABEL_OPS[x] for x in labels]).hash() == module_hash
    assert [c[0] for c in choose_models(spaces=(1,), models=len(space1) + 25, seed=3)] == hashes
    subset = choose_models(spaces=(1,), models=40, seed=1)
    assert len(subset) == 40 and {c[0] for c in subset} < space1


def test_structures() -> None:
    """Cell shapes up to isomorphism; all of NAS-Bench-101 (423,624 models) is checked in docs/performance.md."""
    assert [len(cell_structures(v)) for v in range(2, 6)] == [1, 2, 10, 97]
    assert len(random_models(5, exclude=(), seed=0)) == 5


def test_numbers_are_plausible_and_deterministic() -> None:
    cells = choose_models(spaces=(1,))
    params, values = synthetic_numbers(cells, FULL_BUDGETS, 3, seed=0)
    again = synthetic_numbers(cells[::-1], FULL_BUDGETS, 3, seed=0)[1]
    other_seed = synthetic_numbers(cells, FULL_BUDGETS, 3, seed=1)[1]
    test = values["final_test_accuracy"]
    np.testing.assert_array_equal(again["final_test_accuracy"][::-1], test)  # a function of the model, not the order
    assert not np.array_equal(other_seed["final_test_accuracy"], test)
    at108 = test[:, -1, :]
    assert np.percentile(at108, 5) >= 0.80 and np.percentile(at108, 95) <= 0.95
    assert np.all(test[:, 0] < test[:, -1])  # 4 epochs worse than 108
    assert np.all(values["halfway_test_accuracy"] < test)
    assert np.abs(values["final_validation_accuracy"] - test).max() < 0.03
    assert np.all(np.diff(at108, axis=1) != 0)  # repeats differ
    assert params.min() > 1e5 and params.max() < 6e7
    times = values["final_training_time"]
    assert np.all(times[:, 0] < times[:, -1]) and 300 < np.median(times[:, -1]) < 10_000


def test_full_budgets_table(tmp_path: Path) -> None:
    path = tmp_path / "full.tfrecord"
    assert write_synthetic(path, spaces=(1,), models=30, budgets=FULL_BUDGETS, repeats=2) == (30, 240)
    table = NASBench101.load(path)
    assert table.budgets == [4, 12, 36, 108] and table.synthetic
    some = choose_models(spaces=(1,), models=30)[0][0]
    assert [(r["epochs"], r["repeat"]) for r in table.query(some, epochs=12)] == [(12, 0), (12, 1)]
    assert table.mean_errors(some, epochs=4)["test_error"] > table.mean_errors(some, epochs=108)["test_error"]


def test_default_table_is_built_once(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("NAS_HARNESS_CACHE", str(tmp_path))
    calls = []
    small = functools.partial(write_synthetic, spaces=(1,), models=20)

    def counting(path, **kwargs):
        calls.append(path)
        return small(path, **kwargs)

    monkeypatch.setattr(synthetic, "write_synthetic", counting)
    first = synthetic.synthetic_table()
    second = synthetic.synthetic_table()
    assert len(calls) == 1 and first.synthetic and second.name == "synthetic" and second.num_models == 20
    assert first.path == second.path and first.path.parent == tmp_path
    assert first.path.is_file() and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no scratch left
