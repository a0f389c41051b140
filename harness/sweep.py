"""Sweeps: a grid of runs fanned out with joblib, on local processes (loky) or a Dask cluster.

Finished runs are skipped, interrupted ones resume (the runner does both), and a failing run is
recorded without stopping the others. A run whose directory is locked by another process (e.g. a
worker left running by a killed sweep) is waited for, never run twice at once. On GPUs, each
run takes a slot (GPU, k) under a file lock, so at most `runs_per_gpu` runs share a GPU on each
machine.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import tempfile
import time
import traceback
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.errors import HarnessError
from harness.config import RunConfig
from harness.locks import try_lock

SLOT_POLL_SECONDS = 1.0


def parse_int_list(text: str) -> list[int]:
    """'0-5' -> [0..5]; '1,3' -> [1, 3]; '0-2,7' -> [0, 1, 2, 7]; sorted, without repeats."""
    values: list[int] = []
    for part in text.split(","):
        part = part.strip()
        start, sep, end = part.partition("-")
        try:
            values.extend(range(int(start), int(end) + 1) if sep else [int(part)])
        except ValueError:
            raise HarnessError(f"cannot read {text!r} as integers (e.g. 0-5 or 1,3)") from None
        if sep and int(end) < int(start):
            raise HarnessError(f"empty range {part!r} in {text!r}: write it low-high, e.g. 0-5")
    return sorted(set(values))


@dataclass(frozen=True)
class RunOutcome:
    """How one run of a sweep ended: 'completed', 'skipped' (it was complete already) or 'failed'."""

    run: str
    state: str
    detail: str = ""
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.state in ("completed", "skipped")


def default_slot_folder() -> Path:
    return Path(tempfile.gettempdir()) / "nas-harness-gpu-slots"


@contextlib.contextmanager
def gpu_slot(gpus: Sequence[int], runs_per_gpu: int, folder: Path | None = None) -> Iterator[str]:
    """Hold a free (GPU, k) slot of this machine for the duration; yields the device name.

    Slots are lock files in `folder` (default: the temp folder's nas-harness-gpu-slots/);
    closing the file (or dying) releases the lock. Slot k of every GPU is tried before slot
    k + 1, so runs spread over the GPUs first. Blocks while all slots are held.
    """
    folder = Path(folder) if folder is not None else default_slot_folder()
    folder.mkdir(parents=True, exist_ok=True)
    while True:
        for k in range(runs_per_gpu):
            for gpu in gpus:
                handle = try_lock(folder / f"gpu{gpu}-slot{k}.lock")
                if handle is not None:
                    with handle:
                        yield f"cuda:{gpu}"
                    return
        time.sleep(SLOT_POLL_SECONDS)


def _is_complete(config: RunConfig) -> bool:
    from harness.results import is_complete, read_status

    try:
        return is_complete(read_status(Path(config.out) / config.run_name), config.epochs)
    except HarnessError:
        return False


def run_one(config: dict[str, Any], gpus: Sequence[int], runs_per_gpu: int, threads: int) -> RunOutcome:
    """Run one search in a worker; every failure becomes an outcome, never an exception."""
    import torch

    from harness.runner import run_search

    run_config = RunConfig(**config)
    started = time.perf_counter()
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(max(1, threads))
    try:
        was_complete = _is_complete(run_config)
        if gpus:
            with gpu_slot(gpus, runs_per_gpu) as device:
                run_search(
                    dataclasses.replace(run_config, device=device), progress=False, log=lambda _: None, wait=True
                )
        else:
            run_search(run_config, progress=False, log=lambda _: None, wait=True)
    except HarnessError as err:
        return RunOutcome(run_config.run_name, "failed", str(err), time.perf_counter() - started)
    except Exception:
        detail = traceback.format_exc(limit=4).strip().splitlines()[-1]
        return RunOutcome(run_config.run_name, "failed", detail, time.perf_counter() - started)
    finally:
        torch.set_num_threads(previous_threads)
    state = "skipped" if was_complete else "completed"
    return RunOutcome(run_config.run_name, state, "", time.perf_counter() - started)


def prepare_inputs(configs: Sequence[RunConfig]) -> None:
    """Make, once and before the runs fan out, what several runs would otherwise each make at the
    same time: the benchmark table (the synthetic one is built on first use, a .tfrecord converted),
    the search spaces' model lists, and CIFAR-10 (downloaded when missing). Errors are left for
    the runs to report; runs that are complete already need nothing."""
    from benchmarks.nasbench1shot1 import get_search_space
    from harness.benchmark import load_benchmark
    from harness.data import ensure_cifar10

    pending = [c for c in configs if not _is_complete(c)]
    for benchmark in sorted({c.benchmark for c in pending}):
        with contextlib.suppress(Exception):
            table = load_benchmark(benchmark)
            for space in sorted({c.space for c in pending if c.benchmark == benchmark}):
                get_search_space(space).best_errors(table)
    for data in sorted({c.data for c in pending}):
        with contextlib.suppress(Exception):
            ensure_cifar10(data)


def _outcome_on_disk(config: RunConfig, reason: str) -> RunOutcome:
    """The outcome of a run whose worker did not report back, from its status file."""
    if _is_complete(config):
        return RunOutcome(config.run_name, "completed")
    return RunOutcome(config.run_name, "failed", reason)


def run_sweep(
    configs: Sequence[RunConfig],
    jobs: int = 1,
    gpus: Sequence[int] = (),
    runs_per_gpu: int = 1,
    backend: str = "loky",
    scheduler: str | None = None,
    verbose: int = 0,
) -> list[RunOutcome]:
    """Run every configuration; returns one outcome per run, in `configs` order. Never raises
    for a run that fails, nor when the worker pool breaks (a worker killed, e.g. out of memory):
    then the runs that did not finish are reported failed, and a second call resumes them.

    jobs: concurrent runs (with GPUs: at least len(gpus) * runs_per_gpu); each run gets
    cpu_count // jobs intra-op threads (1 with GPUs), so numbers repeat for the same `jobs`.
    backend 'dask' uses the cluster at `scheduler`, or a LocalCluster of `jobs` workers.
    """
    from joblib import Parallel, delayed, parallel_backend

    if backend not in ("loky", "dask"):
        raise HarnessError(f"unknown sweep backend {backend!r}; use loky or dask")
    if jobs < 1 or runs_per_gpu < 1:
        raise HarnessError(f"--jobs and --runs-per-gpu must be at least 1, got {jobs} and {runs_per_gpu}")
    run_dirs = [Path(c.out) / c.run_name for c in configs]
    repeated = sorted({str(d) for d in run_dirs if run_dirs.count(d) > 1})
    if repeated:
        raise HarnessError(f"the sweep lists a run twice: {', '.join(repeated)}")
    if gpus:
        jobs = max(jobs, len(gpus) * runs_per_gpu)
    threads = max(1, (os.cpu_count() or 1) // jobs) if not gpus else 1
    if backend == "loky" or not scheduler:  # the runs share this machine's files
        prepare_inputs(configs)
    tasks = [delayed(run_one)(dataclasses.asdict(c), list(gpus), runs_per_gpu, threads) for c in configs]
    try:
        if backend == "loky":
            return Parallel(n_jobs=jobs, backend="loky", verbose=verbose)(tasks)
        with _dask_client(scheduler, jobs), parallel_backend("dask"):
            return Parallel(n_jobs=jobs, verbose=verbose)(tasks)
    except HarnessError:
        raise
    except Exception as err:
        first_line = (str(err).strip().splitlines() or [""])[0][:200]
        reason = (
            f"not finished: the sweep's workers broke off ({type(err).__name__}: {first_line}); "
            "run the sweep again to resume"
        )
        return [_outcome_on_disk(c, reason) for c in configs]


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
