"""Atomic file output: write beside the target, then `os.replace`, so no half-written file is left."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

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


def save_figure(fig: Figure, out_dir: Path, stem: str) -> list[Path]:
    """Write `fig` as `stem.png` (DPI 150) and `stem.pdf` under `out_dir`."""
    return [
        atomic_write(out_dir / f"{stem}.{fmt}", lambda tmp, fmt=fmt: fig.savefig(tmp, format=fmt, dpi=DPI))
        for fmt in FIGURE_FORMATS
    ]


def save_summary(summary: pd.DataFrame, markdown: str, out_dir: Path) -> list[Path]:
    """Write the summary as `summary.md` and `summary.csv` under `out_dir`."""
    return [
        atomic_write(out_dir / "summary.md", lambda tmp: tmp.write_text(markdown, encoding="utf-8")),
        atomic_write(out_dir / "summary.csv", lambda tmp: summary.to_csv(tmp, index=False)),
    ]
