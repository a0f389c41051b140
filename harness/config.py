"""Run configuration: a dataclass with the paper's defaults, presets, and `--set` overrides.

A run's identity is (optimizer, space, seed) plus everything else here; the resolved
configuration (this dataclass and the optimizer's own `Config`) is written beside the results.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import numbers
import os
import re
import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from benchmarks.errors import HarnessError, UnknownNameError
from benchmarks.nasbench1shot1.reference import REFERENCE_BN_MOMENTUM

DEFAULT_BENCHMARK = "data/nasbench_only108.tfrecord"
OWN_FLAGS = {
    "optimizer": "give it as --optimizer (sweep: --optimizers)",
    "space": "give it as --space (sweep: --spaces)",
    "seed": "give it as --seed (sweep: --seeds)",
    "preset": "give it as --preset",
    "plugins": "give each as --plugin FILE.py",
    "optimizer_options": "give each option as --set KEY=VALUE",
    "variant": "give it as --variant",
    "threads": "give it as --threads",
}
"""The RunConfig fields that --set does not take, and the flag that sets each."""
HESSIAN_DATA = ("last", "fresh")
VARIANT_NAME = re.compile(r"[a-z0-9][a-z0-9_.+=-]*")
"""Variant names: lower case, usable in a folder name."""


def check_variant_name(name: str) -> str:
    """`name` if it can name a variant (and a folder), else a ValueError saying what can."""
    if not VARIANT_NAME.fullmatch(name):
        raise ValueError(
            f"variant name {name!r} must be lower case letters, digits and . _ + = - (starting with a letter or digit)"
        )
    return name


class SettingError(HarnessError, ValueError):
    """A `--set KEY=VALUE` that cannot be applied."""


@dataclass
class RunConfig:
    """One (optimizer, space, seed) search. Defaults: the paper's setting (SPEC §5).

    data: folder holding cifar-10-batches-py/ (downloaded there when missing);
    benchmark: a NAS-Bench-101 .tfrecord or cache file, or "synthetic";
    data_limit: use only the first N CIFAR-10 training images (None: all 50,000);
    valid_batches: batches of the supernet validation pass per epoch (None: all of search-valid);
    threads: PyTorch intra-op CPU threads (None: the cores free to this process, shared among the
    runs of a sweep; see harness/run_log.py); not part of the run's identity;
    variant: the name of a configured variant of the optimizer ("" for none): part of the run
    directory's name and the table's `variant` column (see optimizers/variants.py);
    hessian_data: which search-valid images the Hessian is taken on: "last" (the reference: the
    last search-valid batch of the epoch's training loop, 25,000 mod 96 = 40 images at the
    paper's sizes; before training, the last one of epoch 0's loop) or "fresh" (`hessian_batches`
    full batches drawn for the epoch, the Hessian averaged over them);
    hessian_batches: with hessian_data="fresh", how many batches (1 = one full batch);
    cutout, cutout_length, cutout_prob: the reference option `--cutout` (off by default, as there):
    a cutout_length square cut out of every augmented image (search-train and search-valid
    alike) with probability cutout_prob * epoch / (epochs - 1), rising linearly over the run
    (optimizers/darts/utils.py `Cutout` and train_search.py of NAS-Bench-1Shot1);
    hessian_method: "lanczos" (the top eigenvalue from about 7-15 Hessian-vector products instead
    of n; stops at an estimated relative error of `hessian_tolerance`, default 1e-4, well below the
    eigenvalue's batch-to-batch spread of 17-40%), "rows" (the exact full Hessian), or the vmapped
    "forward-over-reverse" / "reverse-over-reverse" (see harness/hessian.py);
    hessian_tf32: on GPUs with TF32 tensor cores, allow TF32 in the Hessian-vector products
    (off: full fp32, as the reference on its GTX 1080 Ti; on an H200, TF32 moved the eigenvalue
    by up to 1.4e-2 relative against float64, fp32 by up to 5.1e-4: docs/performance.md);
    cuda_graphs: on CUDA, replay capturable optimizer steps and the validation forward pass as
    CUDA graphs (same computation); channels_last: on CUDA, NHWC activations (faster cuDNN
    kernels; the same computation), unless hessian_method="reverse-over-reverse", whose batched
    backward pass PyTorch cannot run on channels-last tensors; cudnn_benchmark: on CUDA, cuDNN
    times its algorithms for each new convolution shape and keeps the fastest
    (`torch.backends.cudnn.benchmark`, as the reference sets it; while the run lasts, then as before);
    triton_kernels: on CUDA, the weighted sums and the max-pool as the Triton kernels of
    `benchmarks/nasbench1shot1/kernels.py` (the same values up to the order of the sums'
    additions, deterministic, 16% off a DARTS step on an H100) where the triton package imports;
    off: PyTorch's kernels (while the run lasts);
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
    threads: int | None = None
    channels: int = 16
    cells: int = 9
    bn_momentum: float = REFERENCE_BN_MOMENTUM
    data_limit: int | None = None
    valid_batches: int | None = None
    hessian: bool = True
    hessian_data: str = "last"
    hessian_batches: int = 1
    hessian_method: str = "lanczos"
    hessian_tolerance: float = 1e-4
    hessian_tf32: bool = False
    cutout: bool = False
    cutout_length: int = 16
    cutout_prob: float = 1.0
    cuda_graphs: bool = True
    channels_last: bool = True
    cudnn_benchmark: bool = True
    triton_kernels: bool = True
    plugins: list[str] = field(default_factory=list)
    optimizer_options: dict[str, Any] = field(default_factory=dict)
    variant: str = ""

    def __post_init__(self) -> None:
        from harness.hessian import METHODS

        problems = [
            f"{name}={getattr(self, name)!r} must be at least 1"
            for name in ("epochs", "channels", "cells", "hessian_batches", "cutout_length")
            if getattr(self, name) < 1
        ]
        problems += [
            f"{name}={getattr(self, name)!r} must be at least 1 (or unset: {unset})"
            for name, unset in (("data_limit", "all images"), ("valid_batches", "all"), ("threads", "automatic"))
            if getattr(self, name) is not None and getattr(self, name) < 1
        ]
        if not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", self.device):
            problems.append(f"device={self.device!r} is not one of auto, cpu, cuda, cuda:N, mps")
        if self.hessian_data not in HESSIAN_DATA:
            problems.append(f"hessian_data={self.hessian_data!r} is not one of {', '.join(HESSIAN_DATA)}")
        elif self.hessian_data == "last" and self.hessian_batches != 1:
            problems.append(
                f"hessian_batches={self.hessian_batches} needs hessian_data=fresh "
                "(the reference's last batch is one batch)"
            )
        if self.variant:
            try:
                check_variant_name(self.variant)
            except ValueError as err:
                problems.append(str(err))
        problems += [
            f"{f.name}={getattr(self, f.name)!r} must be a finite number"
            for f in dataclasses.fields(self)
            if isinstance(getattr(self, f.name), float) and not math.isfinite(getattr(self, f.name))
        ]
        if not 0 <= self.bn_momentum <= 1:
            problems.append(f"bn_momentum={self.bn_momentum!r} must be in [0, 1] (PyTorch's BatchNorm momentum)")
        if not 0 <= self.cutout_prob <= 1:
            problems.append(f"cutout_prob={self.cutout_prob!r} must be in [0, 1]")
        if not 0 < self.hessian_tolerance < 1:
            problems.append(f"hessian_tolerance={self.hessian_tolerance!r} must be in (0, 1)")
        if self.hessian_method not in METHODS:
            problems.append(f"hessian_method={self.hessian_method!r} is not one of {', '.join(METHODS)}")
        if problems:
            raise SettingError("; ".join(problems))

    @property
    def run_name(self) -> str:
        """The run directory's name: optimizer[-variant]-sSPACE-seedSEED."""
        variant = f"-{self.variant}" if self.variant else ""
        return f"{self.optimizer}{variant}-s{self.space}-seed{self.seed}"

    @property
    def variant_label(self) -> str:
        """The table's `variant` column: the variant's name, else the optimizer's."""
        return self.variant or self.optimizer


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
PRESET_DESCRIPTIONS = {
    "paper": "the paper's setting (the default): 100 epochs, the full supernet, all 50,000 training images",
    "quick": "a tiny model on 1,000 images for 3 epochs; about a minute on 2 CPU cores",
}
"""What each of `PRESETS` is, for `list`."""


def make_config(optimizer: str, space: int, seed: int = 0, preset: str = "paper", **overrides: Any) -> RunConfig:
    """A RunConfig from a preset, then a registered variant's settings (when `variant` names one;
    it must configure `optimizer`), then `overrides` (None values are ignored): RunConfig fields,
    and `optimizer_options`, fields of the optimizer's Config (or, as in a sweep, of another
    registered optimizer's, which this one ignores). Both are checked as `--set` checks them:
    unknown names are refused, strings parsed ("false", "1e-3"), other values type-checked (the
    options of an optimizer not registered in this process, a plug-in's, when the run loads it)."""
    if preset not in PRESETS:
        raise UnknownNameError(f"unknown preset {preset!r}; available: {', '.join(PRESETS)}")
    overrides = {k: v for k, v in overrides.items() if v is not None}
    given_options = overrides.pop("optimizer_options", {})
    run_hints = {k: v for k, v in typing.get_type_hints(RunConfig).items() if k not in MAKE_CONFIG_ARGUMENTS}
    values = {**PRESETS[preset], **_checked_settings(overrides, run_hints, "make_config")}
    options = {**PRESETS[preset].get("optimizer_options", {}), **values.pop("optimizer_options", {})}
    options.update(_checked_options(optimizer, given_options))
    config = RunConfig(optimizer=optimizer, space=space, seed=seed, preset=preset, optimizer_options=options, **values)
    return with_registered_variant(config) if config.variant else config


MAKE_CONFIG_ARGUMENTS = ("optimizer", "space", "seed", "preset", "optimizer_options")
"""RunConfig fields that `make_config` takes as arguments of their own."""


def _checked_options(optimizer: str, options: dict[str, Any]) -> dict[str, Any]:
    """`options` checked against the fields of the optimizers' Configs (`_checked_settings`): this
    optimizer's own, and (as in a sweep) the others', which it ignores. Unchecked for an optimizer
    not registered in this process (a plug-in's, loaded where the run runs)."""
    import optimizers

    if not options or optimizer not in optimizers.available():
        return options
    return _checked_settings(options, _option_hints(optimizer), "optimizer_options")


def _checked_settings(settings: dict[str, Any], hints: dict[str, Any], where: str) -> dict[str, Any]:
    """`settings` with each value as its field's type (`coerce`); an unknown name or a value of
    the wrong type is an error naming it."""
    checked = {}
    for key, value in settings.items():
        if key not in hints:
            near = difflib.get_close_matches(key, hints, n=3)
            hint = f"did you mean {' or '.join(near)}? " if near else ""
            raise UnknownNameError(f"{where}: unknown setting {key!r}; {hint}known: {', '.join(sorted(hints))}")
        try:
            checked[key] = coerce(value, hints[key])
        except (ValueError, TypeError) as err:
            raise SettingError(f"{where}: {key}={value!r}: {err}") from None
    return checked


def with_registered_variant(config: RunConfig) -> RunConfig:
    """`config` with the settings of the registered variant it names applied under its own
    (`optimizer_options` and RunConfig fields already set win); unchanged for a user-named one."""
    import optimizers

    registered = optimizers.registered_variant(config.variant)
    if registered is None:
        return config
    if registered.optimizer != config.optimizer:
        raise SettingError(
            f"variant {config.variant!r} configures {registered.optimizer}, not {config.optimizer}: "
            "drop --optimizer or pick another"
        )
    option_class = optimizers.get(config.optimizer).Config
    defaults = apply_settings(
        dataclasses.replace(config, optimizer_options={}),
        {key: str(value) for key, value in registered.settings.items()},
        [option_class],
    )
    run_fields = {f.name for f in dataclasses.fields(RunConfig)}
    changed = {k: getattr(defaults, k) for k in registered.settings if k in run_fields}
    return dataclasses.replace(
        config, optimizer_options={**defaults.optimizer_options, **config.optimizer_options}, **changed
    )


def near_registered_variant(variant: str, optimizer: str | None = None) -> str | None:
    """The registered variant (of `optimizer`, when given) one typo away from `variant`, a name
    that is not registered itself; None when there is none."""
    import optimizers

    if optimizers.registered_variant(variant) is not None:
        return None
    names = [v.name for v in optimizers.variants() if optimizer is None or v.optimizer == optimizer]
    close = difflib.get_close_matches(variant, names, n=1, cutoff=0.85 if optimizer else 0.6)
    return close[0] if close else None


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
    """A setting's value as its dataclass field's annotated type: a string is parsed as `--set`
    parses it ("true", "1e-3", "none", JSON for a list or dict), any other value checked against
    the type (`_checked_type`); a ValueError says what was expected."""
    origin = typing.get_origin(annotation)
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if origin in (typing.Union, types.UnionType):
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
            return None
        return coerce(value, args[0])
    if not isinstance(value, str):
        return _checked_type(value, annotation)
    if annotation is bool:
        if value.lower() in ("1", "true", "yes", "on"):
            return True
        if value.lower() in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"expected a boolean (true, false, yes, no, on, off, 1 or 0), got {value!r}")
    if annotation in (int, float):
        kind = "an integer" if annotation is int else "a number"
        try:
            number = annotation(value)
        except ValueError:
            raise ValueError(f"expected {kind}, got {value!r}") from None
        if annotation is float and not math.isfinite(number):
            raise ValueError(f"{value!r} is not a finite number")
        return number
    if annotation is str:
        return value
    try:
        return _checked_type(json.loads(value), annotation)
    except json.JSONDecodeError:
        example = "[]" if origin is list else "{}"
        raise ValueError(f"expected JSON such as {example}, got {value!r}") from None


def _checked_type(value: Any, annotation: Any) -> Any:
    """A value that is not a string, if it has the annotated type: any integer (NumPy's too) as
    an int, any real number as a float, NumPy's booleans as bools, a path (`os.PathLike`) as its
    string; else a ValueError."""
    if annotation in (int, float) and isinstance(value, numbers.Real) and not isinstance(value, bool):
        if annotation is int and isinstance(value, numbers.Integral):
            return int(value)
        if annotation is float:
            if not math.isfinite(value):
                raise ValueError(f"{value!r} is not a finite number")
            return float(value)
    if annotation is bool and isinstance(value, (bool, np.bool_)):
        return bool(value)
    if annotation is str and isinstance(value, os.PathLike):
        return os.fspath(value)
    expected = {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}.get(annotation)
    if expected is None:  # a container type: list[str], dict[str, Any]
        container = typing.get_origin(annotation) or annotation
        if isinstance(value, container):
            return value
        expected = f"a {container.__name__}"
    raise ValueError(f"expected {expected}, got {value!r}")


def apply_settings(config: RunConfig, settings: dict[str, str], option_classes: Sequence[type]) -> RunConfig:
    """Apply KEY=VALUE settings: RunConfig fields by name, else fields of any of `option_classes`
    (the optimizer Configs of a run or a sweep; each optimizer takes the fields it has)."""
    run_hints = {k: v for k, v in typing.get_type_hints(RunConfig).items() if k not in OWN_FLAGS}
    option_hints = {}
    for option_class in reversed(option_classes):
        option_hints.update(typing.get_type_hints(option_class))
    options = dict(config.optimizer_options)
    changes = {}
    for key, value in settings.items():
        if key in OWN_FLAGS:
            raise UnknownNameError(f"{key} is not a --set setting; {OWN_FLAGS[key]}")
        if key not in run_hints and key not in option_hints:
            settable = sorted({*run_hints, *option_hints})
            near = difflib.get_close_matches(key, settable, n=3)
            owners = _optimizers_with_option(key)
            if owners:
                raise UnknownNameError(
                    f"{key!r} is a setting of {', '.join(owners)}, not of the optimizer(s) run here; settable: "
                    f"{', '.join(settable)}"
                )
            hint = f"did you mean {' or '.join(near)}? " if near else _elsewhere_hint(key)
            raise UnknownNameError(f"unknown setting {key!r}; {hint}settable: {', '.join(settable)}")
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


def _elsewhere_hint(key: str) -> str:
    """'did you mean X (a setting of ...)? ' for the option of another optimizer nearest `key`, or ''."""
    near = difflib.get_close_matches(key, _option_hints(), n=1)
    return f"did you mean {near[0]} (a setting of {', '.join(_optimizers_with_option(near[0]))})? " if near else ""


def _option_hints(first: str | None = None) -> dict[str, Any]:
    """The fields of every registered optimizer's Config, with their annotated types (`first`'s
    where optimizers annotate a field differently)."""
    import optimizers

    names = [*optimizers.available(), *([first] if first else [])]
    return {key: hint for name in names for key, hint in typing.get_type_hints(optimizers.get(name).Config).items()}


def _optimizers_with_option(key: str) -> list[str]:
    """The registered optimizers whose Config has a field `key`."""
    import optimizers

    return [name for name in optimizers.available() if key in typing.get_type_hints(optimizers.get(name).Config)]


def optimizer_config(config: RunConfig, optimizer_config_class: type) -> Any:
    """The optimizer's Config with this run's overrides; overrides it lacks are dropped."""
    known = {f.name for f in dataclasses.fields(optimizer_config_class)}
    try:
        return optimizer_config_class(**{k: v for k, v in config.optimizer_options.items() if k in known})
    except ValueError as err:
        raise SettingError(f"{config.optimizer}: {err}") from None
