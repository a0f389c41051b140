"""What makes two runs the same run: the resolved configuration, less how and where it runs."""

from __future__ import annotations

import dataclasses
from typing import Any

from harness.config import RunConfig, optimizer_config

IDENTITY_EXCLUDED = (
    "out",
    "data",
    "device",
    "plugins",
    "cuda_graphs",
    "channels_last",
    "cudnn_benchmark",
    "triton_kernels",
    "hessian_method",
    "hessian_tolerance",
    "threads",
)
"""RunConfig fields that may change between a run and its resumption: where things are, and how
(not what) is computed."""


def resolved_config(config: RunConfig, optimizer_class: type) -> dict[str, Any]:
    """The run's full configuration: its RunConfig and the optimizer's complete Config."""
    options = optimizer_config(config, optimizer_class.Config)
    run = {k: v for k, v in dataclasses.asdict(config).items() if k != "optimizer_options"}
    return {
        "run": run,
        "optimizer_config": dataclasses.asdict(options),
        "model_options": dict(optimizer_class.model_options),
        "optimizer_revision": optimizer_class.revision_for(options),
    }


def _non_default(values: dict[str, Any], config_class: type, excluded: tuple[str, ...] = ()) -> dict[str, Any]:
    defaults = {f.name: f.default for f in dataclasses.fields(config_class) if f.default is not dataclasses.MISSING}
    return {k: v for k, v in values.items() if k not in excluded and (k not in defaults or v != defaults[k])}


def run_identity(resolved: dict[str, Any], optimizer_class: type) -> dict[str, Any]:
    """A resolved configuration without `IDENTITY_EXCLUDED` and without the fields at today's
    default values: a field added to the harness later (with a default) does not orphan existing
    runs, while a value stored by an older run that differs from today's default still counts.
    The optimizer's `revision` counts from 2 on (a run stored before revisions existed was made
    at revision 1), so raising it sets apart the runs made before."""
    identity = {
        "run": _non_default(resolved.get("run", {}), RunConfig, IDENTITY_EXCLUDED),
        "optimizer_config": _non_default(resolved.get("optimizer_config", {}), optimizer_class.Config),
        "model_options": resolved.get("model_options", {}),
    }
    revision = resolved.get("optimizer_revision", 1)
    if revision != 1:
        identity["optimizer_revision"] = revision
    return identity


def identity_differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """'section.key: old -> new' for every setting in which two identities differ (and
    'optimizer_revision: old -> new' when the optimizer's code changed what it computes)."""
    differences = [
        f"{section}.{key}: {old[section].get(key, 'default')!r} -> {new[section].get(key, 'default')!r}"
        for section in ("run", "optimizer_config", "model_options")
        for key in sorted({*old[section], *new[section]})
        if old[section].get(key) != new[section].get(key)
    ]
    old_revision, new_revision = old.get("optimizer_revision", 1), new.get("optimizer_revision", 1)
    if old_revision != new_revision:
        differences.append(
            f"optimizer_revision: {old_revision} -> {new_revision} (the optimizer's code now computes something else)"
        )
    return differences
