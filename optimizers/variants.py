"""Named variants: an optimizer plus settings, as data (no new class).

`--variant NAME` on the command line names a variant. A registered variant brings its settings
(`--set` still overrides them); an unregistered name is the user's own variant, defined by the
`--set` given with it. The name goes into the run directory, the table's `variant` column and
the legend. Variants that share a `method` are the settings grid of one method (e.g. the four
weight decays of R-DARTS(L2)); `plots.selection` picks among them per seed by search-valid
performance (the RobustDARTS protocol) and reports the pick under the method's name.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from typing import Any

from harness.config import check_variant_name


@dataclass(frozen=True)
class Variant:
    """optimizer: the registered optimizer it configures; settings: KEY -> value, as `--set`
    takes them (RunConfig fields or the optimizer's Config fields); label: legend label (default
    the name); method: the selection group it belongs to (default: none)."""

    name: str
    optimizer: str
    settings: dict[str, Any] = field(default_factory=dict)
    label: str = ""
    method: str = ""


_VARIANTS: dict[str, Variant] = {}


def register_variant(variant: Variant) -> Variant:
    """Register a named variant; a second variant under the same name is an error."""
    check_variant_name(variant.name)
    existing = _VARIANTS.get(variant.name)
    if existing is not None and existing != variant:
        raise ValueError(f"variant {variant.name!r} is already registered (for {existing.optimizer})")
    _VARIANTS[variant.name] = variant
    return variant


def registered_variant(name: str) -> Variant | None:
    """The registered variant called `name`, or None (then it is a user-named variant)."""
    return _VARIANTS.get(name)


def variants(pattern: str = "*", method: str | None = None) -> list[Variant]:
    """Registered variants whose name matches the glob `pattern` (and of `method`), by name."""
    return [
        v
        for name, v in sorted(_VARIANTS.items())
        if fnmatch.fnmatchcase(name, pattern) and (method is None or v.method == method)
    ]


def methods() -> dict[str, list[Variant]]:
    """Selection groups: method name -> its registered variants."""
    groups: dict[str, list[Variant]] = {}
    for variant in variants():
        if variant.method:
            groups.setdefault(variant.method, []).append(variant)
    return groups
