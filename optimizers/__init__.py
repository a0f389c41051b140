"""One-shot NAS optimizers behind one registry.

Importing this package imports every module in it, so each built-in optimizer registers itself;
`get(name)` and `available()` look them up. A user's optimizer registers itself the same way
from its own file (`load_plugin`).
"""

import importlib
import pkgutil

from optimizers.base import Batch, SearchConfig, SearchOptimizer, StepStats, StopRequest, ValidationData
from optimizers.registry import available, get, load_plugin, register
from optimizers.variants import Variant, register_variant, registered_variant, variants

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

__all__ = [
    "Batch",
    "SearchConfig",
    "SearchOptimizer",
    "StepStats",
    "StopRequest",
    "ValidationData",
    "Variant",
    "available",
    "get",
    "load_plugin",
    "register",
    "register_variant",
    "registered_variant",
    "variants",
]
