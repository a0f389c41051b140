"""On-disk results of a run: the tidy per-epoch table, the status file, the resolved config.

A run directory holds `config.json`, `epochs.parquet` (row k = after k epochs, rewritten
atomically after each), `alphas.parquet`, `samples.parquet` (when the optimizer keeps records),
`status.json` and `checkpoint.pt`. The columns are declared by the measurements
(`harness.measurements`) and documented in docs/results.md; `schema_version` is stored in every
row, and `read_table` reads every older version as the current one (`harness.schema`).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pandas as pd

from benchmarks.cache import atomic_write
from benchmarks.errors import DataFileError, MissingFileError
from harness.locks import is_held
from harness.schema import CUT_LINE, RUN_KEY, TableVersionError, ends_in_cut_line, upgrade_table

CONFIG_FILE = "config.json"
TABLE_FILE = "epochs.parquet"
ALPHAS_FILE = "alphas.parquet"
"""Every row's architecture parameters, tidy: epoch, tensor, row, column, value."""
SAMPLES_FILE = "samples.parquet"
"""Per-epoch records of the optimizer's own (e.g. ENAS's and random WS's sample scores)."""
STATUS_FILE = "status.json"
CHECKPOINT_FILE = "checkpoint.pt"
LOCK_FILE = ".lock"
"""Locked (flock) by the process running the run."""
COLLECTED_FILE = "all_epochs"
TIMING_COLUMNS = ("epoch_seconds", "hessian_seconds")


def write_json(path: Path, payload: dict[str, Any]) -> None:
    """Write `payload` as indented JSON, atomically."""
    text = json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n"
    atomic_write(path, lambda tmp: tmp.write_text(text))


def read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise MissingFileError(f"{path} does not exist") from None
    except json.JSONDecodeError as err:
        raise DataFileError(f"{path} is not valid JSON ({err}); delete it or restore it") from err


def to_frame(rows: list[dict[str, Any]], dtypes: dict[str, str] | None = None) -> pd.DataFrame:
    """Rows -> a table with the columns of `dtypes` (name -> pandas dtype), in that order; without
    `dtypes`, the rows' own columns and inferred types."""
    if dtypes is None:
        return pd.DataFrame(rows)
    return pd.DataFrame(rows, columns=list(dtypes)).astype(dtypes)


def write_table(path: Path, frame: pd.DataFrame) -> None:
    """Write a tidy table as parquet (or CSV for a .csv path), atomically."""
    if Path(path).suffix.lower() == ".csv":
        atomic_write(path, lambda tmp: frame.to_csv(tmp, index=False))
    else:
        atomic_write(path, lambda tmp: frame.to_parquet(tmp, index=False))


def read_table(path: Path) -> pd.DataFrame:
    """A run's (or a collected) table; a clear error for a missing or unreadable file."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"results table {path} does not exist")
    csv = path.suffix.lower() == ".csv"
    if csv and ends_in_cut_line(path):
        raise DataFileError(f"results table {path} {CUT_LINE}")
    try:
        frame = pd.read_csv(path, dtype={"arch_hash": str, "arch_matrix": str}) if csv else pd.read_parquet(path)
    except Exception as err:
        raise DataFileError(f"results table {path} cannot be read ({err}); it may be corrupt") from err
    try:
        return upgrade_table(frame)
    except TableVersionError as err:
        raise DataFileError(f"results table {path}: {err}") from None


def write_status(run_dir: Path, state: str, epochs_completed: int, epochs: int, **details: Any) -> None:
    """status.json: state ('running' | 'completed' | 'failed' | 'interrupted'), progress, details."""
    write_json(
        run_dir / STATUS_FILE,
        {"state": state, "epochs_completed": epochs_completed, "epochs": epochs, "updated": time.time(), **details},
    )


def is_complete(status: dict[str, Any] | None, epochs: int) -> bool:
    """Whether a run's status says it finished (then it is not run again): all of `epochs`, or
    fewer when the optimizer stopped the search early (`stop` in the status)."""
    if not status or status.get("state") != "completed":
        return False
    return status.get("epochs_completed") == epochs or bool(status.get("stop"))


def read_status(run_dir: Path) -> dict[str, Any] | None:
    path = Path(run_dir) / STATUS_FILE
    return read_json(path) if path.exists() else None


def run_directories(results_dir: Path, started: bool = False) -> list[Path]:
    """Run directories (those with a config.json) directly under `results_dir`, sorted; with
    `started`, also those with only a status.json (a run that failed before writing its config)."""
    names = (CONFIG_FILE, STATUS_FILE) if started else (CONFIG_FILE,)
    return sorted({p.parent for name in names for p in Path(results_dir).glob(f"*/{name}")})


def collect(results_dir: Path, skipped: list[str] | None = None) -> pd.DataFrame:
    """All runs' tables under `results_dir` concatenated into one tidy table.

    skipped: when given, a run whose table cannot be read is left out and the reason appended
    here (else it is an error)."""
    frames = []
    for run_dir in run_directories(results_dir):
        if not (run_dir / TABLE_FILE).exists():
            continue
        try:
            frames.append(read_table(run_dir / TABLE_FILE))
        except DataFileError as err:
            if skipped is None:
                raise
            skipped.append(str(err))
    if not frames:
        failed = [f"{d.name}: {status.get('error', 'no error recorded')}" for d, status in _failed_runs(results_dir)]
        detail = f"; failed before their first row: {'; '.join(failed)}" if failed else ""
        raise MissingFileError(f"no run tables ({TABLE_FILE}) under {results_dir}{detail}")
    return pd.concat(frames, ignore_index=True).sort_values([*RUN_KEY, "epoch"], ignore_index=True)


def _readable_statuses(results_dir: Path, started: bool) -> list[tuple[Path, dict[str, Any]]]:
    """(run directory, status) of the runs under `results_dir` (see `run_directories`) whose
    status.json exists and can be read."""
    found = []
    for run_dir in run_directories(results_dir, started):
        try:
            status = read_status(run_dir)
        except DataFileError:
            continue
        if status:
            found.append((run_dir, status))
    return found


def _failed_runs(results_dir: Path) -> list[tuple[Path, dict[str, Any]]]:
    """(run directory, status) of the runs under `results_dir` whose status says `failed`."""
    return [(d, status) for d, status in _readable_statuses(results_dir, True) if status.get("state") == "failed"]


def unfinished_runs(results_dir: Path) -> list[str]:
    """'name (state, k/n epochs)' for each run under `results_dir` that has rows but has not
    completed (its figures would show a shorter trajectory than planned)."""
    return [
        f"{d.name} ({shown_state(d, status)}, {status.get('epochs_completed')}/{status.get('epochs')} epochs)"
        for d, status in _readable_statuses(results_dir, False)
        if (d / TABLE_FILE).exists() and not is_complete(status, status.get("epochs"))
    ]


def shown_state(run_dir: Path, status: dict[str, Any]) -> str:
    """The state to show for a run: its status's, except `stopped` for one that says running but
    whose lock no process holds (killed, or its machine went down)."""
    state = status.get("state", "unknown")
    return "stopped" if state == "running" and is_held(run_dir / LOCK_FILE) is False else state
