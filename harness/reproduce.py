"""`reproduce`: the grid of the SDARTS paper's NAS-Bench-1Shot1 experiments (Figures 3-5) at a
chosen scale, run as a resumable sweep, then collected, plotted and checked against the paper's
claims (`plots.claims`) in a report.

Scales: `paper` is the paper's setting (100 epochs, 6 seeds, spaces 1-3, the full supernet: a
GPU job); `small` a reduced model and data set for 2 CPU cores (see docs/reproduction.md for
what it takes); `tiny` a smoke test of the whole pipeline.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from harness.config import RunConfig, apply_settings, make_config

PAPER_METHODS = ("enas", "darts", "gdas", "nasp", "pcdarts", "sdarts-rs", "sdarts-adv", "hessian-reg")
"""Figures 4-5's seven optimizers and Figure 3's explicit Hessian regularisation."""


@dataclass(frozen=True)
class Scale:
    """A named size of the grid: its default spaces, seeds and methods, and the settings of every
    run (RunConfig fields and optimizer Config fields, as `--set` takes them)."""

    name: str
    description: str
    spaces: tuple[int, ...]
    seeds: tuple[int, ...]
    methods: tuple[str, ...]
    settings: dict[str, Any] = field(default_factory=dict)


SCALES: dict[str, Scale] = {
    "paper": Scale(
        "paper",
        "the paper's setting: 100 epochs, the full supernet (16 channels, 9 cells) on all of CIFAR-10's training "
        "set, batch 96, 6 seeds, spaces 1-3 (a GPU job: about 2 h per DARTS run on one H100, SPEC §7)",
        spaces=(1, 2, 3),
        seeds=tuple(range(6)),
        methods=PAPER_METHODS,
    ),
    "small": Scale(
        "small",
        "a supernet of 4 channels and 3 cells on 4,000 CIFAR-10 images (2,000 search-train, 2,000 search-valid), "
        "batch 32, 20 epochs, validation on 8 batches, 2 seeds, space 1: sized for 2 CPU cores",
        spaces=(1,),
        seeds=(0, 1),
        methods=("darts", "sdarts-rs", "sdarts-adv", "gdas", "nasp", "pcdarts", "hessian-reg"),
        settings={
            "epochs": 20,
            "channels": 4,
            "cells": 3,
            "data_limit": 4000,
            "valid_batches": 8,
            "batch_size": 32,
            "eval_samples": 50,
            "eval_top": 2,
        },
    ),
    "tiny": Scale(
        "tiny",
        "a smoke test of the pipeline: 4 channels (PC-DARTS needs 4), 3 cells, 192 images, 2 epochs, one seed, space 1",
        spaces=(1,),
        seeds=(0,),
        methods=PAPER_METHODS,
        settings={
            "epochs": 2,
            "channels": 4,
            "cells": 3,
            "data_limit": 192,
            "valid_batches": 1,
            "batch_size": 32,
            "eval_samples": 4,
            "eval_top": 1,
            "controller_steps": 3,
        },
    ),
}


def grid_configs(
    scale: Scale,
    out: str,
    spaces: Sequence[int] | None = None,
    seeds: Sequence[int] | None = None,
    methods: Sequence[str] | None = None,
    **run_options: Any,
) -> list[RunConfig]:
    """One RunConfig per (space, method, seed) of the grid, with the scale's settings, then
    `run_options` (RunConfig fields such as data, benchmark, device; None values ignored)."""
    import optimizers

    names = list(methods or scale.methods)
    classes = [optimizers.get(name).Config for name in names]
    known = {f.name for config_class in (RunConfig, *classes) for f in dataclasses.fields(config_class)}
    settings = {key: str(value) for key, value in scale.settings.items() if key in known}
    configs = []
    for space in spaces or scale.spaces:
        for name in names:
            for seed in seeds or scale.seeds:
                config = make_config(name, space, seed, "paper", out=out, **run_options)
                configs.append(apply_settings(config, settings, classes))
    return configs


def grid_rows(collected: pd.DataFrame, configs: Sequence[RunConfig]) -> tuple[pd.DataFrame, list[str]]:
    """The rows of a collected table (`harness.results.collect`) that belong to the grid's runs
    (by their `run` column, the run's name), and the sorted names of the other runs the table
    holds (e.g. of a larger grid run earlier into the same folder)."""
    in_grid = collected["run"].isin({config.run_name for config in configs})
    return collected[in_grid].reset_index(drop=True), sorted(set(collected.loc[~in_grid, "run"]))


def report_markdown(
    scale: Scale,
    command: str,
    configs: Sequence[RunConfig],
    failed: Sequence[str],
    figures: Sequence[Path],
    claims: str,
    left_out: Sequence[str] = (),
) -> str:
    """The report: what was run, what failed, the figures and the claim table; `left_out`: the
    runs in the results folder that are not in the grid (not drawn, not checked)."""
    spaces = sorted({c.space for c in configs})
    seeds = sorted({c.seed for c in configs})
    methods = list(dict.fromkeys(c.optimizer for c in configs))
    lines = [
        f"# Reproduction of the SDARTS paper's NAS-Bench-1Shot1 experiments: scale `{scale.name}`",
        "",
        f"Command: `{command}`",
        "",
        f"Scale: {scale.description}.",
        f"Grid: methods {', '.join(methods)}; spaces {', '.join(map(str, spaces))}; seeds {', '.join(map(str, seeds))}"
        f" ({len(configs)} runs).",
        "",
    ]
    if left_out:
        lines += [
            f"Left out: {len(left_out)} other run(s) in the results folder, not in this grid "
            f"({', '.join(left_out)}); its all_epochs table keeps them.",
            "",
        ]
    if failed:
        lines += ["Runs that did not complete (their rows so far are included):", ""]
        lines += [f"- {name}" for name in failed] + [""]
    lines += ["## Claims", "", claims, "", "## Figures", ""]
    lines += [f"- [{path.name}]({path.name})" for path in figures if path.suffix == ".png"]
    return "\n".join(lines) + "\n"
