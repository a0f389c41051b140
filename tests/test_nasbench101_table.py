"""The converter and `NASBench101`: round trips, real values, vectorised queries, damaged inputs."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

import benchmarks.nasbench101.convert as convert_module
from benchmarks.errors import DataFileError, MissingFileError, OutOfDomainError
from benchmarks.nasbench1shot1 import get_search_space
from benchmarks.nasbench101 import ModelSpec, NASBench101
from benchmarks.nasbench101.convert import convert, default_cache_path, is_current
from benchmarks.nasbench101.record import EvaluationData, ModelMetrics, cell_strings, encode_payload
from benchmarks.nasbench101.synthetic import write_synthetic
from benchmarks.nasbench101.tfrecord import encode_record, write_tfrecord

FRAGMENTS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "nb101-fragments"
STAT_KEYS = ("test_error", "test_error_std", "valid_error", "valid_error_std", "params")
CHAIN_HASH = ModelSpec(np.eye(3, k=1), ["input", "conv3x3-bn-relu", "output"]).hash()


@pytest.fixture(scope="module")
def space1(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A synthetic .tfrecord with the 2,685 models of space 1 (3 repeats, 108 epochs)."""
    path = tmp_path_factory.mktemp("space1") / "space1.tfrecord"
    write_synthetic(path, spaces=(1,))
    return path


@pytest.fixture(scope="module")
def table(space1: Path) -> NASBench101:
    return NASBench101.load(space1)


def payload(
    module_hash: str = CHAIN_HASH,
    epochs: int = 108,
    adjacency: str = "010001000",
    ops: str = "input,conv3x3-bn-relu,output",
    test: float = 0.9,
    valid: float = 0.91,
    params: int = 1234,
    time: float = 100.0,
) -> bytes:
    final = EvaluationData(
        current_epoch=epochs, training_time=time, train_accuracy=1.0, validation_accuracy=valid, test_accuracy=test
    )
    metrics = ModelMetrics(
        evaluation_data=[EvaluationData(), EvaluationData(current_epoch=epochs / 2), final], trainable_parameters=params
    )
    return encode_payload(module_hash, epochs, adjacency, ops, metrics)


def test_round_trip_space1(table: NASBench101, space1: Path) -> None:
    hashes = get_search_space(1).hashes()
    assert table.synthetic and table.name == "synthetic" and table.metadata["synthetic"] is True
    assert table.num_models == len(hashes) == 2685 and table.budgets == [108]
    assert table.metadata["num_records"] == 3 * 2685
    assert table.metadata["source"]["name"] == space1.name
    assert all(h in table for h in hashes[:50]) and "0" * 32 not in table and "nonsense" not in table
    rows = table.query(hashes[0])
    assert [row["repeat"] for row in rows] == [0, 1, 2]
    assert set(rows[0]) == {
        "repeat",
        "epochs",
        "halfway_train_accuracy",
        "halfway_validation_accuracy",
        "halfway_test_accuracy",
        "halfway_training_time",
        "final_train_accuracy",
        "final_validation_accuracy",
        "final_test_accuracy",
        "final_training_time",
        "trainable_parameters",
    }
    spec = next(get_search_space(1).enumerate())
    assert table.query(spec) == rows and spec in table
    assert table.spec(hashes[0]).hash() == hashes[0]
    errors = table.mean_errors(hashes[0])
    tests = np.array([row["final_test_accuracy"] for row in rows])
    assert errors["test_error"] == 1 - tests.mean() and errors["test_error_std"] == np.std(1 - tests)


def test_query_many_agrees_with_query(table: NASBench101) -> None:
    hashes = get_search_space(1).hashes()
    stats = table.query_many([*hashes, "0" * 32, "not a hash", hashes[0].upper()])
    assert stats["found"].tolist() == [True] * len(hashes) + [False, False, True]
    for key in STAT_KEYS:
        assert np.isnan(stats[key][-3:-1]).all()
        expected = [table.mean_errors(h)[key] for h in hashes[::37]]
        np.testing.assert_array_equal(stats[key][: len(hashes)][::37], expected)
    assert table.query_many([])["found"].shape == (0,)


def test_query_out_of_domain(table: NASBench101) -> None:
    with pytest.raises(OutOfDomainError, match="not in the synthetic table"):
        table.query("0" * 32)
    with pytest.raises(OutOfDomainError, match="32 hex"):
        table.mean_errors("xyz")
    with pytest.raises(OutOfDomainError, match=r"available: \[108\]"):
        table.query(get_search_space(1).hashes()[0], epochs=36)
    with pytest.raises(OutOfDomainError, match=r"available: \[108\]"):
        table.query_many(get_search_space(1).hashes(), epochs=4)


def test_space1_best_errors_are_plausible(table: NASBench101) -> None:
    best_test, best_valid = get_search_space(1).best_errors(table)
    assert 0.03 < best_test < 0.12 and 0.03 < best_valid < 0.12


def test_second_conversion_is_skipped(space1: Path, table: NASBench101, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = default_cache_path(space1)
    assert cache == space1.with_name("space1.nb101.npz") and is_current(cache, space1)
    before = cache.stat().st_mtime_ns

    def fail(*args, **kwargs):
        raise AssertionError("converted again")

    monkeypatch.setattr(convert_module, "read_tfrecord_table", fail)
    assert convert(space1) == cache and NASBench101.load(space1).num_models == 2685
    assert cache.stat().st_mtime_ns == before


def test_changed_source_is_converted_again(tmp_path: Path) -> None:
    source = tmp_path / "t.tfrecord"
    write_tfrecord(source, [payload(test=0.5)])
    assert NASBench101.load(source).query(CHAIN_HASH)[0]["final_test_accuracy"] == 0.5
    write_tfrecord(source, [payload(test=0.75), payload(test=0.25)])
    os.utime(source, ns=(0, 10**18))
    table = NASBench101.load(source)
    assert [row["final_test_accuracy"] for row in table.query(CHAIN_HASH)] == [0.75, 0.25]
    assert not table.synthetic and table.name == "nasbench101"


def test_cache_falls_back_to_cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = tmp_path / "ro" / "t.tfrecord"
    source.parent.mkdir()
    write_tfrecord(source, [payload()])
    monkeypatch.setattr(convert_module.os, "access", lambda path, mode: False)
    cache = default_cache_path(source)
    assert cache.parent == Path(os.environ["NAS_HARNESS_CACHE"]) and cache.name.startswith("t-")
    assert NASBench101.load(source).path == cache


def test_real_values_round_trip_exactly(tmp_path: Path) -> None:
    """The real NAS-Bench-101 values of the fragments (one repeat's validation accuracy at each
    budget, training time, parameters) written as records and read back unchanged."""
    file = FRAGMENTS / "nb101_1k_with_specs.json"
    if not file.is_file():
        pytest.skip(f"{file} is not there (the offline NAS-Bench-101 fragments beside the repository)")
    real = json.loads(file.read_text())
    payloads = []
    for i, key in enumerate(real["key"]):
        keep = [v for v, label in enumerate(real["operations"][i]) if label != -3]
        spec = ModelSpec.from_labels(
            np.asarray(real["adjacency"][i])[np.ix_(keep, keep)], [real["operations"][i][v] for v in keep]
        )
        raw_adjacency, raw_operations = cell_strings(spec.matrix, spec.ops)
        for epochs in (4, 12, 36, 108):
            accuracy = real[f"{epochs}_final_validation_accuracy"][i]
            final = EvaluationData(
                current_epoch=epochs, validation_accuracy=accuracy, training_time=real["final_training_time"][i]
            )
            metrics = ModelMetrics(
                evaluation_data=[EvaluationData(), EvaluationData(), final],
                trainable_parameters=real["trainable_parameters"][i],
            )
            payloads.append(encode_payload(key, epochs, raw_adjacency, raw_operations, metrics))
    write_tfrecord(tmp_path / "real.tfrecord", payloads)
    table = NASBench101.load(tmp_path / "real.tfrecord")
    assert table.name == "nasbench101" and table.budgets == [4, 12, 36, 108] and table.num_models == 1000
    for epochs in (4, 12, 36, 108):
        stats = table.query_many(real["key"], epochs=epochs)
        assert stats["found"].all()
        np.testing.assert_array_equal(1 - stats["valid_error"], real[f"{epochs}_final_validation_accuracy"])
        np.testing.assert_array_equal(stats["params"], real["trainable_parameters"])
        np.testing.assert_array_equal(stats["valid_error_std"], 0.0)
    for i in range(0, 1000, 97):
        (row,) = table.query(real["key"][i], epochs=108)
        assert row["final_validation_accuracy"] == real["108_final_validation_accuracy"][i]
        assert row["final_training_time"] == real["final_training_time"][i]
        assert row["trainable_parameters"] == real["trainable_parameters"][i]


@pytest.mark.parametrize(
    ("records", "message"),
    [
        ([payload(), b"[not json"], "not a JSON array"),
        ([payload(), payload(module_hash="1" * 32, ops="input,conv5x5,output")], "unknown operation"),
        ([payload(module_hash="1" * 32, adjacency="01000")], "not a VxV matrix"),
        ([payload(module_hash="1" * 32, adjacency="010101000")], "not strictly upper-triangular"),
        ([payload(module_hash="XYZ")], "not 32 lowercase hex"),
        ([json.dumps(["1" * 32, 108, "010001000", "input,conv3x3-bn-relu,output", "!!"]).encode()], "ModelMetrics"),
    ],
    ids=["bad-json", "unknown-op", "not-square", "lower-triangle", "bad-hash", "bad-base64"],
)
def test_bad_records_name_the_offset_and_leave_no_cache(tmp_path: Path, records: list[bytes], message: str) -> None:
    source = tmp_path / "bad.tfrecord"
    write_tfrecord(source, records)
    offset = sum(len(encode_record(r)) for r in records[:-1])
    with pytest.raises(DataFileError) as caught:
        NASBench101.load(source)
    assert f"{source}: record at byte offset {offset}:" in str(caught.value) and message in str(caught.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.tfrecord"]


def test_damaged_file_leaves_no_cache(space1: Path, tmp_path: Path) -> None:
    source = tmp_path / "cut.tfrecord"
    source.write_bytes(space1.read_bytes()[:100_000])
    with pytest.raises(DataFileError, match="truncated"):
        convert(source)
    source.write_bytes(b"")
    with pytest.raises(DataFileError, match="no records"):
        convert(source)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cut.tfrecord"]


def test_missing_file_says_how_to_get_it(tmp_path: Path) -> None:
    with pytest.raises(MissingFileError) as caught:
        NASBench101.load(tmp_path / "nasbench_only108.tfrecord")
    assert "python -m harness fetch nasbench101" in str(caught.value)
    assert "--benchmark synthetic" in str(caught.value)


def test_not_a_cache(tmp_path: Path) -> None:
    bogus = tmp_path / "x.npz"
    bogus.write_bytes(b"junk")
    with pytest.raises(DataFileError, match="not a NAS-Bench-101 table cache"):
        NASBench101.load(bogus)
