"""A made-up NAS-Bench-101 table in the official TFRecord format, for machines without the real one.

Models: every model of the NAS-Bench-1Shot1 search spaces asked for, optionally padded with
random other NAS-Bench-101 models. Numbers: deterministic functions of the cell's structure
(op counts, depth, width) plus small noise seeded from the model hash, the seed and the repeat;
test accuracies mostly 0.80-0.95. Every record carries `checkpoint_path = "synthetic://..."`, so
the converter marks the table `synthetic` and nothing built on it passes as NAS-Bench-101.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from benchmarks.cache import CacheDamaged, cache_dir, load_or_build
from benchmarks.errors import DataFileError, OutOfDomainError
from benchmarks.nasbench1shot1.spaces import get_search_space
from benchmarks.nasbench101.convert import CACHE_SUFFIX, PADDING_LABEL, RECORD_COLUMNS, convert
from benchmarks.nasbench101.enumeration import NUM_MODELS, random_models
from benchmarks.nasbench101.model_spec import CONV1X1, CONV3X3, LABEL_OPS, MAX_VERTICES, MAXPOOL3X3, OP_LABELS
from benchmarks.nasbench101.record import (
    SYNTHETIC_PREFIX,
    EvaluationData,
    ModelMetrics,
    cell_strings,
    encode_payload,
)
from benchmarks.nasbench101.table import NASBench101, hash_keys
from benchmarks.nasbench101.tfrecord import write_tfrecord

SYNTHETIC_VERSION = 1
"""Bump when the made-up numbers change, so cached default tables are rebuilt."""
BUDGETS = (108,)
FULL_BUDGETS = (4, 12, 36, 108)
_CONV3X3, _CONV1X1, _MAXPOOL = (OP_LABELS[op] for op in (CONV3X3, CONV1X1, MAXPOOL3X3))
_CHUNK = 8192
"""Models whose records are made at once (bounds memory; the numbers do not depend on it)."""
Cell = tuple[str, np.ndarray, list[int]]
"""(hash, (V, V) adjacency, V op labels) of a pruned model."""


def space_models(spaces: Sequence[int]) -> list[Cell]:
    """The distinct models of NAS-Bench-1Shot1 spaces `spaces` (union), sorted by hash."""
    cells: dict[str, Cell] = {}
    for number in spaces:
        matrices, labels, hashes = get_search_space(number).model_arrays()
        sizes = (labels != PADDING_LABEL).sum(axis=1).tolist()
        for matrix, row, size, module_hash in zip(matrices, labels.tolist(), sizes, hashes.astype(str).tolist()):
            cells.setdefault(module_hash, (module_hash, matrix[:size, :size], row[:size]))
    return sorted(cells.values(), key=lambda cell: cell[0])


def choose_models(spaces: Sequence[int] = (1, 2, 3), models: int | None = None, seed: int = 0) -> list[Cell]:
    """The models of a synthetic table, sorted by hash.

    models: total number wanted; None = the spaces' models. Fewer than the spaces hold = a random
    subset of them; more = padded with random other NAS-Bench-101 models (at most 423,624 in all).
    """
    cells = space_models(spaces)
    if models is None or models == len(cells):
        return cells
    if models < len(cells):
        return [cells[i] for i in sorted(np.random.default_rng(seed).choice(len(cells), models, replace=False))]
    extra = random_models(models - len(cells), {cell[0] for cell in cells}, seed)
    return sorted(cells + extra, key=lambda cell: cell[0])


def _pack(cells: Sequence[Cell]) -> tuple[np.ndarray, np.ndarray]:
    """((N, 7, 7) uint8 adjacency, (N, 7) int8 labels padded with -3) of cells."""
    matrices = np.zeros((len(cells), MAX_VERTICES, MAX_VERTICES), dtype=np.uint8)
    labels = np.full((len(cells), MAX_VERTICES), PADDING_LABEL, dtype=np.int8)
    for row, (_, matrix, cell_labels) in enumerate(cells):
        matrices[row, : len(cell_labels), : len(cell_labels)] = matrix
        labels[row, : len(cell_labels)] = cell_labels
    return matrices, labels


def _normal(keys: np.ndarray, seed: int, stream: int) -> np.ndarray:
    """(N,) standard normals, one per model, a function of (16-byte key, seed, stream) only."""
    with np.errstate(over="ignore"):
        words = np.frombuffer(keys.tobytes(), dtype="<u8").reshape(len(keys), 2)
        state = words[:, 0] ^ _mix(words[:, 1] ^ np.uint64((seed * 0x9E3779B1 + stream * 0x85EBCA77) % 2**64))
        first, second = _mix(state), _mix(state ^ np.uint64(0xD1B54A32D192ED03))
    uniform1 = ((first >> np.uint64(11)).astype(np.float64) + 0.5) / 2.0**53
    uniform2 = (second >> np.uint64(11)).astype(np.float64) / 2.0**53
    return np.sqrt(-2.0 * np.log(uniform1)) * np.cos(2.0 * np.pi * uniform2)


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser (uint64, wrapping)."""
    x = x + np.uint64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def _structure(matrices: np.ndarray, labels: np.ndarray) -> dict[str, np.ndarray]:
    """Per-model (N,) features: op counts, depth (longest input-output path, edges), output width."""
    n = len(labels)
    size = (labels != PADDING_LABEL).sum(axis=1)
    depth = np.full((n, MAX_VERTICES), -(10**6))
    depth[:, 0] = 0
    for v in range(1, MAX_VERTICES):
        parents = matrices[:, :v, v].astype(bool)
        depth[:, v] = np.where(parents, depth[:, :v] + 1, -(10**6)).max(axis=1)
    rows = np.arange(n)
    into_output = matrices[rows, :, size - 1].astype(np.int64)
    from_input = matrices[:, 0, :].astype(np.int64)
    return {
        "conv3x3": (labels == _CONV3X3).sum(axis=1),
        "conv1x1": (labels == _CONV1X1).sum(axis=1),
        "maxpool": (labels == _MAXPOOL).sum(axis=1),
        "depth": depth[rows, size - 1],
        "skip": into_output[:, 0],
        "width": into_output.sum(axis=1) - into_output[:, 0],
        "input_edges": from_input.sum(axis=1) - from_input[rows, size - 1],
    }


def _parameters(f: dict[str, np.ndarray]) -> np.ndarray:
    """A plausible trainable-parameter count of the NAS-Bench-101 network (stem 128 channels,
    3 stacks x 3 cells of 128/256/512 channels, 10-way classifier), from the cell's structure."""
    total = np.full(len(f["depth"]), 3 * 9 * 128 + 2 * 128 + 512 * 10 + 10, dtype=np.int64)
    for stack, channels in enumerate((128, 256, 512)):
        for cell in range(3):
            inputs = channels // 2 if stack > 0 and cell == 0 else channels
            vertex = channels // np.maximum(f["width"], 1)
            total += f["conv3x3"] * (9 * vertex * vertex + 2 * vertex) + f["conv1x1"] * (vertex * vertex + 2 * vertex)
            total += f["input_edges"] * (inputs * vertex + 2 * vertex) + f["skip"] * (inputs * channels + 2 * channels)
    return total


def synthetic_numbers(
    cells: Sequence[Cell], budgets: Sequence[int], repeats: int, seed: int
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(trainable parameters (N,) int64, values): values[name] has shape (N, len(budgets), repeats)
    for each of `RECORD_COLUMNS` (accuracies as fractions, training times in seconds)."""
    keys, _ = hash_keys([cell[0] for cell in cells])
    f = _structure(*_pack(cells))
    params = _parameters(f)
    score = (
        0.25 * f["conv3x3"]
        + 0.12 * f["conv1x1"]
        + 0.05 * f["maxpool"]
        + 0.2 * np.minimum(f["depth"] - 1, 3)
        + 0.1 * np.minimum(f["width"], 3)
        + 0.1 * f["skip"]
        - 0.1 * np.maximum(f["maxpool"] - 2, 0)
    )
    quality = 0.955 - 0.16 * np.exp(-score) + 0.006 * _normal(keys, seed, 0)
    seconds_per_epoch = (700.0 + 1.1e-4 * params) / 108 * np.exp(0.05 * _normal(keys, seed, 1))
    values = {name: np.empty((len(cells), len(budgets), repeats)) for name in RECORD_COLUMNS}
    for b, epochs in enumerate(budgets):
        for r in range(repeats):
            for s, (stage, at) in enumerate((("final", epochs), ("halfway", epochs / 2))):
                noise = [_normal(keys, seed, 1000 * (b + 1) + 100 * r + 10 * s + k) for k in range(4)]
                test = quality - 0.045 * (np.sqrt(108 / at) - 1) - 0.03 * s
                test = np.clip(test + 0.002 * noise[0], 0.1, 0.99)
                values[f"{stage}_test_accuracy"][:, b, r] = test
                values[f"{stage}_validation_accuracy"][:, b, r] = np.clip(test + 0.004 + 0.002 * noise[1], 0.1, 0.995)
                values[f"{stage}_train_accuracy"][:, b, r] = np.clip(test + 0.07 + 0.01 * noise[2], 0.1, 1.0)
                values[f"{stage}_training_time"][:, b, r] = seconds_per_epoch * at * np.exp(0.01 * noise[3])
    return params, values


def _payloads(cells: Sequence[Cell], budgets: Sequence[int], repeats: int, seed: int) -> Iterator[bytes]:
    for start in range(0, len(cells), _CHUNK):
        yield from _chunk_payloads(cells[start : start + _CHUNK], budgets, repeats, seed)


def _chunk_payloads(cells: Sequence[Cell], budgets: Sequence[int], repeats: int, seed: int) -> Iterator[bytes]:
    params, values = synthetic_numbers(cells, budgets, repeats, seed)
    columns = {name: array.tolist() for name, array in values.items()}
    for i, (module_hash, matrix, labels) in enumerate(cells):
        raw_adjacency, raw_operations = cell_strings(matrix, [LABEL_OPS[x] for x in labels])
        for b, epochs in enumerate(budgets):
            for r in range(repeats):
                v = {name: column[i][b][r] for name, column in columns.items()}
                metrics = ModelMetrics(
                    evaluation_data=[
                        EvaluationData(
                            current_epoch=0.0,
                            training_time=0.0,
                            train_accuracy=0.1,
                            validation_accuracy=0.1,
                            test_accuracy=0.1,
                        ),
                        EvaluationData(
                            current_epoch=epochs / 2,
                            training_time=v["halfway_training_time"],
                            train_accuracy=v["halfway_train_accuracy"],
                            validation_accuracy=v["halfway_validation_accuracy"],
                            test_accuracy=v["halfway_test_accuracy"],
                        ),
                        EvaluationData(
                            current_epoch=float(epochs),
                            training_time=v["final_training_time"],
                            train_accuracy=v["final_train_accuracy"],
                            validation_accuracy=v["final_validation_accuracy"],
                            test_accuracy=v["final_test_accuracy"],
                            checkpoint_path=f"{SYNTHETIC_PREFIX}nasbench101/{module_hash}/{epochs}/{r}",
                        ),
                    ],
                    trainable_parameters=int(params[i]),
                    total_time=v["final_training_time"] * 1.05,
                )
                yield encode_payload(module_hash, epochs, raw_adjacency, raw_operations, metrics)


def write_synthetic(
    path: str | os.PathLike,
    *,
    spaces: Sequence[int] = (1, 2, 3),
    models: int | None = None,
    budgets: Sequence[int] = BUDGETS,
    repeats: int = 3,
    seed: int = 0,
    progress: bool = False,
) -> tuple[int, int]:
    """Write a synthetic table as an official-format .tfrecord at `path` (atomically).

    spaces / models: which models (see `choose_models`); budgets: epochs (`FULL_BUDGETS` for all
    four); repeats: records per model and budget; progress: a progress bar (records written) on
    stderr. Returns (models, records).
    """
    if repeats < 1 or not budgets or any(int(b) < 1 for b in budgets):
        raise OutOfDomainError(f"need repeats >= 1 and positive budgets, got repeats={repeats}, budgets={budgets}")
    if models is not None and not 1 <= models <= NUM_MODELS:
        raise OutOfDomainError(
            f"--models {models}: a synthetic table holds between 1 and {NUM_MODELS} models (all of NAS-Bench-101)"
        )
    cells = choose_models(spaces, models, seed)
    if not cells:
        raise OutOfDomainError("a synthetic table needs at least one model: give spaces or --models")
    budgets = sorted({int(b) for b in budgets})
    payloads = _payloads(cells, budgets, repeats, seed)
    if progress:
        from tqdm import tqdm

        payloads = tqdm(payloads, total=len(cells) * len(budgets) * repeats, unit=" records", desc="writing")
    return len(cells), write_tfrecord(path, payloads)


def synthetic_table() -> NASBench101:
    """The default synthetic table (spaces 1-3, budget 108, 3 repeats, seed 0), built once per
    machine under `cache_dir()` (about 30 s on 2 CPU cores the first time) and loaded from there afterwards;
    rebuilt, with a warning, if that file is damaged (see `load_or_build`)."""
    path = cache_dir() / f"nasbench101-synthetic-v{SYNTHETIC_VERSION}{CACHE_SUFFIX}"
    return load_or_build(path, _load_table, _build_table, "the synthetic NAS-Bench-101 table")


def _load_table(path: Path) -> NASBench101:
    try:
        return NASBench101.load(path)
    except DataFileError as err:
        raise CacheDamaged(str(err)) from None


def _build_table(path: Path) -> None:
    """Write the default synthetic .tfrecord in a scratch folder beside `path` (named like the
    orphans `remove_orphans` clears, should this process be killed), convert it there and move
    the cache onto `path`."""
    scratch = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        source = scratch / "nasbench_synthetic.tfrecord"  # the name `harness synthetic` writes by default
        print(
            f"building the synthetic NAS-Bench-101 table once for this machine ({path}; about 30 s): "
            "listing the models of the three spaces, writing their records, converting",
            file=sys.stderr,
            flush=True,
        )
        bars = sys.stderr.isatty()
        write_synthetic(source, progress=bars)
        os.replace(convert(source, scratch / path.name, progress=bars), path)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
