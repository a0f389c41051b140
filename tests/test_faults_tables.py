"""Bad NAS-Bench-101 tables (issue #13, items 3 and 4): values checked on conversion, a model's
records must agree on its cell, an impossible length is corruption, and an edited source is
converted again even when its size and mtime were kept."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest

from benchmarks.errors import DataFileError
from benchmarks.nasbench101 import NASBench101
from benchmarks.nasbench101.convert import convert, is_current
from benchmarks.nasbench101.tfrecord import crc32c_pure, encode_record, file_crc32c, masked_crc32c, write_tfrecord
from tests.test_nasbench101_table import CHAIN_HASH, payload

OTHER = "1" * 32


def expect_offset_error(tmp_path: Path, records: list[bytes], bad: int, message: str) -> None:
    """Converting `records` fails naming record number `bad`'s byte offset and `message`; no cache is left."""
    source = tmp_path / "bad.tfrecord"
    write_tfrecord(source, records)
    offset = sum(len(encode_record(r)) for r in records[:bad])
    with pytest.raises(DataFileError) as caught:
        NASBench101.load(source)
    assert f"{source}: record at byte offset {offset}:" in str(caught.value)
    assert message in str(caught.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.tfrecord"]


@pytest.mark.parametrize(
    ("bad_record", "message"),
    [
        (payload(test=float("nan")), "final_test_accuracy is nan, expected a fraction in [0, 1]"),
        (payload(test=7.5), "final_test_accuracy is 7.5, expected a fraction in [0, 1]"),
        (payload(valid=-0.1), "final_validation_accuracy is -0.1"),
        (payload(time=float("inf")), "final_training_time is inf, expected a number of seconds >= 0"),
        (payload(time=-3.0), "final_training_time is -3.0"),
    ],
    ids=["nan-accuracy", "accuracy-above-1", "negative-accuracy", "infinite-time", "negative-time"],
)
def test_implausible_values_are_refused(tmp_path: Path, bad_record: bytes, message: str) -> None:
    expect_offset_error(tmp_path, [payload(module_hash=OTHER), payload(), bad_record], 2, message)


def test_negative_parameter_count_is_refused(tmp_path: Path) -> None:
    expect_offset_error(tmp_path, [payload(module_hash=OTHER), payload(params=-5)], 1, "trainable_parameters is -5")


@pytest.mark.parametrize(
    ("adjacency", "ops"),
    [
        ("010001000", "input,conv1x1-bn-relu,output"),
        ("011001000", "input,conv3x3-bn-relu,output"),
        ("010001000", "input,conv5x5,output"),
    ],
    ids=["other-op", "other-edges", "unknown-op"],
)
def test_a_repeat_with_another_cell_is_refused(tmp_path: Path, adjacency: str, ops: str) -> None:
    records = [payload(), payload(module_hash=OTHER), payload(adjacency=adjacency, ops=ops)]
    expect_offset_error(tmp_path, records, 2, f"model {CHAIN_HASH} has the cell")


def test_huge_length_field_is_corruption_not_memory_error(tmp_path: Path) -> None:
    source = tmp_path / "huge.tfrecord"
    length = struct.pack("<Q", 1 << 40)
    header = length + struct.pack("<I", masked_crc32c(length))
    source.write_bytes(encode_record(payload()) + header + b"x" * 100)
    with pytest.raises(DataFileError, match=r"byte offset \d+: truncated record or corrupt length: .* 1099511627776"):
        convert(source)


def test_source_edited_in_place_is_converted_again(tmp_path: Path) -> None:
    source = tmp_path / "t.tfrecord"
    write_tfrecord(source, [payload(test=0.5)])
    cache = convert(source)
    assert is_current(cache, source)
    stat = source.stat()
    data = source.read_bytes()
    write_tfrecord(source, [payload(test=0.25)])
    assert len(source.read_bytes()) == len(data)
    os.utime(source, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert not is_current(cache, source)
    assert NASBench101.load(source).query(CHAIN_HASH)[0]["final_test_accuracy"] == 0.25


def test_file_checksum_is_the_crc32c_of_the_content(tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(bytes(range(256)) * 1000)
    assert file_crc32c(path) == f"{crc32c_pure(bytes(range(256)) * 500, crc32c_pure(bytes(range(256)) * 500)):08x}"
