"""The Python API in one import, for notebooks and scripts (docs/api.md):

    from harness.api import load_benchmark, get_search_space, make_config, search, collect

Each name is the harness's own function (re-exported), except `search`, which runs one search
like `run_search` and returns its per-epoch table instead of its directory.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd

from benchmarks.nasbench1shot1 import get_search_space
from benchmarks.nasbench101 import ModelSpec, NASBench101
from harness.benchmark import load_benchmark
from harness.config import PRESETS, RunConfig, apply_settings, make_config
from harness.results import TABLE_FILE, collect, read_table
from harness.runner import run_search

__all__ = [
    "PRESETS",
    "ModelSpec",
    "NASBench101",
    "RunConfig",
    "apply_settings",
    "collect",
    "get_search_space",
    "load_benchmark",
    "make_config",
    "read_table",
    "run_directory",
    "run_search",
    "search",
]


def run_directory(config: RunConfig) -> Path:
    """Where a run writes: OUT/<run name>/."""
    return Path(config.out) / config.run_name


def search(config: RunConfig, progress: bool = False, log: Callable[[str], None] = print) -> pd.DataFrame:
    """Run (or resume, or skip when complete) one search; returns its per-epoch table (row k =
    after k epochs), as stored in `run_directory(config)/epochs.parquet`."""
    run_dir = run_search(config, progress=progress, log=log)
    return read_table(Path(run_dir) / TABLE_FILE)
