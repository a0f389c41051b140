"""A notebook-style session with the Python API, end to end (docs/api.md explains each step).

    .venv/bin/python examples/notebook_session.py [--data DIR] [--out DIR]

It looks models up in a NAS-Bench-101 table, discretizes architecture weights in a
NAS-Bench-1Shot1 space, runs two tiny searches (DARTS and SDARTS-RS, 2 epochs each, about a
minute on 2 busy CPU cores), collects their per-epoch tables and draws the figures. It uses the
synthetic table (made-up accuracies: for trying the API, not for conclusions) and CIFAR-10 from
--data (a folder holding cifar-10-batches-py/; downloaded there when missing). Without --data,
it prepares the offline copy beside the repository (../shared/data) into a temporary folder when
there is one. CI runs this file (tests/test_api_example.py).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

import plots
from harness.api import collect, get_search_space, load_benchmark, make_config, search

SHARED = Path(__file__).resolve().parents[2] / "shared"


def cifar_folder(data: str | None, scratch: Path) -> str:
    """--data, else the offline copy in ../shared prepared into `scratch`, else data/ (downloaded)."""
    if data:
        return data
    tool = SHARED / "tools" / "prepare_cifar10.py"
    if tool.is_file():
        subprocess.run([sys.executable, str(tool), str(scratch), "--limit", "1000"], check=True, capture_output=True)
        return str(scratch)
    return "data"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="folder holding cifar-10-batches-py/ (default: see above)")
    parser.add_argument("--out", help="folder for the runs and figures (default: a temporary folder)")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="nas-harness-example-"))
    out = Path(args.out) if args.out else scratch / "results"

    # 1. The NAS-Bench-101 table: "synthetic", or the path of nasbench_only108.tfrecord.
    table = load_benchmark("synthetic")
    space = get_search_space(1)
    spec = next(space.enumerate())
    print(f"{table!r}\nfirst model of space 1: {spec} ({spec.hash()}), valid: {table.is_valid(spec)}")
    print("  every repeat:", [round(r["final_test_accuracy"], 4) for r in table.query(spec)])
    print("  one at random:", round(table.query(spec, repeat="random", rng=0)["final_test_accuracy"], 4))
    print("  mean errors:", {k: round(v, 4) for k, v in table.mean_errors(spec).items()})
    many = table.query_many(space.hashes())
    print(f"  space 1: {len(many['found'])} models, best mean test error {np.nanmin(many['test_error']):.4f}")

    # 2. Discretize architecture weights (numpy arrays or tensors of the space's shapes).
    rng = np.random.default_rng(0)
    alphas = [rng.normal(size=shape) for shape in space.alpha_shapes]
    chosen = space.discretize(alphas)
    print(f"random alphas -> {chosen}: test error {table.mean_errors(chosen)['test_error']:.4f}")

    # 3. Two tiny searches; each writes OUT/<run>/ (epochs.parquet, config.json, run.log) and
    #    `search` returns its per-epoch table (`run_search` returns the directory instead).
    data = cifar_folder(args.data, scratch / "cifar")
    # hessian=False keeps this to seconds; the default (True) adds the dominant eigenvalue to every
    # row, which takes from seconds to minutes per epoch on a CPU.
    tiny = {"channels": 2, "cells": 3, "data_limit": 192, "valid_batches": 1, "hessian": False}
    for optimizer in ("darts", "sdarts-rs"):
        config = make_config(
            optimizer, 1, seed=0, preset="quick", epochs=2, benchmark="synthetic", data=data, out=str(out),
            device="cpu", threads=1, optimizer_options={"batch_size": 32}, **tiny,
        )  # fmt: skip
        epochs = search(config)
        print(f"{config.run_name}: {len(epochs)} rows, final test error {epochs['test_error'].iloc[-1]:.4f}")

    # 4. Every run's rows in one tidy table, then figures and summaries from that table alone.
    frame = collect(out)
    print(plots.summary(frame)[["space", "method", "seeds", "final_epoch", "test_error_mean"]].to_string(index=False))
    written = plots.make_figures(frame, out / "figures", size="one-column")
    print("figures:", ", ".join(p.name for p in written))
    print(f"everything is in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
