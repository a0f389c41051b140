"""Tiny run configurations for the runner, sweep and CLI tests (real CIFAR-10, synthetic table),
the command lines reproducing them, and a way to start `python -m harness` in a subprocess."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
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
REPO = Path(__file__).resolve().parents[1]

TINY_SETTINGS = {
    **{key: TINY[key] for key in ("channels", "cells", "data_limit", "valid_batches")},
    "hessian": False,
    "batch_size": TINY["optimizer_options"]["batch_size"],
}
"""What TINY sets, as `--set` values valid for every optimizer (only the optimizer option all of
them have), with the Hessian off: for sweeps over several optimizers."""

RAISING_PLUGIN = '''
import optimizers


@optimizers.register("test-raises-in-step")
class RaisesInStep(optimizers.get("darts")):
    """DARTS whose weight step raises."""

    def step(self, train_batch, valid_batch):
        raise RuntimeError("boom in step")
'''
"""A plugin file's text: registers `test-raises-in-step`, a DARTS whose step raises."""


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


def set_args(settings: dict) -> list[str]:
    """`--set KEY=VALUE` arguments for `settings`."""
    return [arg for key, value in settings.items() for arg in ("--set", f"{key}={value}")]


def start_cli(args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
    """`python -m harness ARGS` from the repository, output (stdout and stderr) to a text pipe, in
    its own session so the whole process group can be killed; `env` adds environment variables."""
    return subprocess.Popen(
        [sys.executable, "-m", "harness", *args],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
