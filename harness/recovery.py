"""Recovering a run directory on the next start: orphaned temporaries of a killed write, a damaged
table rebuilt from the checkpoint's copy of its rows, and a refusal to resume on other data.

Called by the runner with the run directory's lock held.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from benchmarks.errors import DataFileError, HarnessError
from harness.checkpoint import failing_member
from harness.measurements import declared_columns
from harness.results import CHECKPOINT_FILE, CONFIG_FILE, TABLE_FILE, read_json, read_table, to_frame, write_table

DAMAGED_SUFFIX = ".damaged"
"""A damaged table is kept beside the rebuilt one as `epochs.parquet.damaged`."""


def remove_orphan_temporaries(run_dir: Path) -> list[Path]:
    """Remove the `.NAME.*.tmp` files (and folders) a killed atomic write left in `run_dir`;
    returns what was removed. On storage that cannot be written nothing is removed."""
    removed = []
    for orphan in Path(run_dir).glob(".*.tmp"):
        with contextlib.suppress(OSError):
            if orphan.is_dir() and not orphan.is_symlink():
                shutil.rmtree(orphan)
            else:
                orphan.unlink()
            removed.append(orphan)
    return removed


def checkpoint_rows(path: Path) -> list[dict[str, Any]] | None:
    """The table rows a checkpoint keeps a copy of (under "rows", or "records" -> "rows"); None
    when it keeps none (an older checkpoint), is damaged (`failing_member`) or cannot be read (the
    runner reports those)."""
    if failing_member(path) is not None:
        return None
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # any unreadable checkpoint: the runner's load_checkpoint says why
        return None
    if not isinstance(payload, dict):
        return None
    rows = payload.get("rows", (payload.get("records") or {}).get("rows"))
    return list(rows) if isinstance(rows, list) else None


def rebuild_table_from_checkpoint(
    run_dir: Path, dtypes: dict[str, str] | None = None, log: Callable[[str], None] = print
) -> bool:
    """Rewrite `epochs.parquet` from the checkpoint's copy of the rows when the table is missing or
    cannot be read; a damaged table is kept as `epochs.parquet.damaged`. Returns whether it rebuilt.

    dtypes: the table's columns (name -> pandas dtype), as the runner writes them; None: inferred.
    Raises `DataFileError` for a damaged table whose checkpoint holds no readable rows (an older or
    a damaged checkpoint).
    """
    run_dir = Path(run_dir)
    table, checkpoint = run_dir / TABLE_FILE, run_dir / CHECKPOINT_FILE
    if not checkpoint.is_file():
        return False
    damaged = table.exists()
    if damaged:
        try:
            read_table(table)
            return False
        except DataFileError as err:
            problem = str(err)
    rows = checkpoint_rows(checkpoint)
    if rows is None:
        if not damaged:
            return False
        raise DataFileError(
            f"{problem}, and {checkpoint} keeps no readable copy of its rows (an older or a damaged checkpoint): "
            "restore the table from a backup, or delete the run directory to start over"
        )
    if damaged:
        os.replace(table, table.with_name(table.name + DAMAGED_SUFFIX))
    write_table(table, to_frame(rows, dtypes) if dtypes is not None else to_frame(rows))
    kept = f"; the damaged file is kept as {table.name}{DAMAGED_SUFFIX}" if damaged else ""
    log(f"{table} was {'damaged' if damaged else 'missing'}: rebuilt its {len(rows)} rows from {checkpoint.name}{kept}")
    return True


def table_dtypes(optimizer_class: type) -> dict[str, str]:
    """The columns (name -> pandas dtype) of a run's table: the declared measurements' columns,
    then the optimizer's own (`SearchOptimizer.columns`), as the runner writes them."""
    return {name: column.dtype for name, column in declared_columns().items()} | dict(optimizer_class.columns)


def recover_run_directory(run_dir: Path, dtypes: dict[str, str], log: Callable[[str], None] = print) -> None:
    """What the runner does first in an existing run directory (its lock held): remove orphaned
    temporaries, and rebuild a missing or damaged table from the checkpoint
    (`rebuild_table_from_checkpoint`). dtypes: see `table_dtypes`."""
    remove_orphan_temporaries(run_dir)
    rebuild_table_from_checkpoint(run_dir, dtypes, log)


def check_same_data(run_dir: Path, fingerprint: str) -> None:
    """Refuse to resume a started run on other CIFAR-10 data: raise `HarnessError` when the run's
    config.json records another data fingerprint (`harness.cifar10_files.data_fingerprint`) and
    the run has completed an epoch. Runs recorded without one are not checked."""
    run_dir = Path(run_dir)
    config = run_dir / CONFIG_FILE
    started = (run_dir / CHECKPOINT_FILE).exists() or (run_dir / TABLE_FILE).exists()
    if not (started and config.is_file()):
        return
    recorded = (read_json(config).get("data") or {}).get("fingerprint")
    if recorded is not None and recorded != fingerprint:
        raise HarnessError(
            f"{run_dir} was run on other CIFAR-10 images (data fingerprint {recorded}, now {fingerprint}): resume "
            "it with the same --data (and data_limit), or use another --out to start a new run on these"
        )
