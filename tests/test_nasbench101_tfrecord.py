"""TFRecord framing and masked CRC32C: round trip, and clear errors on damaged files."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.errors import DataFileError
from benchmarks.nasbench101.tfrecord import (
    crc32c,
    crc32c_pure,
    encode_record,
    iter_records,
    masked_crc32c,
    write_tfrecord,
)

PAYLOADS = [b"first", b"", b"x" * 1000, "caf\u00e9".encode()]


def test_crc32c_known_vector_and_fallback() -> None:
    assert crc32c(b"123456789") == 0xE3069283
    assert crc32c_pure(b"123456789") == 0xE3069283
    for data in PAYLOADS:
        assert crc32c_pure(data) == crc32c(data)


def test_masked_crc_formula() -> None:
    crc = crc32c(b"abc")
    assert masked_crc32c(b"abc") == ((((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF)


def test_round_trip_offsets(tmp_path: Path) -> None:
    path = tmp_path / "a.tfrecord"
    assert write_tfrecord(path, PAYLOADS) == len(PAYLOADS)
    records = list(iter_records(path))
    assert [payload for _, payload in records] == PAYLOADS
    offsets = [0]
    for payload in PAYLOADS[:-1]:
        offsets.append(offsets[-1] + len(encode_record(payload)))
    assert [offset for offset, _ in records] == offsets
    assert path.stat().st_size == offsets[-1] + len(encode_record(PAYLOADS[-1]))


def damaged(tmp_path: Path, change) -> tuple[Path, int]:
    """A file of `PAYLOADS` passed through change(bytes, offset of record 2) -> bytes."""
    path = tmp_path / "bad.tfrecord"
    offset = len(encode_record(PAYLOADS[0])) + len(encode_record(PAYLOADS[1]))
    data = b"".join(encode_record(p) for p in PAYLOADS)
    path.write_bytes(change(bytearray(data), offset))
    return path, offset


def flip(data: bytearray, at: int) -> bytes:
    data[at] ^= 0x01
    return bytes(data)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda data, offset: flip(data, offset + 12 + 500), "CRC mismatch in the payload"),
        (lambda data, offset: flip(data, offset + 1), "CRC mismatch in the length field"),
        (lambda data, offset: bytes(data[: offset + 12 + 10]), "truncated record"),
        (lambda data, offset: bytes(data[: offset + 5]), "truncated header"),
    ],
    ids=["payload-byte", "length-byte", "truncated-body", "truncated-header"],
)
def test_damage_names_file_and_offset(tmp_path: Path, change, message: str) -> None:
    path, offset = damaged(tmp_path, change)
    with pytest.raises(DataFileError) as caught:
        list(iter_records(path))
    text = str(caught.value)
    assert str(path) in text and f"byte offset {offset}:" in text and message in text
    assert "python -m harness fetch nasbench101" in text and "corrupt" in text


@pytest.mark.parametrize(
    ("start", "looks"),
    [(b"PK\x03\x04" + bytes(40), "it is a zip archive (a .npz?)"), (b"{}" + bytes(40), "are not a record header")],
)
def test_a_file_of_another_kind_is_named_as_such(tmp_path: Path, start: bytes, looks: str) -> None:
    path = tmp_path / "table.tfrecord"
    path.write_bytes(start)
    with pytest.raises(DataFileError) as caught:
        list(iter_records(path))
    text = str(caught.value)
    assert f"{path} is not a TFRecord file" in text and looks in text and "give the NAS-Bench-101 .tfrecord" in text


def test_writer_leaves_nothing_on_error(tmp_path: Path) -> None:
    def payloads():
        yield b"one"
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        write_tfrecord(tmp_path / "x.tfrecord", payloads())
    assert list(tmp_path.iterdir()) == []
