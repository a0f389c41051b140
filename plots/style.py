"""Method colours, display labels and order (identical in every figure and table), figure sizes
and the matplotlib settings for paper figures (TrueType fonts in PDFs)."""

from __future__ import annotations

import contextlib
import hashlib
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import matplotlib

# Method (registry name, variant or selected method) -> (display label, colour). Paper order
# (SDARTS Figs. 3-5), then the PC-DARTS variants, the baselines, random search. Hues are spread
# so that the methods drawn together (Figure 3, the regularisation comparison) stay apart.
_KNOWN: dict[str, tuple[str, str]] = {
    "enas": ("ENAS", "#e377c2"),
    "darts": ("DARTS", "#1f77b4"),
    "gdas": ("GDAS", "#9467bd"),
    "nasp": ("NASP", "#8c564b"),
    "pcdarts": ("PC-DARTS", "#2ca02c"),
    "sdarts-rs": ("SDARTS-RS", "#ff7f0e"),
    "sdarts-adv": ("SDARTS-ADV", "#d62728"),
    "pcdarts-rs": ("PC-DARTS-RS", "#bcbd22"),
    "pcdarts-adv": ("PC-DARTS-ADV", "#17becf"),
    "hessian-reg": ("Hessian reg.", "#222222"),
    "darts-es": ("DARTS-ES", "#c49c00"),
    "r-darts(l2)": ("R-DARTS(L2)", "#5254a3"),
    "r-darts(dp)": ("R-DARTS(DP)", "#3d7a3d"),
    "darts-dp": ("DARTS + drop-path", "#6b8e23"),
    "random-ws": ("Random WS", "#7f7f7f"),
}
_VARIANT_LABELS: tuple[tuple[str, str], ...] = (
    (r"rdarts-l2-(.+)", r"R-DARTS(L2) wd=\1"),
    (r"rdarts-dp-(.+)", r"R-DARTS(DP) p=\1"),
)
"""Registered variants' names -> their labels (plots imports nothing from `optimizers`)."""

METRIC_LABELS: dict[str, str] = {
    "test_error": "test error",
    "regret": "regret",
    "benchmark_valid_error": "NAS-Bench-101 validation error",
    "hessian_eigenvalue": "dominant Hessian eigenvalue",
    "supernet_valid_accuracy": "supernet validation accuracy",
    "supernet_valid_loss": "supernet validation loss",
}


def _key(name: str) -> str:
    return name.strip().lower().replace("_", "-").replace("pc-darts", "pcdarts")


def is_known(name: str) -> bool:
    """True for the methods with a curated colour and label."""
    return _key(name) in _KNOWN


def label_for(name: str) -> str:
    """Display label: 'SDARTS-RS' for 'sdarts-rs', 'R-DARTS(L2) wd=0.0003' for 'rdarts-l2-0.0003';
    any other name is returned as given."""
    known = _KNOWN.get(_key(name))
    if known:
        return known[0]
    for pattern, label in _VARIANT_LABELS:
        if re.fullmatch(pattern, name):
            return re.sub(pattern, label, name)
    return name


def _rgb(colour: str) -> tuple[float, float, float]:
    return tuple(int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5))  # type: ignore[return-value]


def _distance(a: str, b: str) -> float:
    """Perceptual-ish distance of two hex colours ('redmean' weighted RGB), 0 to about 3."""
    (r1, g1, b1), (r2, g2, b2) = _rgb(a), _rgb(b)
    mean_red = (r1 + r2) / 2
    return ((2 + mean_red) * (r1 - r2) ** 2 + 4 * (g1 - g2) ** 2 + (3 - mean_red) * (b1 - b2) ** 2) ** 0.5


def _fallback_palette(min_distance: float = 0.3) -> list[str]:
    """Colours for methods without a curated one: a hue wheel at two lightnesses, keeping only the
    colours at least `min_distance` from every curated colour and from each other."""
    import colorsys

    chosen: list[str] = []
    curated = [colour for _, colour in _KNOWN.values()]
    for value, saturation in ((0.55, 0.85), (0.8, 0.55), (0.4, 0.6)):
        for step in range(24):
            red, green, blue = colorsys.hsv_to_rgb(step / 24, saturation, value)
            colour = f"#{round(red * 255):02x}{round(green * 255):02x}{round(blue * 255):02x}"
            if all(_distance(colour, other) >= min_distance for other in [*curated, *chosen]):
                chosen.append(colour)
    return chosen


FALLBACK_COLOURS: tuple[str, ...] = tuple(_fallback_palette())
"""Colours of methods without a curated one, all far from the curated colours."""


def color_for(name: str) -> str:
    """Hex colour of a method: curated for known names, else one of `FALLBACK_COLOURS` picked by
    an MD5 of the name, so the same name gets the same colour in every figure and run (not by
    Python's salted `hash`, nor the order names appear). A registered variant of a known family
    (rdarts-l2-*, rdarts-dp-*) gets a fallback colour too: several of them are drawn together."""
    known = _KNOWN.get(_key(name))
    if known:
        return known[1]
    digest = hashlib.md5(name.encode("utf-8")).digest()
    return FALLBACK_COLOURS[int.from_bytes(digest[:4], "big") % len(FALLBACK_COLOURS)]


def linestyle_for(name: str) -> str:
    """Solid for curated methods, dashed for the others (their colours are not curated)."""
    return "-" if is_known(name) else "--"


def sort_optimizers(names: Iterable[str]) -> list[str]:
    """Distinct names in a stable order: curated methods in palette order, then the rest alphabetically."""
    order = list(_KNOWN)
    return sorted(set(names), key=lambda n: (0, order.index(_key(n)), n) if is_known(n) else (1, 0, n))


sort_methods = sort_optimizers


def metric_label(metric: str) -> str:
    """Axis label of a metric column ('dominant Hessian eigenvalue' for 'hessian_eigenvalue')."""
    return METRIC_LABELS.get(metric, metric.replace("_", " "))


@dataclass(frozen=True)
class Size:
    """A figure size preset: total width (inches), height of one panel, font size (points), and
    whether the panels are stacked in one column (else side by side in one row)."""

    width: float
    panel_height: float
    font: float
    stacked: bool = False


SIZES: dict[str, Size] = {
    "two-column": Size(width=6.75, panel_height=2.1, font=8),
    "one-column": Size(width=3.25, panel_height=1.75, font=7, stacked=True),
    "notebook": Size(width=12.6, panel_height=3.3, font=10),
}
"""two-column: a full text width (6.75 in) of a two-column paper, panels side by side; one-column:
a column (3.25 in), panels stacked; notebook: large, for screens. Fonts are the printed sizes."""
DEFAULT_SIZE = "two-column"


def check_size(size: str) -> Size:
    if size not in SIZES:
        from plots.errors import PlotsError

        raise PlotsError(f"unknown figure size {size!r}; choose from {', '.join(SIZES)}")
    return SIZES[size]


def paper_rc(size: str = DEFAULT_SIZE) -> dict[str, object]:
    """matplotlib settings of a size preset: TrueType (type 42) fonts in PDF and PS, so no Type 3
    fonts (which some venues reject), and font sizes that print at the preset's size."""
    font = check_size(size).font
    return {
        "pdf.fonttype": 42,
        "ps.fonttype": 42,
        "font.size": font,
        "axes.titlesize": font,
        "axes.labelsize": font,
        "xtick.labelsize": font - 1,
        "ytick.labelsize": font - 1,
        "legend.fontsize": font - 1,
        "figure.titlesize": font + 1,
        "lines.linewidth": 1.2,
        "axes.linewidth": 0.6,
        "grid.linewidth": 0.4,
    }


@contextlib.contextmanager
def paper_style(size: str = DEFAULT_SIZE) -> Iterator[None]:
    """Build and save figures inside this block to get `paper_rc(size)`; the caller's settings
    are restored afterwards. `make_figures` and `save_figure` use it already."""
    with matplotlib.rc_context(paper_rc(size)):
        yield
