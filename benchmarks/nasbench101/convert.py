"""Convert an official NAS-Bench-101 .tfrecord into the harness's columnar cache (one .npz).

Cache layout (uncompressed .npz, no pickles), M models sorted by hash, R records sorted by
(model, epochs, repeat) so a model's records are contiguous:
- `hashes` (M,) S16: the 16 raw bytes of each model hash, sorted (for `np.searchsorted`);
- `adjacency` (M, 7) uint8: `np.packbits` of the 7x7 adjacency, zero-padded past V vertices;
- `labels` (M, 7) int8: op labels (`OP_LABELS`), -3 past V vertices;
- `trainable_parameters` (M,) int32 (from a model's first record, as the official API does);
- `model_offsets` (M + 1,) int64: records of model i are rows offsets[i]:offsets[i + 1];
- `model`, `epochs`, `repeat` (R,) int32 / int32 / int16; `RECORD_COLUMNS` (R,) float64
  (accuracies as fractions in [0, 1], training times in seconds);
- `metadata`: UTF-8 JSON (format version, source file name/size/mtime/CRC32C, counts, budgets, `synthetic`).
The repeat number is the order in which a (model, epochs) pair's records appear in the file.

A cache is served for a source only when the source's name, size, mtime and CRC32C of its whole
content are those recorded at conversion: a file edited in place with its size and mtime kept is
converted again. The full checksum is a choice over a sampled one (which can miss a one-byte
edit): with the hardware CRC32C it costs about 0.15 s per 500 MB when the file is in the page
cache (more on a cold disk), well inside the 1 s a load may take.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import zipfile
from array import array
from pathlib import Path

import numpy as np
from tqdm import tqdm

from benchmarks.cache import atomic_write, build_lock, cache_dir, remove_orphans
from benchmarks.errors import DataFileError, HarnessError, MissingFileError, brief
from benchmarks.nasbench101.model_spec import MAX_VERTICES, PADDING_LABEL
from benchmarks.nasbench101.record import SYNTHETIC_PREFIX, check_cell, decode_payload
from benchmarks.nasbench101.tfrecord import FETCH_HINT, corrupt_record_error, file_crc32c, iter_records

FORMAT = "nas-harness/nasbench101-table"
FORMAT_VERSION = 1
CACHE_SUFFIX = ".nb101.npz"
RECORD_COLUMNS = (
    "halfway_train_accuracy",
    "halfway_validation_accuracy",
    "halfway_test_accuracy",
    "halfway_training_time",
    "final_train_accuracy",
    "final_validation_accuracy",
    "final_test_accuracy",
    "final_training_time",
)
CACHE_ARRAYS = (
    "hashes",
    "adjacency",
    "labels",
    "trainable_parameters",
    "model_offsets",
    "model",
    "epochs",
    "repeat",
    *RECORD_COLUMNS,
)
_READ_ERRORS = (OSError, ValueError, KeyError, zipfile.BadZipFile)
MISSING_HINT = (
    "download it with `python -m harness fetch nasbench101` (add --full for all budgets), "
    "or use `--benchmark synthetic` for made-up data that is not NAS-Bench-101"
)


def check_table_path(path: Path) -> None:
    """Raise `MissingFileError` for a table path that does not exist, `DataFileError` for a folder."""
    if path.is_dir():
        raise DataFileError(
            f"NAS-Bench-101 table {path} is a folder, not a file: give the .tfrecord (or its {CACHE_SUFFIX} cache) "
            "inside it"
        )
    if not path.exists():
        raise MissingFileError(f"NAS-Bench-101 table {path} does not exist; {MISSING_HINT}")


def default_cache_path(source: str | os.PathLike) -> Path:
    """`X.tfrecord` -> `X.nb101.npz` beside it; in `cache_dir()` if that folder is not writable."""
    source = Path(source)
    beside = source.with_name(source.stem + CACHE_SUFFIX)
    if os.access(source.parent, os.W_OK) or is_current(beside, source):
        return beside
    digest = hashlib.md5(str(source.resolve()).encode()).hexdigest()[:8]
    return cache_dir() / f"{source.stem}-{digest}{CACHE_SUFFIX}"


def _metadata(arrays: np.lib.npyio.NpzFile, cache: str | os.PathLike) -> dict:
    metadata = json.loads(arrays["metadata"].tobytes().decode("utf-8"))
    if metadata.get("format") != FORMAT:
        raise DataFileError(
            f"{cache} is not a NAS-Bench-101 table cache (format {metadata.get('format')!r}): give the .tfrecord or "
            f"the {CACHE_SUFFIX} made from it"
        )
    return metadata


def _not_a_cache(cache: str | os.PathLike, err: Exception) -> DataFileError:
    return DataFileError(
        f"{cache} is not a NAS-Bench-101 table cache ({brief(err)}): give the .tfrecord or the {CACHE_SUFFIX} made "
        "from it (a damaged cache: delete it and convert again)"
    )


def read_metadata(cache: str | os.PathLike) -> dict:
    """The metadata of a cache file, without loading its arrays. Raises `DataFileError`."""
    try:
        with np.load(cache, allow_pickle=False) as arrays:
            return _metadata(arrays, cache)
    except DataFileError:
        raise
    except _READ_ERRORS as err:
        raise _not_a_cache(cache, err) from None


def load_cache(cache: str | os.PathLike) -> tuple[dict[str, np.ndarray], dict]:
    """(arrays named `CACHE_ARRAYS`, metadata) of a cache file. Raises `DataFileError`."""
    try:
        with np.load(cache, allow_pickle=False) as arrays:
            metadata = _metadata(arrays, cache)
            if metadata.get("format_version") != FORMAT_VERSION:
                raise DataFileError(
                    f"{cache} has cache format version {metadata.get('format_version')}, this harness reads "
                    f"{FORMAT_VERSION}: convert the .tfrecord again (`python -m harness convert SOURCE --force`)"
                )
            return {name: arrays[name] for name in CACHE_ARRAYS}, metadata
    except DataFileError:
        raise
    except _READ_ERRORS as err:
        raise _not_a_cache(cache, err) from None


def _source_stamp(source: Path) -> dict:
    """What identifies a source file's content: name, size (bytes), mtime (ns), CRC32C (hex)."""
    stat = source.stat()
    return {"name": source.name, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "crc32c": file_crc32c(source)}


def is_current(cache: str | os.PathLike, source: str | os.PathLike) -> bool:
    """Whether `cache` exists, is of the current format version and was made from `source` as it
    is now: same name, size and mtime, then (only if those match) the same CRC32C of the content."""
    cache, source = Path(cache), Path(source)
    if not cache.is_file():
        return False
    try:
        metadata = read_metadata(cache)
    except DataFileError:
        return False
    recorded, stat = metadata.get("source") or {}, source.stat()
    if metadata.get("format_version") != FORMAT_VERSION or recorded.get("name") != source.name:
        return False
    if (recorded.get("size"), recorded.get("mtime_ns")) != (stat.st_size, stat.st_mtime_ns):
        return False
    return recorded.get("crc32c") == file_crc32c(source)


def convert(
    source: str | os.PathLike, out: str | os.PathLike | None = None, *, force: bool = False, progress: bool = False
) -> Path:
    """Convert `source` (.tfrecord) into a cache at `out` (default `default_cache_path`); return its path.

    Skipped when the cache is current (`is_current`) unless `force`. Written atomically: on any
    error nothing is left at `out`; two processes converting into the same `out` convert once
    (the second waits for the first, see `build_lock`). Raises `MissingFileError`,
    `DataFileError`, and `HarnessError` when `out` cannot be written.
    """
    source = Path(source)
    check_table_path(source)
    out = Path(out) if out is not None else default_cache_path(source)
    if not force and is_current(out, source):
        return out
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(build_lock(out))
            remove_orphans(out)
        except OSError as err:
            raise _unwritable(out, err) from None
        if not force and is_current(out, source):
            return out
        return _write_cache(source, out, progress)


def _unwritable(out: Path, err: OSError) -> HarnessError:
    return HarnessError(f"cannot write the cache {out} ({err.strerror or err}); choose another --out")


def _write_cache(source: Path, out: Path, progress: bool) -> Path:
    """Convert `source` into `out` (atomically); see `convert`."""
    stamp = _source_stamp(source)
    arrays, synthetic = read_tfrecord_table(source, progress=progress)
    budgets = sorted(int(e) for e in np.unique(arrays["epochs"]))
    metadata = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "source": stamp,
        "num_models": len(arrays["hashes"]),
        "num_records": len(arrays["epochs"]),
        "budgets": budgets,
        "synthetic": synthetic,
    }
    arrays["metadata"] = np.frombuffer(json.dumps(metadata).encode("utf-8"), dtype=np.uint8)

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)

    try:
        return atomic_write(out, write)
    except OSError as err:
        raise _unwritable(out, err) from None


def read_tfrecord_table(source: Path, progress: bool = False) -> tuple[dict[str, np.ndarray], bool]:
    """Parse every record of `source`: (the cache arrays, whether any record is synthetic).

    Every record of a model must carry the model's cell (as the official API asserts), and its
    values must be plausible (`check_values`). progress: show a progress bar (bytes read).
    Raises `DataFileError` naming the record's byte offset.
    """
    index: dict[str, int] = {}
    cells: list[tuple[str, list[int]]] = []
    raw_cells: list[tuple[str, str]] = []
    parameters = array("i")
    model, epochs, offsets = array("i"), array("i"), array("q")
    values = array("d")
    synthetic = False
    bar = tqdm(total=source.stat().st_size, unit="B", unit_scale=True, desc=source.name, disable=not progress)
    with bar:
        for count, (offset, payload) in enumerate(iter_records(source)):
            try:
                module_hash, record_epochs, raw_adjacency, raw_operations, metrics = decode_payload(payload)
                number = index.get(module_hash)
                if number is None:
                    cells.append((raw_adjacency, check_cell(module_hash, raw_adjacency, raw_operations)))
                    raw_cells.append((raw_adjacency, raw_operations))
                    parameters.append(metrics.trainable_parameters)
                    number = index[module_hash] = len(index)
                elif raw_cells[number] != (raw_adjacency, raw_operations):
                    first = offsets[model.index(number)]
                    raise DataFileError(
                        f"model {module_hash} has the cell {raw_adjacency!r} / {raw_operations!r} here but "
                        f"{raw_cells[number][0]!r} / {raw_cells[number][1]!r} in its record at byte offset {first}"
                    )
            except DataFileError as err:
                raise corrupt_record_error(source, offset, str(err)) from None
            halfway, final = metrics.evaluation_data[1], metrics.evaluation_data[2]
            values.extend(
                (
                    halfway.train_accuracy,
                    halfway.validation_accuracy,
                    halfway.test_accuracy,
                    halfway.training_time,
                    final.train_accuracy,
                    final.validation_accuracy,
                    final.test_accuracy,
                    final.training_time,
                )
            )
            model.append(number)
            epochs.append(record_epochs)
            offsets.append(offset)
            synthetic = synthetic or final.checkpoint_path.startswith(SYNTHETIC_PREFIX)
            if count % 65536 == 65535:
                bar.update(offset - bar.n)
        bar.update(bar.total - bar.n)
    if not index:
        raise DataFileError(f"{source} holds no records: the file is empty; download it again (`{FETCH_HINT}`)")
    check_values(source, values, parameters, model, offsets)
    return _sorted_arrays(list(index), cells, parameters, model, epochs, values), synthetic


def check_values(source: Path, values: array, parameters: array, model: array, offsets: array) -> None:
    """Raise `DataFileError` naming the first record (by byte offset) with an accuracy that is not
    finite in [0, 1], a training time that is not finite and >= 0, or a negative parameter count.

    values: per record the `RECORD_COLUMNS`, flat; parameters: per model (in order of
    appearance); model, offsets: per record its model number and byte offset.
    """
    table = np.frombuffer(values, dtype=np.float64).reshape(-1, len(RECORD_COLUMNS))
    accuracy = np.array(["accuracy" in name for name in RECORD_COLUMNS])
    with np.errstate(invalid="ignore"):
        bad = ~np.isfinite(table) | (table < 0) | (accuracy & (table > 1))
    record_model = np.frombuffer(model, dtype=np.intc)
    negative = np.frombuffer(parameters, dtype=np.intc)[record_model] < 0
    rows = np.flatnonzero(bad.any(axis=1) | negative)
    if not len(rows):
        return
    row = int(rows[0])
    if negative[row]:
        problem = f"trainable_parameters is {parameters[record_model[row]]}, expected a count >= 0"
    else:
        column = int(np.flatnonzero(bad[row])[0])
        expected = "a fraction in [0, 1]" if accuracy[column] else "a number of seconds >= 0"
        problem = f"{RECORD_COLUMNS[column]} is {table[row, column]}, expected {expected}"
    raise corrupt_record_error(source, offsets[row], problem)


def _sorted_arrays(
    hashes: list[str],
    cells: list[tuple[str, list[int]]],
    parameters: array,
    model: array,
    epochs: array,
    values: array,
) -> dict[str, np.ndarray]:
    """Sort models by hash and records by (model, epochs, appearance); build the cache arrays.

    cells: (raw adjacency, labels) and parameters: per model in order of appearance; model,
    epochs: per record; values: per record the `RECORD_COLUMNS`, flat.
    """
    keys = np.array([bytes.fromhex(h) for h in hashes], dtype="S16")
    order = np.argsort(keys, kind="stable")
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    record_model = rank[np.frombuffer(model, dtype=np.intc)]
    record_epochs = np.frombuffer(epochs, dtype=np.intc).astype(np.int32)
    records = np.lexsort((np.arange(len(record_model)), record_epochs, record_model))
    record_model, record_epochs = record_model[records], record_epochs[records]
    starts = np.flatnonzero(np.r_[True, (np.diff(record_model) != 0) | (np.diff(record_epochs) != 0)])
    group_start = np.repeat(starts, np.diff(np.r_[starts, len(records)]))
    matrices = np.zeros((len(hashes), MAX_VERTICES, MAX_VERTICES), dtype=np.uint8)
    labels = np.full((len(hashes), MAX_VERTICES), PADDING_LABEL, dtype=np.int8)
    sizes = np.array([len(cell_labels) for _, cell_labels in cells])
    for size in np.unique(sizes).tolist():
        which = np.flatnonzero(sizes == size)
        rows = rank[which]
        text = "".join(cells[i][0] for i in which.tolist()).encode("ascii")
        matrices[rows, :size, :size] = (np.frombuffer(text, dtype=np.uint8) - ord("0")).reshape(-1, size, size)
        labels[rows, :size] = np.array([cells[i][1] for i in which.tolist()], dtype=np.int8)
    arrays = {
        "hashes": keys[order],
        "adjacency": np.packbits(matrices.reshape(len(hashes), -1), axis=1),
        "labels": labels,
        "trainable_parameters": np.frombuffer(parameters, dtype=np.intc)[order].astype(np.int32),
        "model_offsets": np.r_[0, np.cumsum(np.bincount(record_model, minlength=len(hashes)))].astype(np.int64),
        "model": record_model.astype(np.int32),
        "epochs": record_epochs,
        "repeat": (np.arange(len(records)) - group_start).astype(np.int16),
    }
    table = np.frombuffer(values, dtype=np.float64).reshape(-1, len(RECORD_COLUMNS))
    for column, name in enumerate(RECORD_COLUMNS):
        arrays[name] = table[records, column]
    return arrays
