"""Read and check the tidy results table: one row per (run, epoch).

Tables of every schema version are read as the current one (`upgrade`, through
`harness.schema.upgrade_table`, the table format's one definition: pandas only, the only module
of the harness plots imports): version 1 rows move to the epochs-completed numbering (row k =
after k epochs, 0 = before training), the columns renamed in version 4 get their new names, and
`variant` defaults to the optimizer.
Each curve is one `method`: the table's `method` column where it has one (tables written by
`harness select`), else the `variant`, else the optimizer.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from harness.schema import CUT_LINE, TableVersionError, ends_in_cut_line, row_numbers, upgrade_table
from plots.errors import MissingColumnsError, TableFileError, TableFormatError

#: Columns every figure needs; everything else is optional or ignored.
REQUIRED_COLUMNS: tuple[str, ...] = ("optimizer", "space", "seed", "epoch", "test_error")
#: Numeric columns the compute layer may aggregate, coerced to float when present.
NUMERIC_COLUMNS: tuple[str, ...] = (
    "test_error",
    "test_error_std",
    "benchmark_valid_error",
    "regret",
    "hessian_eigenvalue",
    "train_loss",
    "train_accuracy",
    "supernet_valid_loss",
    "supernet_valid_accuracy",
    "epoch_seconds",
    "hessian_seconds",
)
SYNTHETIC_TAG = "synthetic benchmark"
_KEY = ("space", "method", "seed", "epoch")
_READERS = {".parquet": pd.read_parquet, ".pq": pd.read_parquet, ".csv": pd.read_csv}


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a tidy results table from a .parquet or .csv file and check it (see `check_table`)."""
    path = Path(path)
    if path.is_dir():
        raise TableFileError(f"{path} is a folder; pass the results table file (.parquet or .csv) inside it")
    if not path.exists():
        raise TableFileError(f"results table {path} does not exist")
    reader = _READERS.get(path.suffix.lower())
    if reader is None:
        raise TableFormatError(f"cannot read {path}: expected a .parquet or .csv file, got {path.suffix!r}")
    if reader is pd.read_csv and ends_in_cut_line(path):
        raise TableFormatError(f"results table {path} {CUT_LINE}")
    try:
        table = reader(path)
    except Exception as err:  # pyarrow and the CSV parser raise many types for a corrupt file
        raise TableFormatError(f"cannot read results table {path}: {err}") from err
    return check_table(table, source=str(path))


def require_columns(table: pd.DataFrame, columns: tuple[str, ...], source: str = "results table") -> None:
    """Raise `MissingColumnsError` naming every column of `columns` that `table` lacks."""
    missing = [name for name in columns if name not in table.columns]
    if missing:
        raise MissingColumnsError(
            f"{source} lacks column(s) {', '.join(missing)}; present: {', '.join(map(str, table.columns)) or 'none'}"
        )


def upgrade(table: pd.DataFrame) -> pd.DataFrame:
    """`table` read as the current version (`harness.schema.upgrade_table`), with `method`, the
    curve each row belongs to."""
    table = upgrade_table(table).copy()
    if "optimizer" in table.columns:
        optimizer = table["optimizer"].astype("string")
        variant = table["variant"].astype("string") if "variant" in table.columns else optimizer
        table["variant"] = variant.replace("", pd.NA).fillna(optimizer)
        method = table["method"].astype("string") if "method" in table.columns else table["variant"]
        table["method"] = method.replace("", pd.NA).fillna(table["variant"]).astype(str)
    return table


def check_table(table: pd.DataFrame, source: str = "results table") -> pd.DataFrame:
    """Return a cleaned copy of `table`: upgraded to the current version (`upgrade`), required
    columns present, types coerced, one row per key.

    Keys are (space, method, seed, epoch); a repeated key (e.g. an epoch written twice by a
    resumed run) keeps its last row. Unknown columns are kept untouched.
    """
    require_columns(table, REQUIRED_COLUMNS, source)
    try:
        table = upgrade(table)
    except TableVersionError as err:
        raise TableFormatError(f"{source}: {err}") from None
    if table.empty:
        raise TableFormatError(f"{source} has no rows")
    if "benchmark" in table.columns and table["benchmark"].nunique() > 1:
        names = ", ".join(sorted(table["benchmark"].astype(str).unique()))
        raise TableFormatError(
            f"{source} mixes runs looked up in different benchmarks ({names}); their errors cannot be "
            "averaged together: keep each benchmark's runs in its own results folder (or filter the table)"
        )
    table["optimizer"] = table["optimizer"].astype(str)
    for name in ("space", "seed", "epoch"):
        values = pd.to_numeric(table[name], errors="coerce")
        if values.isna().any() or (values != values.round()).any():
            raise TableFormatError(f"{source}: column {name!r} must hold integers only")
        table[name] = values.astype(int)
    for name in NUMERIC_COLUMNS:
        if name in table.columns:
            values = pd.to_numeric(table[name], errors="coerce").astype(float)
            garbled = values.isna() & table[name].notna()
            if garbled.any():
                raise TableFormatError(
                    f"{source}: column {name!r} holds something other than a number in row(s) "
                    f"{row_numbers(garbled)}: write the table again or restore it"
                )
            table[name] = values
    return table.drop_duplicates(list(_KEY), keep="last").reset_index(drop=True)


def combine_tables(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Checked tables from several sources (source name -> table) as one, refusing a run that
    appears in more than one: its rows could not be told apart, and a curve would mix them."""
    names = list(tables)
    runs = ["space", "method", "seed"]
    seen: dict[tuple, str] = {}
    for name in names:
        for key in tables[name][runs].drop_duplicates().itertuples(index=False, name=None):
            if key in seen:
                space, method, seed = key
                raise TableFormatError(
                    f"run {method} space {space} seed {seed} is in both {seen[key]} and {name}: plot them "
                    "separately, or give one of the two runs another name (--variant NAME) so each is its own curve"
                )
            seen[key] = name
    return pd.concat([tables[name] for name in names], ignore_index=True)


def is_synthetic(table: pd.DataFrame) -> bool:
    """True when any row comes from the synthetic benchmark (every title must then say so)."""
    if "benchmark" not in table.columns:
        return False
    return bool(table["benchmark"].astype(str).str.contains("synthetic", case=False).any())


def benchmark_tag(table: pd.DataFrame) -> str:
    """The benchmark named in titles: 'synthetic benchmark', 'NAS-Bench-101', or '' when unknown."""
    if is_synthetic(table):
        return SYNTHETIC_TAG
    if "benchmark" in table.columns and table["benchmark"].astype(str).str.lower().eq("nasbench101").all():
        return "NAS-Bench-101"
    return ""
