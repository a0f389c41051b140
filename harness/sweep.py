"""Sweeps: a grid of runs fanned out with joblib, on local processes (loky) or a Dask cluster.

Finished runs are skipped, interrupted ones resume (the runner does both), and a failing run is
recorded without stopping the others. On GPUs, each run takes a slot (GPU, k) under a file
lock, so at most `runs_per_gpu` runs share a GPU on each machine.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import os
import tempfile
import time
import traceback
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from benchmarks.errors import HarnessError
from harness.config import RunConfig


def parse_int_list(text: str) -> list[int]:
    """'0-5' -> [0..5]; '1,3' -> [1, 3]; '0-2,7' -> [0, 1, 2, 7]."""
    values: list[int] = []
    for part in text.split(","):
        part = part.strip()
        start, sep, end = part.partition("-")
        try:
            values.extend(range(int(start), int(end) + 1) if sep else [int(part)])
        except ValueError:
            raise HarnessError(f"cannot read {text!r} as integers (e.g. 0-5 or 1,3)") from None
    return sorted(set(values))


SLOT_POLL_SECONDS = 1.0


@dataclass(frozen=True)
class RunOutcome:
    run: str
    state: str
    detail: str = ""


def _try_lock(path: Path) -> IO[str] | None:
    """An open file holding an exclusive lock on `path`, or None if another process holds it."""
    handle = open(path, "w")  # noqa: SIM115 (kept open while the lock is held)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    return handle


@contextlib.contextmanager
def gpu_slot(gpus: Sequence[int], runs_per_gpu: int) -> Iterator[str]:
    """Hold a free (GPU, k) slot of this machine for the duration; yields the device name.

    Slots are lock files in the temp folder; closing the file (or dying) releases the lock.
    """
    folder = Path(tempfile.gettempdir()) / "nas-harness-gpu-slots"
    folder.mkdir(exist_ok=True)
    while True:
        for k in range(runs_per_gpu):
            for gpu in gpus:
                handle = _try_lock(folder / f"gpu{gpu}-slot{k}.lock")
                if handle is not None:
                    with handle:
                        yield f"cuda:{gpu}"
                    return
        time.sleep(SLOT_POLL_SECONDS)


def run_one(config: dict[str, Any], gpus: Sequence[int], runs_per_gpu: int, threads: int) -> RunOutcome:
    """Run one search in a worker; every failure becomes an outcome, never an exception."""
    import torch

    from harness.runner import run_search

    run_config = RunConfig(**config)
    torch.set_num_threads(max(1, threads))
    try:
        if gpus:
            with gpu_slot(gpus, runs_per_gpu) as device:
                run_search(dataclasses.replace(run_config, device=device), progress=False, log=lambda _: None)
        else:
            run_search(run_config, progress=False, log=lambda _: None)
    except HarnessError as err:
        return RunOutcome(run_config.run_name, "failed", str(err))
    except Exception:
        return RunOutcome(run_config.run_name, "failed", traceback.format_exc(limit=4).strip().splitlines()[-1])
    return RunOutcome(run_config.run_name, "completed")


def run_sweep(
    configs: Sequence[RunConfig],
    jobs: int = 1,
    gpus: Sequence[int] = (),
    runs_per_gpu: int = 1,
    backend: str = "loky",
    scheduler: str | None = None,
    verbose: int = 0,
) -> list[RunOutcome]:
    """Run every configuration; returns one outcome per run, in `configs` order.

    jobs: concurrent runs (with GPUs: defaults to len(gpus) * runs_per_gpu when smaller);
    backend 'dask' uses the cluster at `scheduler`, or a LocalCluster of `jobs` workers.
    """
    from joblib import Parallel, delayed, parallel_backend

    if gpus:
        jobs = max(jobs, len(gpus) * runs_per_gpu)
    threads = max(1, (os.cpu_count() or 1) // max(1, jobs)) if not gpus else 1
    tasks = [delayed(run_one)(dataclasses.asdict(c), list(gpus), runs_per_gpu, threads) for c in configs]
    if backend == "loky":
        return Parallel(n_jobs=jobs, backend="loky", verbose=verbose)(tasks)
    if backend != "dask":
        raise HarnessError(f"unknown sweep backend {backend!r}; use loky or dask")
    with _dask_client(scheduler, jobs), parallel_backend("dask"):
        return Parallel(n_jobs=jobs, verbose=verbose)(tasks)


@contextlib.contextmanager
def _dask_client(scheduler: str | None, workers: int) -> Iterator[Any]:
    try:
        from distributed import Client, LocalCluster
    except ImportError as err:
        raise HarnessError("--backend dask needs the 'distributed' package: pip install 'dask[distributed]'") from err
    if scheduler:
        try:
            client = Client(scheduler, timeout="30s")
        except OSError as err:
            raise HarnessError(f"cannot reach the Dask scheduler at {scheduler}: {err}") from err
        with client:
            yield client
        return
    with (
        LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None) as cluster,
        Client(cluster) as client,
    ):
        yield client
