"""One search run = one (optimizer[, variant], space, seed): measure the state before training
(row 0), then train, and after every epoch measure row k = after k epochs (the registered
measurements: the discretized architecture looked up in NAS-Bench-101, the supernet's validation,
the Hessian's dominant eigenvalue, timings, and the optimizer's own columns), let the optimizer
observe it (it may stop the search), and write the table, the alphas and a checkpoint. A second
call resumes."""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from tqdm import tqdm

import optimizers
from benchmarks.errors import HarnessError
from benchmarks.nasbench1shot1 import get_search_space
from benchmarks.nasbench101 import NASBench101
from harness.benchmark import load_benchmark
from harness.checkpoint import (
    RESTORE,
    CheckpointError,
    config_digest,
    load_checkpoint,
    save_checkpoint,
    set_rng_state,
)
from harness.cifar10_files import data_fingerprint
from harness.components import backend_settings, build_model, resolve_device, search_data, use_cuda_graphs
from harness.config import RunConfig, SettingError, optimizer_config
from harness.cuda_graphs import GraphedStep
from harness.data import CIFAR10_TRAIN_IMAGES, SearchData, ensure_cifar10, read_cifar10_train
from harness.identity import identity_differences, resolved_config, run_identity
from harness.locks import hold_lock
from harness.measurements import EpochContext, RunFailed, TrainingStats, measurements
from harness.records import ALPHA_COLUMNS, alpha_records, plain
from harness.recovery import check_same_data, recover_run_directory, table_dtypes
from harness.results import (
    ALPHAS_FILE,
    CHECKPOINT_FILE,
    CONFIG_FILE,
    LOCK_FILE,
    SAMPLES_FILE,
    TABLE_FILE,
    is_complete,
    read_json,
    read_status,
    read_table,
    to_frame,
    write_json,
    write_status,
    write_table,
)
from harness.run_log import FREE_CORES, environment, finished_line, run_logging, set_threads, threads_line
from harness.signals import sigterm_as_interrupt
from harness.storage import record_failure
from optimizers.base import Batch

__all__ = ["RunFailed", "SearchRun", "run_search"]


class EpochValidation:
    """The search-valid split as an optimizer's `end_epoch` sees it (`ValidationData`)."""

    def __init__(self, data: SearchData, epoch: int, max_batches: int | None):
        self.data, self.epoch, self.max_batches = data, epoch, max_batches

    def batch(self) -> tuple[Tensor, Tensor]:
        return self.data.fixed_valid_batches(self.epoch)[0]

    def batches(self) -> Iterator[tuple[Tensor, Tensor]]:
        return itertools.islice(self.data.valid_batches(), self.max_batches)


class SearchRun:
    """A run directory and the objects of one search; `execute()` runs or resumes it."""

    def __init__(
        self,
        config: RunConfig,
        progress: bool = True,
        log: Callable[[str], None] = print,
        wait: bool = False,
        threads_how: str | None = None,
    ):
        """threads_how: how `config.threads` was chosen, for the run's first line, when not by
        the user (a sweep's share of the cores)."""
        self.threads_how = threads_how
        for plugin in config.plugins:
            optimizers.load_plugin(plugin)
        self.config = config
        self.progress = progress
        self.log = log
        self.wait = wait
        self.optimizer_class = optimizers.get(config.optimizer)
        self.space = get_search_space(config.space)
        self.resolved = resolved_config(config, self.optimizer_class)
        self.identity = run_identity(self.resolved, self.optimizer_class)
        self.digest = config_digest(self.identity)
        self.run_dir = Path(config.out) / config.run_name

    def prepare_directory(self) -> None:
        """Create the run directory, or check that an existing one holds this same run (then keep
        its digest, which its checkpoint carries) or one that completed no epoch (then start over
        with this configuration). Call with the directory's lock held."""
        config_path = self.run_dir / CONFIG_FILE
        if config_path.exists():
            existing = read_json(config_path)
            old = run_identity(existing.get("resolved", {}), self.optimizer_class)
            differences = identity_differences(old, self.identity)
            if not differences:
                self.digest = existing.get("config_digest", self.digest)
            elif not self._trained():
                self.log(
                    f"{self.run_dir}: no epoch was completed; starting over with the new configuration "
                    f"({'; '.join(differences)})"
                )
                for name in (CHECKPOINT_FILE, TABLE_FILE, ALPHAS_FILE, SAMPLES_FILE):
                    (self.run_dir / name).unlink(missing_ok=True)
            else:
                raise HarnessError(
                    f"{self.run_dir} holds a run with a different configuration ({'; '.join(differences)}). "
                    "Use another --out, or delete that directory to start over."
                )
        self.run_dir.mkdir(parents=True, exist_ok=True)

    def _trained(self) -> bool:
        """Whether the directory holds a trained epoch (its table has a row after epoch 0; a missing
        or unreadable table counts as trained when a checkpoint exists: recovery rebuilds the table
        from the checkpoint's rows)."""
        table = self.run_dir / TABLE_FILE
        if not table.exists():
            return (self.run_dir / CHECKPOINT_FILE).exists()
        try:
            return bool((read_table(table)["epoch"] >= 1).any())
        except HarnessError:
            return (self.run_dir / CHECKPOINT_FILE).exists()

    def execute(self) -> Path:
        """Run the search to its last epoch (resuming if possible); returns the run directory.

        Holds the run directory's lock throughout (waits for another process holding it when
        `wait`, else fails). Any error, or an interrupt, is recorded in status.json.
        """
        if not self.run_dir.exists():
            resolve_device(self.config.device)  # a device this machine lacks fails before the folder is made
        with hold_lock(self.run_dir / LOCK_FILE, self.wait, f"run directory {self.run_dir}"), sigterm_as_interrupt():
            console, notices = self.log, []
            self.log = notices.append  # what preparing the folder says goes to run.log too, once it is open
            try:
                self.prepare_directory()
                recover_run_directory(self.run_dir, table_dtypes(self.optimizer_class), self.log)
            except BaseException:
                for line in notices:
                    console(line)
                raise
            with run_logging(self.run_dir, console) as self.log:
                for line in notices:
                    self.log(line)
                threads = set_threads(self.config.threads)
                how = self.threads_how or ("as asked" if self.config.threads is not None else FREE_CORES)
                self.log(threads_line(self.config.run_name, threads, how))
                self._execute()
                self.log(finished_line(self.run_dir))
        return self.run_dir

    def _execute(self) -> None:
        """Run or resume the search, recording any error or interrupt in status.json. A complete
        run is left alone, unless its config.json is gone and its checkpoint is there: the search then
        resumes after its last epoch, which checks the checkpoint against this configuration and
        writes config.json."""
        status = read_status(self.run_dir) or {}
        epochs = self.config.epochs
        config_gone = not (self.run_dir / CONFIG_FILE).exists() and (self.run_dir / CHECKPOINT_FILE).exists()
        if is_complete(status, epochs) and not config_gone:
            done = status["epochs_completed"]
            stopped = f", stopped early: {status['stop']['reason']}" if status.get("stop") else ""
            self.log(f"{self.config.run_name}: already complete ({done} of {epochs} epochs{stopped}), nothing to do")
            return
        self.epochs_done = status.get("epochs_completed", 0)
        try:
            self._search()
        except KeyboardInterrupt:
            write_status(
                self.run_dir,
                "interrupted",
                self.epochs_done,
                epochs,
                error="interrupted; run the same command again to resume",
            )
            raise
        except Exception as err:
            failure = record_failure(
                err,
                lambda reason: write_status(
                    self.run_dir, "failed", self.epochs_done, epochs, failed_epoch=self.epochs_done, error=reason
                ),
            )
            if failure is err:
                raise
            raise failure from err

    def _search(self) -> None:
        epochs = self.config.epochs
        device = resolve_device(self.config.device)
        with backend_settings(self.config, device):
            torch.manual_seed(self.config.seed)
            table = load_benchmark(self.config.benchmark)
            best_test, best_valid = self._space_bests(table)
            data = self._load_data(device)
            model = build_model(self.config, self.optimizer_class, device)
            optimizer = self.optimizer_class(
                self.space, model, optimizer_config(self.config, self.optimizer_class.Config)
            )
            search = _Search(self, data, model, optimizer, table, best_test)
            records, stop = self._resume(model, optimizer)  # checks first that a checkpoint is this run's
            write_json(self.run_dir / CONFIG_FILE, self._description(table, best_test, best_valid, data, device))
            search.records = records
            if not records["rows"]:
                stop = search.measure_row(0, time.perf_counter(), None, lambda: _last_valid_batch(data, 0))
            self.epochs_done = search.epochs_done
            write_status(self.run_dir, "running", self.epochs_done, epochs)
            for epoch in range(self.epochs_done, epochs):
                if stop is not None:
                    break
                stop = search.train_and_measure(epoch)
                self.epochs_done = epoch + 1
            details = {"stop": stop} if stop is not None else {}
            write_status(self.run_dir, "completed", self.epochs_done, epochs, **details)

    def _rerun_hint(self, epoch: int) -> str:
        """Where a run with other settings can go after a failure in `epoch`."""
        if epoch == 0:
            return f"; rerunning with other settings starts {self.run_dir} over"
        return f" and rerun with another --out (the epochs before are kept in {self.run_dir}) or delete that folder"

    def _space_bests(self, table: NASBench101) -> tuple[float, float]:
        """The space's best mean test and validation errors in `table`, which must hold every
        model of the space (else regret would be measured against a wrong best)."""
        stats = table.query_many(self.space.hashes())
        missing = int((~stats["found"]).sum())
        if missing:
            raise HarnessError(
                f"the {table.name} table {table.path} lacks {missing} of the {len(stats['found'])} models of search "
                f"space {self.space.number}; use the full NAS-Bench-101 table, or --benchmark synthetic"
            )
        return float(stats["test_error"].min()), float(stats["valid_error"].min())

    def _description(
        self, table: NASBench101, best_test: float, best_valid: float, data: SearchData, device: torch.device
    ) -> dict[str, Any]:
        """config.json: the resolved configuration and what the run was measured against and on."""
        return {
            "config_digest": self.digest,
            "resolved": self.resolved,
            "benchmark": {
                "name": table.name,
                "synthetic": table.synthetic,
                "best_test_error": best_test,
                "best_valid_error": best_valid,
                "regret_against": "best_test_error (this table's best mean test error in the space)",
                "reference_best_test_error": self.space.reference_best_test_error,
                "reference_best_valid_error": self.space.reference_best_valid_error,
                "metadata": table.metadata,
            },
            "environment": environment(device),
            "data": {
                "search_train": len(data.train),
                "search_valid": len(data.valid),
                "steps_per_epoch": data.steps_per_epoch,
                "fingerprint": self.data_fingerprint,
            },
        }

    def _load_data(self, device: torch.device) -> SearchData:
        images, labels = read_cifar10_train(ensure_cifar10(self.config.data))
        if not self.config.data_limit and len(images) < CIFAR10_TRAIN_IMAGES:
            self.log(
                f"warning: {self.config.data} holds {len(images):,} CIFAR-10 training images, not the "
                f"{CIFAR10_TRAIN_IMAGES:,} of the official files (a subset?): this search uses all of them; "
                "the paper's setting needs the full set"
            )
        if self.config.data_limit:
            images, labels = images[: self.config.data_limit], labels[: self.config.data_limit]
        self.data_fingerprint = data_fingerprint(images, labels)
        check_same_data(self.run_dir, self.data_fingerprint)
        batch_size = optimizer_config(self.config, self.optimizer_class.Config).batch_size
        data = search_data(self.config, batch_size, device, images, labels)
        fresh = self.config.hessian and self.config.hessian_data == "fresh"
        if fresh and self.config.hessian_batches * batch_size > len(data.valid):
            raise SettingError(
                f"hessian_batches={self.config.hessian_batches} batches of {batch_size} need "
                f"{self.config.hessian_batches * batch_size} search-valid images, but there are {len(data.valid)}; "
                "lower hessian_batches or raise data_limit"
            )
        return data

    def _resume(
        self, model: torch.nn.Module, optimizer: optimizers.SearchOptimizer
    ) -> tuple[dict[str, list[dict[str, Any]]], dict[str, Any] | None]:
        """Load the checkpoint if there is one: (the records written so far, the early stop if the
        optimizer asked for one); else empty records."""
        path = self.run_dir / CHECKPOINT_FILE
        if not path.exists():
            return {"rows": [], "alphas": [], "samples": []}, None
        state = load_checkpoint(path, self.digest)
        try:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            set_rng_state(state["rng"])
        except torch.OutOfMemoryError:
            raise
        except (RuntimeError, KeyError, ValueError, TypeError, IndexError) as err:
            detail = " ".join(str(err).split())  # PyTorch lists every mismatch on a line of its own
            raise CheckpointError(
                f"checkpoint {path} does not fit this run ({type(err).__name__}: {detail[:240]}): {RESTORE}"
            ) from err
        done = state["epochs_completed"]
        if done < self.config.epochs and state["stop"] is None:
            self.log(f"{self.config.run_name}: resuming after epoch {done} of {self.config.epochs}")
        return state["records"], state["stop"]

    def _summary(self, row: dict) -> str:
        """The console line of a row; the Hessian's parts only where one was computed, and a
        warning where the supernet's validation loss is not finite (the table keeps it)."""
        eigenvalue, hessian_seconds = row["hessian_eigenvalue"], row["hessian_seconds"]
        computed = eigenvalue == eigenvalue or hessian_seconds > 0  # a NaN eigenvalue that took time is shown
        eigen = f" | Hessian eig {'n/a' if eigenvalue != eigenvalue else f'{eigenvalue:.4g}'}" if computed else ""
        train = (
            "before training"
            if row["epoch"] == 0
            else f"train loss {row['train_loss']:.3f} acc {row['train_accuracy']:.1%}"
        )
        return (
            f"{row['run']} | epoch {row['epoch']}/{self.config.epochs} | test error {row['test_error']:.4f} "
            f"(regret {row['regret']:.4f}){eigen} | {train} | supernet valid acc "
            f"{row['supernet_valid_accuracy']:.1%} | {row['epoch_seconds']:.1f} s"
            + (f" + {hessian_seconds:.1f} s Hessian" if computed else "")
            + (f" | stopped: {row['stop_reason']}" if row["stop_reason"] else "")
            + (NONFINITE_VALIDATION if not math.isfinite(row.get("supernet_valid_loss", 0.0)) else "")
        )


NONFINITE_VALIDATION = (
    " | warning: the supernet's validation loss is not finite (its BatchNorm running statistics may have "
    "diverged: check bn_momentum)"
)


def _last_valid_batch(data: SearchData, epoch: int) -> Batch:
    """The last search-valid batch of epoch `epoch`'s training loop (its data streams are
    functions of (seed, epoch): drawing it changes nothing else)."""
    *_, (_, valid_batch) = data.epoch(epoch)
    return valid_batch


class _Search:
    """The objects of one search and its records; trains epochs, measures rows, writes them."""

    def __init__(
        self,
        run: SearchRun,
        data: SearchData,
        model: torch.nn.Module,
        optimizer: optimizers.SearchOptimizer,
        table: NASBench101,
        best_test: float,
    ):
        self.run, self.config = run, run.config
        self.data, self.model, self.optimizer, self.table, self.best_test = data, model, optimizer, table, best_test
        self.graphs = use_cuda_graphs(self.config, data.device)
        self.graphed = GraphedStep(optimizer) if self.graphs and optimizer.capturable else None
        self.measurements = measurements()
        self.dtypes = table_dtypes(type(optimizer))
        self.records: dict[str, list[dict[str, Any]]] = {"rows": [], "alphas": [], "samples": []}

    @property
    def epochs_done(self) -> int:
        return self.records["rows"][-1]["epoch"] if self.records["rows"] else 0

    def train_and_measure(self, epoch: int) -> dict[str, Any] | None:
        """Train epoch `epoch` (0-based), then measure and write row epoch + 1; returns the early
        stop the optimizer asked for, if any."""
        started = time.perf_counter()
        training, last_batch = self._train(epoch)
        self.optimizer.end_epoch(EpochValidation(self.data, epoch, self.config.valid_batches))
        return self.measure_row(epoch + 1, started, training, lambda: last_batch)

    def _train(self, epoch: int) -> tuple[TrainingStats, Batch]:
        """One epoch of search steps: its statistics and its last search-valid batch."""
        data, optimizer = self.data, self.optimizer
        optimizer.new_epoch(epoch, self.config.epochs)
        step_fn = optimizer.step
        if self.graphed is not None:
            self.graphed.reset()
            step_fn = self.graphed
        self.model.train()
        losses = torch.zeros(data.steps_per_epoch, device=data.device)
        correct = torch.zeros((), device=data.device, dtype=torch.long)
        seen = 0
        bar = tqdm(
            total=data.steps_per_epoch,
            desc=f"{self.config.run_name} epoch {epoch + 1}/{self.config.epochs}",
            leave=False,
            disable=None if self.run.progress else True,  # None: only on a terminal
            unit="step",
        )
        valid_batch = None
        for step, (train_batch, valid_batch) in enumerate(data.epoch(epoch)):
            stats = step_fn(train_batch, valid_batch)
            batch = len(train_batch[1])
            losses[step] = stats["loss"] * batch
            correct += stats["correct"]
            seen += batch
            bar.update()
        bar.close()
        finite = torch.isfinite(losses)
        if not bool(finite.all()):
            bad = int((~finite).nonzero()[0])
            raise RunFailed(
                f"non-finite training loss ({float(losses[bad])}) at epoch {epoch}, step {bad}: the search "
                "diverged. Lower the learning rates (e.g. --set weight_lr=... or arch_lr=...) or the gradient "
                f"clip (grad_clip){self.run._rerun_hint(epoch)}"
            )
        return TrainingStats(losses.sum(), correct, seen), valid_batch

    def measure_row(
        self, epoch: int, started: float, training: TrainingStats | None, last_valid_batch: Callable[[], Batch]
    ) -> dict[str, Any] | None:
        """Measure row `epoch` (epochs completed), let the optimizer observe it, write the table,
        the records and the checkpoint; returns the early stop the optimizer asked for, if any."""
        context = EpochContext(
            config=self.config,
            epoch=epoch,
            optimizer=self.optimizer,
            model=self.model,
            data=self.data,
            table=self.table,
            best_test_error=self.best_test,
            started=started,
            training=training,
            last_valid_batch=_LazyBatch(last_valid_batch),
            graphs=self.graphs,
        )
        stages = tqdm(
            self.measurements,
            desc=f"{self.config.run_name} row {epoch}",
            leave=False,
            disable=None if self.run.progress else True,  # None: only on a terminal
            unit="measurement",
        )
        for measurement in stages:
            stages.set_postfix_str(measurement.name)
            context.values.update(measurement.measure(context))
        declared = {k: v for k, v in self.optimizer.epoch_columns().items() if k in self.optimizer.columns}
        row = plain({**context.values, **declared})
        rows = self.records["rows"]
        rows.append(row)
        self.records["alphas"] += alpha_records(self.run.space, self.optimizer.arch_parameters(), epoch)
        self.records["samples"] += [plain({"epoch": epoch, **r}) for r in self.optimizer.epoch_records()]
        self.optimizer.observe(dict(row))
        stop = self._stop(self.optimizer.should_stop(), epoch)
        report = stop["report_epoch"] if stop else epoch
        for earlier in rows:
            earlier["selected"] = earlier["epoch"] == report
        self._write(stop)
        self.run.log(self.run._summary(row))
        return stop

    def _stop(self, request: optimizers.StopRequest | None, epoch: int) -> dict[str, Any] | None:
        """The optimizer's stop request as recorded in status.json and the checkpoint."""
        if request is None:
            return None
        report = epoch if request.report_epoch is None else request.report_epoch
        if not 0 <= report <= epoch:
            raise HarnessError(
                f"{self.optimizer.name} asked to stop after row {epoch} and report row {report}, which does not exist"
            )
        self.records["rows"][-1]["stop_reason"] = request.reason
        return {"epoch": epoch, "reason": request.reason, "report_epoch": report}

    def _write(self, stop: dict[str, Any] | None) -> None:
        run_dir, records = self.run.run_dir, self.records
        write_table(run_dir / TABLE_FILE, to_frame(records["rows"], self.dtypes))
        if records["alphas"]:
            write_table(run_dir / ALPHAS_FILE, to_frame(records["alphas"], ALPHA_COLUMNS))
        if records["samples"]:
            write_table(run_dir / SAMPLES_FILE, to_frame(records["samples"]))
        epoch = records["rows"][-1]["epoch"]
        save_checkpoint(
            run_dir / CHECKPOINT_FILE, self.run.digest, epoch, self.model, self.optimizer.state_dict(), records, stop
        )
        write_status(run_dir, "running", epoch, self.config.epochs)


class _LazyBatch:
    """A batch made on first use (the Hessian's, which may not be needed)."""

    def __init__(self, make: Callable[[], Batch]):
        self.make, self.batch = make, None

    def __call__(self) -> Batch:
        if self.batch is None:
            self.batch = self.make()
        return self.batch


def run_search(
    config: RunConfig,
    progress: bool = True,
    log: Callable[[str], None] = print,
    wait: bool = False,
    threads_how: str | None = None,
) -> Path:
    """Run or resume one search; returns its run directory. `wait`: if another process is
    running it, wait for that process instead of failing; `threads_how`: see `SearchRun`."""
    return SearchRun(config, progress, log, wait, threads_how).execute()
