"""`NASBench101`: the tabular benchmark, loaded from the columnar cache (see `convert`).

Accuracies are fractions in [0, 1], training times seconds, errors 1 - accuracy.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from benchmarks.errors import OutOfDomainError
from benchmarks.nasbench101.convert import PADDING_LABEL, RECORD_COLUMNS, check_table_path, convert, load_cache
from benchmarks.nasbench101.model_spec import MAX_VERTICES, ModelSpec

STAT_KEYS = ("test_error", "test_error_std", "valid_error", "valid_error_std", "params")

_NIBBLES = np.full(128, 255, dtype=np.uint8)
for _value, _digit in enumerate("0123456789abcdef"):
    _NIBBLES[ord(_digit)] = _NIBBLES[ord(_digit.upper())] = _value


def hash_keys(hashes: Sequence[str] | str) -> tuple[np.ndarray, np.ndarray]:
    """Hex hashes -> ((N,) S16 raw 16-byte keys, (N,) bool: the string was 32 hex digits), vectorised."""
    text = np.ascontiguousarray(np.asarray(hashes, dtype=str).reshape(-1))
    width = max(text.dtype.itemsize // 4, 1)
    if width < 32:
        return np.zeros(len(text), dtype="S16"), np.zeros(len(text), dtype=bool)
    codes = text.view(np.uint32).reshape(len(text), width)
    nibbles = _NIBBLES[np.minimum(codes[:, :32], 127)]
    valid = (nibbles != 255).all(axis=1) & (codes[:, 32:] == 0).all(axis=1)
    raw = (nibbles[:, 0::2] << 4) | nibbles[:, 1::2]
    return np.ascontiguousarray(raw).view("S16").reshape(-1), valid


def _as_hash(spec_or_hash: ModelSpec | str) -> str:
    if isinstance(spec_or_hash, ModelSpec):
        return spec_or_hash.hash()
    if isinstance(spec_or_hash, str):
        return spec_or_hash.lower()
    raise TypeError(f"expected a ModelSpec or a hash string, got {type(spec_or_hash).__name__}")


class NASBench101:
    """NAS-Bench-101 results by model hash, every repeat of every budget.

    `synthetic` is True for a table built from made-up data (`benchmarks.nasbench101.synthetic`);
    its `name` is then "synthetic", else "nasbench101".
    """

    def __init__(self, arrays: dict[str, np.ndarray], metadata: dict, path: Path | None = None):
        self.metadata = metadata
        self.path = path
        self.synthetic = bool(metadata["synthetic"])
        self.name = "synthetic" if self.synthetic else "nasbench101"
        self.budgets: list[int] = [int(b) for b in metadata["budgets"]]
        self._hashes = arrays["hashes"]
        self._adjacency = arrays["adjacency"]
        self._labels = arrays["labels"]
        self._parameters = arrays["trainable_parameters"]
        self._offsets = arrays["model_offsets"]
        self._model = arrays["model"]
        self._epochs = arrays["epochs"]
        self._repeat = arrays["repeat"]
        self._columns = {name: arrays[name] for name in RECORD_COLUMNS}
        self._stats: dict[int, dict[str, np.ndarray]] = {}

    @classmethod
    def load(cls, path: str | os.PathLike, *, progress: bool = False) -> NASBench101:
        """Load a table from an official .tfrecord (converted on first use, see `convert`) or a cache .npz.

        progress: show a progress bar while converting. Raises `MissingFileError`, `DataFileError`.
        """
        path = Path(path)
        check_table_path(path)
        cache = path if path.suffix == ".npz" else convert(path, progress=progress)
        arrays, metadata = load_cache(cache)
        return cls(arrays, metadata, cache)

    @property
    def num_models(self) -> int:
        return len(self._hashes)

    def __len__(self) -> int:
        return self.num_models

    def __contains__(self, spec_or_hash: object) -> bool:
        if not isinstance(spec_or_hash, (ModelSpec, str)):
            return False
        keys, valid = hash_keys(_as_hash(spec_or_hash))
        return bool(self._lookup(keys, valid)[1][0])

    def __repr__(self) -> str:
        return f"NASBench101(name={self.name!r}, models={self.num_models}, budgets={self.budgets}, path={self.path})"

    def query(
        self,
        spec_or_hash: ModelSpec | str,
        epochs: int = 108,
        repeat: str | int = "all",
        rng: np.random.Generator | int | None = None,
    ) -> list[dict] | dict:
        """Every repeat of a model at a budget: dicts with `repeat`, `epochs`, the `RECORD_COLUMNS`
        (halfway_* / final_* train/validation/test accuracy and training time) and `trainable_parameters`.

        repeat: "all" (the default: a list, every repeat); "random" (one dict, a repeat drawn at
        random, as the NAS-Bench-101 API's `query` does; `rng`: a numpy Generator or a seed, else
        fresh randomness); or an int (one dict, that repeat, 0-based).
        Raises `OutOfDomainError` for a model not in the table, a budget not in it, or a repeat it lacks.
        """
        index, rows = self._rows(spec_or_hash, epochs)
        if repeat != "all":
            if repeat == "random":
                row = rows[np.random.default_rng(rng).integers(len(rows))]
            elif isinstance(repeat, (int, np.integer)) and not isinstance(repeat, bool):
                matching = rows[self._repeat[rows] == repeat]
                if len(matching) == 0:
                    raise OutOfDomainError(
                        f"model {_as_hash(spec_or_hash)} has no repeat {repeat} at {epochs} epochs; "
                        f"repeats: {sorted(int(r) for r in self._repeat[rows])}"
                    )
                row = matching[0]
            else:
                raise OutOfDomainError(f"repeat must be 'all', 'random' or a repeat number, got {repeat!r}")
            rows = np.asarray([row])
        parameters = int(self._parameters[index])
        records = [
            {
                "repeat": int(self._repeat[row]),
                "epochs": int(self._epochs[row]),
                **{name: float(column[row]) for name, column in self._columns.items()},
                "trainable_parameters": parameters,
            }
            for row in rows
        ]
        return records if repeat == "all" else records[0]

    def is_valid(self, spec_or_matrix: ModelSpec | str | Sequence, ops: Sequence[str] | None = None) -> bool:
        """Whether a cell is a valid NAS-Bench-101 model that this table holds; never raises.

        Takes a `ModelSpec`, a hash, or an adjacency matrix with its `ops` (as the NAS-Bench-101
        API's `is_valid(ModelSpec(matrix, ops))`: the cell is pruned first; more than 7 vertices
        or 9 edges, unknown ops or a disconnected output make it invalid)."""
        if ops is not None:
            try:
                spec_or_matrix = ModelSpec(spec_or_matrix, ops)
            except OutOfDomainError:
                return False
        return spec_or_matrix in self

    def mean_errors(self, spec_or_hash: ModelSpec | str, epochs: int = 108) -> dict[str, float]:
        """Errors over a model's repeats: test_error = 1 - mean final test accuracy (the benchmark's
        definition), test_error_std = std (ddof 0) of 1 - accuracy; the same for valid_*; params.
        """
        index, rows = self._rows(spec_or_hash, epochs)
        test = self._columns["final_test_accuracy"][rows]
        valid = self._columns["final_validation_accuracy"][rows]
        return {
            "test_error": float(1.0 - np.mean(test)),
            "test_error_std": float(np.std(1.0 - test)),
            "valid_error": float(1.0 - np.mean(valid)),
            "valid_error_std": float(np.std(1.0 - valid)),
            "params": float(self._parameters[index]),
        }

    def query_many(self, hashes: Sequence[str], epochs: int = 108) -> dict[str, np.ndarray]:
        """`mean_errors` for many hashes at once: (N,) float64 arrays keyed like `mean_errors`, plus
        `found` (N,) bool; NaN where a model is not in the table (or is not a hash).

        Raises `OutOfDomainError` only for a budget not in the table.
        """
        stats = self._budget_stats(self._check_epochs(epochs))
        index, found = self._lookup(*hash_keys(hashes))
        found &= stats["count"][index] > 0
        result = {key: np.where(found, stats[key][index], np.nan) for key in STAT_KEYS}
        result["found"] = found
        return result

    def spec(self, spec_or_hash: ModelSpec | str) -> ModelSpec:
        """The cell the table stores for a model (pruned, as in the benchmark)."""
        index = self._index(spec_or_hash)
        labels = self._labels[index]
        size = int((labels != PADDING_LABEL).sum())
        matrix = np.unpackbits(self._adjacency[index])[: MAX_VERTICES * MAX_VERTICES].reshape(MAX_VERTICES, -1)
        return ModelSpec.from_labels(matrix[:size, :size], labels[:size])

    def _lookup(self, keys: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(row of each key, clipped to a valid row; whether the key is in the table)."""
        index = np.minimum(np.searchsorted(self._hashes, keys), max(self.num_models - 1, 0))
        return index, valid & (self._hashes[index] == keys)

    def _index(self, spec_or_hash: ModelSpec | str) -> int:
        module_hash = _as_hash(spec_or_hash)
        keys, valid = hash_keys(module_hash)
        if not valid[0]:
            raise OutOfDomainError(f"{module_hash!r} is not a NAS-Bench-101 model hash (32 hex digits)")
        index, found = self._lookup(keys, valid)
        if not found[0]:
            raise OutOfDomainError(f"model {module_hash} is not in the {self.name} table {self.path}")
        return int(index[0])

    def _check_epochs(self, epochs: int) -> int:
        if epochs not in self.budgets:
            raise OutOfDomainError(
                f"epochs={epochs} is not a budget of the {self.name} table; available: {self.budgets}"
            )
        return int(epochs)

    def _rows(self, spec_or_hash: ModelSpec | str, epochs: int) -> tuple[int, np.ndarray]:
        """(model row, its record rows at `epochs` in repeat order)."""
        epochs = self._check_epochs(epochs)
        index = self._index(spec_or_hash)
        start, stop = self._offsets[index], self._offsets[index + 1]
        rows = start + np.flatnonzero(self._epochs[start:stop] == epochs)
        if len(rows) == 0:
            raise OutOfDomainError(f"model {_as_hash(spec_or_hash)} has no records at {epochs} epochs")
        return index, rows

    def _budget_stats(self, epochs: int) -> dict[str, np.ndarray]:
        """Per-model (M,) count of repeats and `STAT_KEYS` at one budget, computed once."""
        if epochs not in self._stats:
            rows = np.flatnonzero(self._epochs == epochs)
            model = self._model[rows]

            def per_model(weights: np.ndarray | None = None) -> np.ndarray:
                return np.bincount(model, weights=weights, minlength=self.num_models).astype(np.float64)

            count = per_model()
            stats = {"count": count, "params": self._parameters.astype(np.float64)}
            with np.errstate(invalid="ignore", divide="ignore"):
                for key, column in (("test", "final_test_accuracy"), ("valid", "final_validation_accuracy")):
                    accuracy = self._columns[column][rows]
                    error = 1.0 - accuracy
                    deviation = (error - (per_model(error) / count)[model]) ** 2
                    stats[f"{key}_error"] = 1.0 - per_model(accuracy) / count
                    stats[f"{key}_error_std"] = np.sqrt(per_model(deviation) / count)
            self._stats[epochs] = stats
        return self._stats[epochs]
