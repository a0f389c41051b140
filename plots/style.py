"""Optimizer colours, display labels and order: identical in every figure and table."""

from __future__ import annotations

import colorsys
import hashlib
from collections.abc import Iterable

# Registry name -> (display label, colour). Paper order (SDARTS Figs. 3-5), then the PC-DARTS variants.
# The DARTS family is spread over distinct hues: DARTS blue, SDARTS-RS orange, SDARTS-ADV red,
# PC-DARTS green, PC-DARTS-RS olive, PC-DARTS-ADV cyan.
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
}

METRIC_LABELS: dict[str, str] = {
    "test_error": "test error",
    "regret": "regret",
    "valid_error": "validation error",
    "hessian_eigenvalue": "dominant Hessian eigenvalue",
}


def _key(name: str) -> str:
    return name.strip().lower().replace("_", "-").replace("pc-darts", "pcdarts")


def is_known(name: str) -> bool:
    """True for the optimizers with a fixed colour and label."""
    return _key(name) in _KNOWN


def label_for(name: str) -> str:
    """Display label: 'SDARTS-RS' for 'sdarts-rs'; an unknown name is returned as given."""
    known = _KNOWN.get(_key(name))
    return known[0] if known else name


def color_for(name: str) -> str:
    """Hex colour of an optimizer: fixed for known names, else derived from an MD5 of the name.

    The fallback depends on the name alone (not on the order names appear, nor on Python's
    salted `hash`), so the same name gets the same colour in every figure and every run.
    """
    known = _KNOWN.get(_key(name))
    if known:
        return known[1]
    digest = hashlib.md5(name.encode("utf-8")).digest()
    hue = int.from_bytes(digest[:2], "big") / 65536
    value = 0.45 + 0.3 * digest[2] / 255
    red, green, blue = colorsys.hsv_to_rgb(hue, 0.75, value)
    return f"#{round(red * 255):02x}{round(green * 255):02x}{round(blue * 255):02x}"


def linestyle_for(name: str) -> str:
    """Solid for known optimizers, dashed for user-defined ones (their colours are not curated)."""
    return "-" if is_known(name) else "--"


def sort_optimizers(names: Iterable[str]) -> list[str]:
    """Distinct names in a stable order: known optimizers in paper order, then the rest alphabetically."""
    order = list(_KNOWN)
    return sorted(set(names), key=lambda n: (0, order.index(_key(n)), n) if is_known(n) else (1, 0, n))


def metric_label(metric: str) -> str:
    """Axis label of a metric column ('dominant Hessian eigenvalue' for 'hessian_eigenvalue')."""
    return METRIC_LABELS.get(metric, metric.replace("_", " "))
