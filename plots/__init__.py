"""Figures and tables from a tidy results table (one row per run and epoch).

Pure post-processing: imports nothing from `harness`, `optimizers` or `benchmarks`.
`make_figures` is the entry point; `epoch_stats` and `summary` are the compute layer.
"""

from plots.compute import epoch_stats, final_error_table, final_rows, summary
from plots.errors import MissingColumnsError, PlotsError, TableFileError, TableFormatError
from plots.make import figures, load_table, make_figures, preset_table
from plots.output import save_figure
from plots.presets import FIGURE_CHOICES, FIGURES, FigurePreset
from plots.style import SIZES, color_for, label_for, paper_style
from plots.table import REQUIRED_COLUMNS, read_table

__all__ = [
    "FIGURES",
    "FIGURE_CHOICES",
    "REQUIRED_COLUMNS",
    "SIZES",
    "FigurePreset",
    "MissingColumnsError",
    "PlotsError",
    "TableFileError",
    "TableFormatError",
    "color_for",
    "epoch_stats",
    "figures",
    "final_error_table",
    "final_rows",
    "label_for",
    "load_table",
    "make_figures",
    "paper_style",
    "preset_table",
    "read_table",
    "save_figure",
    "summary",
]
