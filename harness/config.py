"""Run configuration: a dataclass with the paper's defaults, presets, and `--set` overrides.

A run's identity is (optimizer, space, seed) plus everything else here; the resolved
configuration (this dataclass and the optimizer's own `Config`) is written beside the results.
"""

from __future__ import annotations

import dataclasses
import json
import re
import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from benchmarks.errors import HarnessError, UnknownNameError
from benchmarks.nasbench1shot1.reference import REFERENCE_BN_MOMENTUM

DEFAULT_BENCHMARK = "data/nasbench_only108.tfrecord"
NOT_SETTABLE = ("optimizer", "space", "seed", "preset", "plugins", "optimizer_options")
"""RunConfig fields `--set` may not change: they have options of their own."""


class SettingError(HarnessError, ValueError):
    """A `--set KEY=VALUE` that cannot be applied."""


@dataclass
class RunConfig:
    """One (optimizer, space, seed) search. Defaults: the paper's setting (SPEC §5).

    data: folder holding cifar-10-batches-py/ (downloaded there when missing);
    benchmark: a NAS-Bench-101 .tfrecord or cache file, or "synthetic";
    data_limit: use only the first N CIFAR-10 training images (None: all 50,000);
    valid_batches: batches of the supernet validation pass per epoch (None: all of search-valid);
    hessian_batches: search-valid batches the Hessian is averaged over (1 = the reference);
    hessian_method: "lanczos" (the top eigenvalue from about 7-15 Hessian-vector products instead
    of n; agrees with the full Hessian to ~1e-6), "rows" (the exact full Hessian), or the vmapped
    "forward-over-reverse" / "reverse-over-reverse" (see harness/hessian.py);
    cuda_graphs: on CUDA, replay capturable optimizer steps and the validation forward pass as
    CUDA graphs (same computation); channels_last: on CUDA, NHWC activations (same computation,
    faster cuDNN kernels);
    optimizer_options: overrides of the optimizer's own Config fields.
    """

    optimizer: str
    space: int
    seed: int = 0
    epochs: int = 100
    preset: str = "paper"
    data: str = "data"
    benchmark: str = DEFAULT_BENCHMARK
    out: str = "results"
    device: str = "auto"
    channels: int = 16
    cells: int = 9
    bn_momentum: float = REFERENCE_BN_MOMENTUM
    data_limit: int | None = None
    valid_batches: int | None = None
    hessian: bool = True
    hessian_batches: int = 1
    hessian_method: str = "lanczos"
    cuda_graphs: bool = True
    channels_last: bool = True
    plugins: list[str] = field(default_factory=list)
    optimizer_options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        from harness.hessian import METHODS

        problems = [
            f"{name}={getattr(self, name)!r} must be at least {low}"
            for name, low in (("epochs", 1), ("channels", 1), ("cells", 1), ("hessian_batches", 1))
            if getattr(self, name) < low
        ]
        problems += [
            f"{name}={getattr(self, name)!r} must be None or at least 1"
            for name in ("data_limit", "valid_batches")
            if getattr(self, name) is not None and getattr(self, name) < 1
        ]
        if not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", self.device):
            problems.append(f"device={self.device!r} is not one of auto, cpu, cuda, cuda:N, mps")
        if self.hessian_method not in METHODS:
            problems.append(f"hessian_method={self.hessian_method!r} is not one of {', '.join(METHODS)}")
        if problems:
            raise SettingError("; ".join(problems))

    @property
    def run_name(self) -> str:
        return f"{self.optimizer}-s{self.space}-seed{self.seed}"


PRESETS: dict[str, dict[str, Any]] = {
    "paper": {},
    "quick": {
        "epochs": 3,
        "channels": 4,
        "cells": 3,
        "data_limit": 1000,
        "valid_batches": 4,
        "optimizer_options": {"batch_size": 32, "eval_samples": 50, "eval_top": 2},
    },
}
"""quick: a tiny model on 1,000 images for 3 epochs; about a minute on 2 CPU cores."""


def make_config(optimizer: str, space: int, seed: int = 0, preset: str = "paper", **overrides: Any) -> RunConfig:
    """A RunConfig from a preset, then `overrides` (None values are ignored)."""
    if preset not in PRESETS:
        raise UnknownNameError(f"unknown preset {preset!r}; available: {', '.join(PRESETS)}")
    values = {**PRESETS[preset], **{k: v for k, v in overrides.items() if v is not None}}
    options = {**PRESETS[preset].get("optimizer_options", {}), **values.pop("optimizer_options", {})}
    return RunConfig(optimizer=optimizer, space=space, seed=seed, preset=preset, optimizer_options=options, **values)


def parse_assignments(assignments: list[str] | None) -> dict[str, str]:
    """`["a=1", "b=x"]` -> {"a": "1", "b": "x"}; values stay strings until `coerce`."""
    parsed = {}
    for item in assignments or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise SettingError(f"--set expects KEY=VALUE, got {item!r}")
        parsed[key.strip()] = value.strip()
    return parsed


def coerce(value: Any, annotation: Any) -> Any:
    """Convert a command-line string to a dataclass field's annotated type."""
    if not isinstance(value, str):
        return value
    origin = typing.get_origin(annotation)
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if origin in (typing.Union, types.UnionType):
        if value.lower() in ("none", "null"):
            return None
        return coerce(value, args[0])
    if annotation is bool:
        if value.lower() in ("1", "true", "yes", "on"):
            return True
        if value.lower() in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"expected a boolean, got {value!r}")
    if annotation in (int, float, str):
        return annotation(value)
    return json.loads(value)


def apply_settings(config: RunConfig, settings: dict[str, str], option_classes: Sequence[type]) -> RunConfig:
    """Apply KEY=VALUE settings: RunConfig fields by name, else fields of any of `option_classes`
    (the optimizer Configs of a run or a sweep; each optimizer takes the fields it has)."""
    run_hints = {k: v for k, v in typing.get_type_hints(RunConfig).items() if k not in NOT_SETTABLE}
    option_hints = {}
    for option_class in reversed(option_classes):
        option_hints.update(typing.get_type_hints(option_class))
    options = dict(config.optimizer_options)
    changes = {}
    for key, value in settings.items():
        if key not in run_hints and key not in option_hints:
            settable = ", ".join(sorted({*run_hints, *option_hints}))
            raise UnknownNameError(f"unknown setting {key!r}; settable: {settable}")
        hint = run_hints.get(key, option_hints.get(key))
        try:
            converted = coerce(value, hint)
        except (ValueError, TypeError) as err:
            raise SettingError(f"--set {key}={value}: {err}") from None
        if key in run_hints:
            changes[key] = converted
        else:
            options[key] = converted
    return dataclasses.replace(config, optimizer_options=options, **changes)


def optimizer_config(config: RunConfig, optimizer_config_class: type) -> Any:
    """The optimizer's Config with this run's overrides; overrides it lacks are dropped."""
    known = {f.name for f in dataclasses.fields(optimizer_config_class)}
    try:
        return optimizer_config_class(**{k: v for k, v in config.optimizer_options.items() if k in known})
    except ValueError as err:
        raise SettingError(f"{config.optimizer}: {err}") from None
