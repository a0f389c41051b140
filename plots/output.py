"""Atomic file output: write beside the target, then `os.replace`, so no half-written file is left."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import matplotlib
import pandas as pd
from matplotlib.figure import Figure

FIGURE_FORMATS: tuple[str, ...] = ("png", "pdf")
DPI = 150


def atomic_write(path: Path, write: Callable[[Path], None]) -> Path:
    """Call `write(tmp)` on a temporary file in `path`'s folder, then move it onto `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        tmp.chmod(0o644)  # mkstemp creates 0600; results are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    return path


FONT_TYPES = {"pdf.fonttype": 42, "ps.fonttype": 42}
"""TrueType fonts embedded in PDF and PS files: no Type 3 fonts, which some venues reject."""


def save_figure(fig: Figure, out_dir: Path, stem: str) -> list[Path]:
    """Write `fig` as `stem.png` (DPI 150) and `stem.pdf` (TrueType fonts) under `out_dir`."""
    with matplotlib.rc_context(FONT_TYPES):
        return [
            atomic_write(out_dir / f"{stem}.{fmt}", lambda tmp, fmt=fmt: fig.savefig(tmp, format=fmt, dpi=DPI))
            for fmt in FIGURE_FORMATS
        ]


def save_summary(summary: pd.DataFrame, markdown: str, out_dir: Path, stem: str = "summary") -> list[Path]:
    """Write the summary as `stem.md` and `stem.csv` under `out_dir`."""
    return [
        atomic_write(out_dir / f"{stem}.md", lambda tmp: tmp.write_text(markdown, encoding="utf-8")),
        atomic_write(out_dir / f"{stem}.csv", lambda tmp: summary.to_csv(tmp, index=False)),
    ]
