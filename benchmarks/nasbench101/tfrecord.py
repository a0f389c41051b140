"""TFRecord files without TensorFlow (SPEC §2): framing, masked CRC32C, a reader and a writer.

A record is: uint64 little-endian payload length, uint32 masked CRC32C of those 8 bytes, the
payload, uint32 masked CRC32C of the payload. The reader checks both checksums.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterable, Iterator
from pathlib import Path

from benchmarks.cache import atomic_write
from benchmarks.errors import DataFileError

_HEADER = struct.Struct("<QI")
_FOOTER = struct.Struct("<I")
_MASK_DELTA = 0xA282EAD8
FETCH_HINT = "python -m harness fetch nasbench101"


def _crc32c_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return table


def crc32c_pure(data: bytes, value: int = 0) -> int:
    """CRC32C (Castagnoli) in pure Python, table-driven: the fallback when `crc32c` is missing (slow).

    value: the CRC of the data before `data`, to continue it (as `crc32c.crc32c` does)."""
    table = _CRC_TABLE
    crc = value ^ 0xFFFFFFFF
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


_CRC_TABLE = _crc32c_table()
try:
    from crc32c import crc32c
except ImportError:  # pragma: no cover - exercised only where the package is missing
    crc32c = crc32c_pure


def masked_crc32c(data: bytes) -> int:
    """The masked CRC32C TFRecord stores: rotate right by 15 bits, add 0xa282ead8 (mod 2^32)."""
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


def file_crc32c(path: str | os.PathLike) -> str:
    """CRC32C of a whole file as 8 hex digits (hardware CRC: about 0.15 s for 500 MB in the page cache)."""
    crc = 0
    buffer = bytearray(1 << 24)
    view = memoryview(buffer)
    with open(path, "rb", buffering=0) as f:
        while size := f.readinto(buffer):
            crc = crc32c(view[:size], crc)
    return f"{crc:08x}"


def corrupt_record_error(path: str | os.PathLike, offset: int, problem: str) -> DataFileError:
    """The error for a bad record: names the file and the record's byte offset, and the fix."""
    return DataFileError(
        f"{path}: record at byte offset {offset}: {problem}; the file is corrupt: delete it and "
        f"download it again (`{FETCH_HINT}`)"
    )


_OTHER_FORMATS = {
    b"PK\x03\x04": "a zip archive (a .npz?)",
    b"\x1f\x8b": "gzip-compressed",
    b"\x93NUMPY": "a .npy array",
}
"""File signatures of formats a NAS-Bench-101 .tfrecord is mistaken for."""


def not_a_tfrecord_error(path: str | os.PathLike, start: bytes) -> DataFileError:
    """The error for a file whose first record header is not a TFRecord's: what it looks like
    instead, and both fixes (another file, or a fresh download of a damaged one)."""
    kind = next((name for magic, name in _OTHER_FORMATS.items() if start.startswith(magic)), None)
    looks = f"it is {kind}" if kind else "its first bytes are not a record header"
    return DataFileError(
        f"{path} is not a TFRecord file ({looks}): give the NAS-Bench-101 .tfrecord (e.g. "
        f"nasbench_only108.tfrecord); if it is one, it is damaged: delete it and download it again (`{FETCH_HINT}`)"
    )


def iter_records(path: str | os.PathLike) -> Iterator[tuple[int, bytes]]:
    """Yield (byte offset of the record in the file, payload) for every record of a TFRecord file.

    Raises `DataFileError` (naming the file and the offset) on a truncated record, a CRC mismatch
    or a length field larger than what is left of the file (nothing that size is allocated).
    """
    path = Path(path)
    with open(path, "rb", buffering=1 << 20) as f:
        read = f.read
        size = os.fstat(f.fileno()).st_size
        offset = 0
        while header := read(_HEADER.size):
            if len(header) < _HEADER.size:
                raise corrupt_record_error(path, offset, f"truncated header ({len(header)} of 12 bytes)")
            length, length_crc = _HEADER.unpack(header)
            if masked_crc32c(header[:8]) != length_crc:
                if offset == 0:
                    raise not_a_tfrecord_error(path, header)
                raise corrupt_record_error(path, offset, "CRC mismatch in the length field")
            left = size - offset - _HEADER.size
            if length + _FOOTER.size > left:
                raise corrupt_record_error(
                    path,
                    offset,
                    f"truncated record or corrupt length: the length field says {length} bytes, but only "
                    f"{max(left - _FOOTER.size, 0)} are left in the file",
                )
            body = read(length + _FOOTER.size)
            payload = body[:length]
            if masked_crc32c(payload) != _FOOTER.unpack_from(body, length)[0]:
                raise corrupt_record_error(path, offset, "CRC mismatch in the payload")
            yield offset, payload
            offset += _HEADER.size + length + _FOOTER.size


def encode_record(payload: bytes) -> bytes:
    """One framed record: header (length + its masked CRC), payload, masked CRC of the payload."""
    length = struct.pack("<Q", len(payload))
    return length + _FOOTER.pack(masked_crc32c(length)) + payload + _FOOTER.pack(masked_crc32c(payload))


def write_tfrecord(path: str | os.PathLike, payloads: Iterable[bytes]) -> int:
    """Write `payloads` as a TFRecord file, atomically (nothing is left at `path` on error).

    Returns the number of records written.
    """
    count = 0

    def write(tmp: Path) -> None:
        nonlocal count
        with open(tmp, "wb", buffering=1 << 20) as f:
            for payload in payloads:
                f.write(encode_record(payload))
                count += 1

    atomic_write(path, write)
    return count
