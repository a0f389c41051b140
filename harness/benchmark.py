"""Resolving `--benchmark PATH|synthetic` to a NAS-Bench-101 table."""

from __future__ import annotations

import sys
from pathlib import Path

from benchmarks.errors import MissingFileError
from benchmarks.nasbench101 import NASBench101

SYNTHETIC = "synthetic"


def load_benchmark(benchmark: str | Path) -> NASBench101:
    """The table for `benchmark`: "synthetic" (built once per machine), or a NAS-Bench-101
    .tfrecord (converted on first use) or its converted cache."""
    if str(benchmark) == SYNTHETIC:
        from benchmarks.nasbench101.synthetic import synthetic_table

        return synthetic_table()
    path = Path(benchmark)
    if not path.exists():
        raise MissingFileError(
            f"NAS-Bench-101 table {path} not found. Download it with `python -m harness fetch nasbench101 "
            f"--dest {path.parent}`, or opt into made-up accuracies with `--benchmark synthetic`."
        )
    return NASBench101.load(path, progress=sys.stderr.isatty())  # a bar while a .tfrecord is converted (first use)
