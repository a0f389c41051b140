"""Optimizer registry: `@register("name")` on a class, `get(name)`, `available()`.

No central list: a module that defines an optimizer registers it when it is imported, whether it
lives in this package (imported by `optimizers/__init__.py`) or in a user's file
(`load_plugin("my_optimizer.py")`, or `--plugin my_optimizer.py` on the command line).
"""

from __future__ import annotations

import difflib
import fnmatch
import importlib
import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from benchmarks.errors import HarnessError, MissingFileError, UnknownNameError

T = TypeVar("T", bound=type)
_REGISTRY: dict[str, type] = {}


def register(name: str) -> Callable[[T], T]:
    """Class decorator: register an optimizer class under `name` (lower case, unique)."""
    if not name or name != name.lower() or any(c.isspace() for c in name):
        raise ValueError(f"optimizer names are non-empty, lower case, without spaces: got {name!r}")

    def decorate(cls: T) -> T:
        existing = _REGISTRY.get(name)
        if existing is not None and existing.__qualname__ != cls.__qualname__:
            raise ValueError(
                f"optimizer name {name!r} is already registered by {existing.__module__}.{existing.__qualname__}"
            )
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return decorate


def available(pattern: str = "*") -> list[str]:
    """Sorted names of the registered optimizers matching a glob `pattern`."""
    return sorted(name for name in _REGISTRY if fnmatch.fnmatchcase(name, pattern))


def get(name: str) -> type:
    """The optimizer class registered under `name`; an unknown name lists the available ones."""
    try:
        return _REGISTRY[name]
    except KeyError:
        close = difflib.get_close_matches(name, _REGISTRY, n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise UnknownNameError(
            f"unknown optimizer {name!r}.{hint} Available: {', '.join(available())}. "
            "A plug-in file that registers its own optimizer is loaded with --plugin FILE.py."
        ) from None


def load_plugin(source: str | Path) -> None:
    """Import a user's module (a `.py` file or a dotted module name) so its `@register` runs."""
    path = Path(source)
    if path.suffix == ".py":
        if not path.is_file():
            raise MissingFileError(f"optimizer plug-in {path} does not exist")
        module_name = f"nas_harness_plugin_{path.stem}"
        spec = importlib.util.spec_from_file_location(module_name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        try:
            spec.loader.exec_module(module)
        except Exception as err:
            del sys.modules[module_name]
            raise HarnessError(f"optimizer plug-in {path} failed to import: {err!r}") from err
    else:
        try:
            importlib.import_module(str(source))
        except ImportError as err:
            raise HarnessError(f"optimizer plug-in module {source!r} cannot be imported: {err}") from err
