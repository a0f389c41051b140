"""Versions of the per-epoch table and how an older table is read as the current one.

Pandas and the standard library only, importing nothing of the harness: `plots` reads tables
through `upgrade_table` too. The current columns are declared by the measurements
(`harness.measurements`); `SCHEMA_VERSION` is the newest `since` among them (a test keeps the
two equal). Every row stores the version that wrote it.

History:
1. the first table: row e = after e + 1 epochs, no row before training.
2. row k = after k epochs (row 0: before training, as the reference's row 0), the decoded
   architecture (`arch_matrix`, `arch_ops`) next to `arch_hash`.
3. an epoch made of measurements: `variant`, `selected` (the row a run reports as its result)
   and `stop_reason` (an early stop, on the run's last row).
4. columns named for what they measure: the supernet's `supernet_valid_loss` /
   `supernet_valid_accuracy`, NAS-Bench-101's `benchmark_valid_error`.
"""

from __future__ import annotations

import csv
import os

import pandas as pd

SCHEMA_VERSION = 4
RENAMED: dict[str, str] = {
    "valid_loss": "supernet_valid_loss",
    "valid_accuracy": "supernet_valid_accuracy",
    "valid_error": "benchmark_valid_error",
}
"""Columns renamed in version 4: old name -> new name."""
RUN_KEY = ("space", "optimizer", "variant", "seed")
"""What tells runs apart in a collected table."""


class TableVersionError(ValueError):
    """Rows that no version of the table describes: a row whose version is not a version number
    (an edited or damaged table) or is newer than this harness reads."""


def row_numbers(mask: pd.Series, limit: int = 5) -> str:
    """The (1-based) numbers of the rows where `mask` holds, at most `limit` of them."""
    rows = [str(i + 1) for i, bad in enumerate(mask.to_numpy()) if bad]
    return ", ".join(rows[:limit]) + (f" and {len(rows) - limit} more" if len(rows) > limit else "")


def table_versions(frame: pd.DataFrame) -> pd.Series:
    """Each row's schema version (1 where there is none: version 1 wrote none, and a collection
    may hold its rows beside later ones); a `TableVersionError` for a row whose version is not a
    version number or is newer than this harness reads."""
    if "schema_version" not in frame.columns:
        return pd.Series(1, index=frame.index)
    given = frame["schema_version"]
    version = pd.to_numeric(given, errors="coerce")
    invalid = (version.isna() & given.notna()) | (version.notna() & ((version != version.round()) | (version < 1)))
    if invalid.any():
        raise TableVersionError(
            f"row(s) {row_numbers(invalid)} have no valid schema_version: the table was edited or damaged; "
            "write it again (python -m harness collect) or restore it"
        )
    version = version.fillna(1)
    if (version > SCHEMA_VERSION).any():
        raise TableVersionError(
            f"it was written by a newer harness (table version {int(version.max())}; this one reads 1 to "
            f"{SCHEMA_VERSION}): upgrade the harness to read it"
        )
    return version


def ends_in_cut_line(path: str | os.PathLike) -> bool:
    """Whether a CSV table ends in a half-written line: a last line without its newline that has
    fewer fields than the header, or any last line without its newline in a table the harness
    wrote (it has a schema_version column, and the harness ends every table with a newline)."""
    with open(path, "rb") as file:
        first = file.readline()
        size = file.seek(0, os.SEEK_END)
        file.seek(max(0, size - TAIL_BYTES))
        tail = file.read()
    if not tail or tail.endswith(b"\n"):
        return False
    header = next(csv.reader([first.decode("utf-8", errors="replace")]))
    last = next(csv.reader([tail.splitlines()[-1].decode("utf-8", errors="replace")]), [])
    return "schema_version" in header or len(last) < len(header)


TAIL_BYTES = 1 << 16
"""How much of a CSV table's end `ends_in_cut_line` reads (more than one row)."""
CUT_LINE = "ends in a half-written line: write it again or restore it"
"""What a table that `ends_in_cut_line` is told."""


def upgrade_table(frame: pd.DataFrame) -> pd.DataFrame:
    """A table (or a collection of tables) of any version, read as the current version: v1 rows
    move to the epochs-completed numbering (epoch + 1), added columns get what older versions
    implied (variant = optimizer, the last row selected), renamed columns their new names; then
    every row says the current version, so upgrading again changes nothing. A current table is
    returned as is. Rows without a valid version, or of a newer one, are a `TableVersionError`."""
    if "schema_version" in frame.columns and len(frame) and (frame["schema_version"] == SCHEMA_VERSION).all():
        return frame
    version = table_versions(frame)
    frame = frame.copy()
    if "epoch" in frame.columns:
        frame.loc[version < 2, "epoch"] += 1
    for old, new in RENAMED.items():
        if old in frame.columns:
            frame[new] = frame[new].fillna(frame[old]) if new in frame.columns else frame[old]
            frame = frame.drop(columns=old)
    if "optimizer" in frame.columns:
        variant = frame["variant"] if "variant" in frame.columns else pd.Series(pd.NA, index=frame.index)
        optimizer = frame["optimizer"].astype("string")
        frame["variant"] = variant.astype("string").replace("", pd.NA).fillna(optimizer)
    if {"epoch", "run"} <= set(frame.columns):
        last = frame["epoch"] == frame.groupby("run")["epoch"].transform("max")
        selected = (
            frame["selected"].astype("boolean")
            if "selected" in frame.columns
            else pd.Series(pd.NA, index=frame.index, dtype="boolean")
        )
        frame["selected"] = selected.fillna(last)
    if "stop_reason" not in frame.columns:
        frame["stop_reason"] = pd.Series(pd.NA, index=frame.index, dtype="string")
    frame["schema_version"] = SCHEMA_VERSION
    return frame
