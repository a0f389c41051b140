"""Tiny run configurations for the runner and sweep tests (real CIFAR-10, synthetic table)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import optimizers
from harness.config import RunConfig, make_config

TINY = {
    "epochs": 3,
    "channels": 2,
    "cells": 3,
    "data_limit": 192,
    "valid_batches": 1,
    "benchmark": "synthetic",
    "device": "cpu",
    "optimizer_options": {"batch_size": 32, "eval_samples": 8, "eval_top": 2},
}


def tiny_config(
    cifar_root: Path, out: Path, optimizer: str = "darts", space: int = 1, seed: int = 0, **overrides
) -> RunConfig:
    """A run of 3 epochs x 3 steps on 192 images with a 2-channel, 3-cell supernet."""
    return make_config(
        optimizer, space, seed, "paper", **{**TINY, "data": str(cifar_root), "out": str(out), **overrides}
    )


def cli_args(config: RunConfig) -> list[str]:
    """`python -m harness run` arguments reproducing `config`."""
    args = [
        "run",
        "--optimizer",
        config.optimizer,
        "--space",
        str(config.space),
        "--seed",
        str(config.seed),
        "--epochs",
        str(config.epochs),
        "--data",
        config.data,
        "--benchmark",
        config.benchmark,
        "--out",
        config.out,
        "--device",
        config.device,
        "--quiet",
    ]
    for key in ("channels", "cells", "data_limit", "valid_batches", "hessian"):
        args += ["--set", f"{key}={getattr(config, key)}"]
    known = {f.name for f in dataclasses.fields(optimizers.get(config.optimizer).Config)}
    for key, value in config.optimizer_options.items():
        if key in known:
            args += ["--set", f"{key}={value}"]
    return args
