"""Figures and tables from a tidy results table (one row per run and epoch).

Pure post-processing: imports nothing from `harness`, `optimizers` or `benchmarks`.
`make_figures` is the entry point; `epoch_stats` and `summary` are the compute layer.
"""

from plots.compute import epoch_stats, summary
from plots.errors import MissingColumnsError, PlotsError, TableFileError, TableFormatError
from plots.make import figures, load_table, make_figures
from plots.style import color_for, label_for
from plots.table import REQUIRED_COLUMNS, read_table

__all__ = [
    "REQUIRED_COLUMNS",
    "MissingColumnsError",
    "PlotsError",
    "TableFileError",
    "TableFormatError",
    "color_for",
    "epoch_stats",
    "figures",
    "label_for",
    "load_table",
    "make_figures",
    "read_table",
    "summary",
]
