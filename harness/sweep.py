"""Sweeps: a grid of runs fanned out with joblib, on local processes (loky) or a Dask cluster.

Finished runs are skipped, interrupted ones resume (the runner does both), and a failing run is
recorded without stopping the others; its full log stays in its directory's run.log. With
`progress`, the sweep says when each run starts and finishes, and each run's epoch lines are
printed as they come (prefixed with the run's name). A run whose directory is locked by another process (e.g. a
worker left running by a killed sweep) is waited for, never run twice at once. On GPUs, each
run takes a slot (GPU, k) under a file lock, so at most `runs_per_gpu` runs share a GPU on each
machine.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.errors import HarnessError
from harness.config import RunConfig
from harness.locks import try_lock
from harness.run_log import LOG_FILE, default_threads, run_logging, set_threads

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
    log: str = ""
    """The run's log file (its run.log), where a failure's full traceback is."""

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
    """Whether the run of `config` finished (all epochs, or an early stop) under this same
    configuration; a finished run of another configuration is left to the runner to refuse."""
    import optimizers
    from harness.identity import identity_differences, resolved_config, run_identity
    from harness.results import CONFIG_FILE, is_complete, read_json, read_status

    run_dir = Path(config.out) / config.run_name
    try:
        if not is_complete(read_status(run_dir), config.epochs):
            return False
        for plugin in config.plugins:
            optimizers.load_plugin(plugin)
        optimizer_class = optimizers.get(config.optimizer)
        stored = run_identity(read_json(run_dir / CONFIG_FILE).get("resolved", {}), optimizer_class)
        return not identity_differences(stored, run_identity(resolved_config(config, optimizer_class), optimizer_class))
    except HarnessError:
        return False


def _printer(run_name: str) -> Callable[[str], None]:
    """A worker's log function: each line prefixed with the run's name, printed at once."""

    def log(line: str) -> None:
        for piece in str(line).splitlines():
            print(piece if piece.startswith(run_name) else f"[{run_name}] {piece}", flush=True)

    return log


def run_one(
    config: dict[str, Any], gpus: Sequence[int], runs_per_gpu: int, threads: int, progress: bool = False
) -> RunOutcome:
    """Run one search in a worker; every failure becomes an outcome, never an exception.

    Everything the run prints goes to its run.log (see `harness.run_log.run_logging`), and with
    `progress` to stdout too, each line prefixed with the run's name."""
    import torch

    from harness.runner import run_search

    run_config = RunConfig(**config)
    share = "one per run with GPUs" if gpus else "the sweep's share of the free cores"
    threads_how = None if run_config.threads else share
    run_config = dataclasses.replace(run_config, threads=run_config.threads or threads)  # this run's share
    run_dir = Path(run_config.out) / run_config.run_name
    log_file = str(run_dir / LOG_FILE)
    started = time.perf_counter()
    previous_threads = torch.get_num_threads()
    quiet: Callable[[str], None] = lambda _: None  # noqa: E731
    try:
        was_complete = _is_complete(run_config)
        if was_complete:
            return RunOutcome(run_config.run_name, "skipped", "", time.perf_counter() - started)
        with run_logging(run_dir, _printer(run_config.run_name) if progress else quiet) as log:
            set_threads(run_config.threads)  # the sweep's first line says how many
            log(f"{run_config.run_name}: started")
            if gpus:
                with gpu_slot(gpus, runs_per_gpu) as device:
                    log(f"on {device}")
                    run_search(
                        dataclasses.replace(run_config, device=device),
                        progress=False,
                        log=log,
                        wait=True,
                        threads_how=threads_how,
                    )
            else:
                run_search(run_config, progress=False, log=log, wait=True, threads_how=threads_how)
    except HarnessError as err:
        return RunOutcome(run_config.run_name, "failed", str(err), time.perf_counter() - started, log_file)
    except Exception:
        detail = traceback.format_exc(limit=4).strip().splitlines()[-1]
        return RunOutcome(run_config.run_name, "failed", detail, time.perf_counter() - started, log_file)
    finally:
        torch.set_num_threads(previous_threads)
    state = "skipped" if was_complete else "completed"
    return RunOutcome(run_config.run_name, state, "", time.perf_counter() - started, log_file)


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


def check_sweep(jobs: int, runs_per_gpu: int = 1, backend: str = "loky", threads: int | None = None) -> None:
    """Raise `HarnessError` for sweep options that cannot work (before anything is printed or run)."""
    if backend not in ("loky", "dask"):
        raise HarnessError(f"unknown sweep backend {backend!r}; use loky or dask")
    if jobs < 1 or runs_per_gpu < 1:
        raise HarnessError(f"--jobs and --runs-per-gpu must be at least 1, got {jobs} and {runs_per_gpu}")
    if threads is not None and threads < 1:
        raise HarnessError(f"--threads must be at least 1, got {threads}")
    if backend == "dask" and importlib.util.find_spec("distributed") is None:
        raise HarnessError(
            "--backend dask needs Dask, an optional extra: pip install -e '.[dask]' in the repository "
            "(or pip install 'dask[distributed]'); without it, use --backend loky (the default)"
        )


def threads_per_run(jobs: int, gpus: Sequence[int] = (), threads: int | None = None) -> int:
    """Intra-op threads of each run of a sweep: `threads` if given, 1 with GPUs, else the cores
    free to this process divided among the `jobs` concurrent runs (at least 1)."""
    if threads:
        return threads
    return 1 if gpus else default_threads(jobs)


class _Progress:
    """The sweep's own lines: how many runs are done, and each run's end."""

    def __init__(self, total: int, show: bool):
        self.total, self.show, self.done, self.started = total, show, 0, time.perf_counter()

    def say(self, line: str) -> None:
        if self.show:
            print(f"sweep: {line}", flush=True)

    def finished(self, outcome: RunOutcome) -> None:
        self.done += 1
        what = {"completed": "finished", "skipped": "complete already", "failed": "FAILED"}.get(outcome.state)
        detail = f": {outcome.detail}" + (f" (log: {outcome.log})" if outcome.log else "") if not outcome.ok else ""
        elapsed = time.perf_counter() - self.started
        self.say(f"[{self.done}/{self.total} done, {elapsed:.0f} s] {outcome.run} {what} in {outcome.seconds:.0f} s"
                 f"{detail}")  # fmt: skip


def run_sweep(
    configs: Sequence[RunConfig],
    jobs: int = 1,
    gpus: Sequence[int] = (),
    runs_per_gpu: int = 1,
    backend: str = "loky",
    scheduler: str | None = None,
    verbose: int = 0,
    *,
    threads: int | None = None,
    progress: bool | None = None,
) -> list[RunOutcome]:
    """Run every configuration; returns one outcome per run, in `configs` order. Never raises
    for a run that fails, nor when the worker pool breaks (a worker killed, e.g. out of memory):
    then the runs that did not finish are reported failed, and a second call resumes them.

    jobs: concurrent runs (with GPUs: at least len(gpus) * runs_per_gpu). threads: intra-op
    threads of each run (default `threads_per_run`: the free cores divided among the runs, 1
    with GPUs); a config's own `threads` wins. Numbers repeat for the same thread count.
    backend 'dask' uses the cluster at `scheduler`, or a LocalCluster of `jobs` workers.
    progress: print each run's start, epochs and end (default: when `verbose` > 0).
    """
    from joblib import Parallel, delayed, parallel_backend

    check_sweep(jobs, runs_per_gpu, backend, threads)
    show = bool(verbose) if progress is None else progress
    run_dirs = [Path(c.out) / c.run_name for c in configs]
    repeated = sorted({str(d) for d in run_dirs if run_dirs.count(d) > 1})
    if repeated:
        raise HarnessError(f"the sweep lists a run twice: {', '.join(repeated)}")
    if gpus:
        jobs = max(jobs, len(gpus) * runs_per_gpu)
    per_run = threads_per_run(jobs, gpus, threads)
    report = _Progress(len(configs), show)
    if backend == "loky" or not scheduler:  # the runs share this machine's files
        report.say("preparing the benchmark table, the search spaces and CIFAR-10 (once for all runs)")
        prepare_inputs(configs)
    tasks = [delayed(run_one)(dataclasses.asdict(c), list(gpus), runs_per_gpu, per_run, show) for c in configs]
    outcomes: dict[str, RunOutcome] = {}
    sys.stdout.flush()
    try:
        if backend == "loky":
            results = Parallel(n_jobs=jobs, backend="loky", return_as="generator_unordered")(tasks)
            for outcome in results:
                outcomes[outcome.run] = outcome
                report.finished(outcome)
        else:
            with _dask_client(scheduler, jobs), parallel_backend("dask"):
                for outcome in Parallel(n_jobs=jobs, return_as="generator_unordered")(tasks):
                    outcomes[outcome.run] = outcome
                    report.finished(outcome)
    except HarnessError:
        raise
    except Exception as err:
        first_line = (str(err).strip().splitlines() or [""])[0][:200]
        reason = (
            f"not finished: the sweep's workers broke off ({type(err).__name__}: {first_line}); "
            "run the sweep again to resume"
        )
        return [outcomes.get(c.run_name) or _outcome_on_disk(c, reason) for c in configs]
    return [outcomes[c.run_name] for c in configs]


@contextlib.contextmanager
def _dask_client(scheduler: str | None, workers: int) -> Iterator[Any]:
    try:
        from distributed import Client, LocalCluster
    except ImportError as err:
        raise HarnessError(
            "--backend dask needs Dask, an optional extra: pip install -e '.[dask]' (or 'dask[distributed]')"
        ) from err
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
