"""One search run = one (optimizer, space, seed): train, and after every epoch discretize,
look up the architecture in NAS-Bench-101, compute the Hessian's dominant eigenvalue, and append
one row to the run's tidy table. Checkpoints at every epoch end; a second call resumes."""

from __future__ import annotations

import itertools
import platform
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm import tqdm

import optimizers
from benchmarks.errors import HarnessError, OutOfDomainError
from benchmarks.nasbench1shot1 import get_search_space
from benchmarks.nasbench101 import NASBench101
from harness.benchmark import load_benchmark
from harness.checkpoint import config_digest, load_checkpoint, save_checkpoint, set_rng_state
from harness.components import build_model, inference, resolve_device, search_data, use_cuda_graphs
from harness.config import RunConfig, SettingError, optimizer_config
from harness.cuda_graphs import GraphedStep
from harness.data import SearchData, ensure_cifar10, read_cifar10_train
from harness.hessian import architecture_eigenpair, dominant_eigenvalue
from harness.identity import identity_differences, resolved_config, run_identity
from harness.locks import hold_lock
from harness.results import (
    CHECKPOINT_FILE,
    CONFIG_FILE,
    LOCK_FILE,
    SCHEMA_VERSION,
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


class RunFailed(HarnessError):
    """The run stopped on a non-finite loss or an architecture that cannot be evaluated."""


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
        self, config: RunConfig, progress: bool = True, log: Callable[[str], None] = print, wait: bool = False
    ):
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
            started = (self.run_dir / CHECKPOINT_FILE).exists() or (self.run_dir / TABLE_FILE).exists()
            if not differences:
                self.digest = existing.get("config_digest", self.digest)
            elif not started:
                self.log(
                    f"{self.run_dir}: no epoch was completed; starting over with the new configuration "
                    f"({'; '.join(differences)})"
                )
            else:
                raise HarnessError(
                    f"{self.run_dir} holds a run with a different configuration ({'; '.join(differences)}). "
                    "Use another --out, or delete that directory to start over."
                )
        self.run_dir.mkdir(parents=True, exist_ok=True)

    def execute(self) -> Path:
        """Run the search to its last epoch (resuming if possible); returns the run directory.

        Holds the run directory's lock throughout (waits for another process holding it when
        `wait`, else fails). Any error, or an interrupt, is recorded in status.json.
        """
        with hold_lock(self.run_dir / LOCK_FILE, self.wait, f"run directory {self.run_dir}"):
            self.prepare_directory()
            status = read_status(self.run_dir) or {}
            epochs = self.config.epochs
            if is_complete(status, epochs):
                self.log(f"{self.config.run_name}: already complete ({epochs} epochs), nothing to do")
                return self.run_dir
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
                reason = str(err) if isinstance(err, HarnessError) else f"{type(err).__name__}: {err}"
                write_status(
                    self.run_dir, "failed", self.epochs_done, epochs, failed_epoch=self.epochs_done, error=reason
                )
                raise
        return self.run_dir

    def _search(self) -> None:
        epochs = self.config.epochs
        device = resolve_device(self.config.device)
        torch.manual_seed(self.config.seed)
        table = load_benchmark(self.config.benchmark)
        best_test, best_valid = self._space_bests(table)
        data = self._load_data(device)
        model = build_model(self.config, self.optimizer_class, device)
        optimizer = self.optimizer_class(self.space, model, optimizer_config(self.config, self.optimizer_class.Config))
        write_json(self.run_dir / CONFIG_FILE, self._description(table, best_test, best_valid, data, device))
        start, rows = self._resume(model, optimizer)
        self.epochs_done = start
        graphed = None
        if use_cuda_graphs(self.config, device) and optimizer.capturable:
            graphed = GraphedStep(optimizer)
        write_status(self.run_dir, "running" if start < epochs else "completed", start, epochs)
        for epoch in range(start, epochs):
            rows.append(self._epoch(epoch, data, model, optimizer, graphed, table, best_test))
            write_table(self.run_dir / TABLE_FILE, to_frame(rows))
            save_checkpoint(self.run_dir / CHECKPOINT_FILE, self.digest, epoch, model, optimizer.state_dict())
            self.epochs_done = epoch + 1
            write_status(self.run_dir, "running" if epoch + 1 < epochs else "completed", epoch + 1, epochs)
            self.log(self._summary(rows[-1]))

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
            "environment": {
                "torch": torch.__version__,
                "python": platform.python_version(),
                "device": str(device),
                "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor(),
                "torch_threads": torch.get_num_threads(),
            },
            "data": {
                "search_train": len(data.train),
                "search_valid": len(data.valid),
                "steps_per_epoch": data.steps_per_epoch,
            },
        }

    def _load_data(self, device: torch.device) -> SearchData:
        images, labels = read_cifar10_train(ensure_cifar10(self.config.data))
        if self.config.data_limit:
            images, labels = images[: self.config.data_limit], labels[: self.config.data_limit]
        batch_size = optimizer_config(self.config, self.optimizer_class.Config).batch_size
        data = search_data(self.config, batch_size, device, images, labels)
        if self.config.hessian and self.config.hessian_batches * batch_size > len(data.valid):
            raise SettingError(
                f"hessian_batches={self.config.hessian_batches} batches of {batch_size} need "
                f"{self.config.hessian_batches * batch_size} search-valid images, but there are {len(data.valid)}; "
                "lower hessian_batches or raise data_limit"
            )
        return data

    def _resume(self, model: torch.nn.Module, optimizer: optimizers.SearchOptimizer) -> tuple[int, list[dict]]:
        """Load the checkpoint if there is one: (first epoch to run, rows of the epochs before)."""
        path = self.run_dir / CHECKPOINT_FILE
        if not path.exists():
            return 0, []
        state = load_checkpoint(path, self.digest)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        set_rng_state(state["rng"])
        start = state["epoch"] + 1
        rows = []
        if (self.run_dir / TABLE_FILE).exists():
            frame = read_table(self.run_dir / TABLE_FILE)
            rows = frame[frame["epoch"] < start].to_dict("records")
        if len(rows) != start:
            raise HarnessError(
                f"{self.run_dir / TABLE_FILE} has {len(rows)} rows before epoch {start} but the checkpoint is at "
                f"epoch {start}; delete the run directory to start over"
            )
        self.log(f"{self.config.run_name}: resuming after epoch {start - 1} of {self.config.epochs}")
        return start, rows

    def _epoch(
        self,
        epoch: int,
        data: SearchData,
        model: torch.nn.Module,
        optimizer: optimizers.SearchOptimizer,
        graphed: GraphedStep | None,
        table: NASBench101,
        best_test: float,
    ) -> dict:
        device = data.device
        started = time.perf_counter()
        optimizer.new_epoch(epoch, self.config.epochs)
        step_fn = optimizer.step
        if graphed is not None:
            graphed.reset()
            step_fn = graphed
        model.train()
        losses = torch.zeros(data.steps_per_epoch, device=device)
        correct = torch.zeros((), device=device, dtype=torch.long)
        seen = 0
        bar = tqdm(
            total=data.steps_per_epoch,
            desc=f"{self.config.run_name} epoch {epoch + 1}/{self.config.epochs}",
            leave=False,
            disable=not self.progress,
            unit="step",
        )
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
                f"clip (grad_clip){self._rerun_hint(epoch)}"
            )
        optimizer.end_epoch(EpochValidation(data, epoch, self.config.valid_batches))
        try:
            spec = optimizer.discretize()
            errors = table.mean_errors(spec)
        except OutOfDomainError as err:
            raise RunFailed(f"epoch {epoch}: the discretized architecture cannot be evaluated: {err}") from err
        valid_loss, valid_accuracy = self._validate(data, model, optimizer)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        epoch_seconds = time.perf_counter() - started
        eigenvalue, hessian_seconds = self._hessian(epoch, data, model, optimizer)
        return {
            "run": self.config.run_name,
            "optimizer": self.config.optimizer,
            "space": self.config.space,
            "seed": self.config.seed,
            "epoch": epoch,
            "benchmark": table.name,
            "arch_hash": spec.hash(),
            "test_error": errors["test_error"],
            "test_error_std": errors["test_error_std"],
            "valid_error": errors["valid_error"],
            "regret": errors["test_error"] - best_test,
            "params": int(errors["params"]),
            "hessian_eigenvalue": eigenvalue,
            "train_loss": float(losses.sum()) / seen,
            "train_accuracy": int(correct) / seen,
            "valid_loss": valid_loss,
            "valid_accuracy": valid_accuracy,
            "epoch_seconds": epoch_seconds,
            "hessian_seconds": hessian_seconds,
            "schema_version": SCHEMA_VERSION,
        }

    def _validate(
        self, data: SearchData, model: torch.nn.Module, optimizer: optimizers.SearchOptimizer
    ) -> tuple[float, float]:
        """Supernet loss and accuracy on search-valid (eval mode, the optimizer's eval mixing)."""
        model.eval()
        total_loss = torch.zeros((), device=data.device)
        correct = torch.zeros((), device=data.device, dtype=torch.long)
        count = 0
        with torch.no_grad():
            forward = inference(model, optimizer.eval_mixing(), use_cuda_graphs(self.config, data.device))
            for images, labels in itertools.islice(data.valid_batches(), self.config.valid_batches):
                logits = forward(images)
                total_loss += F.cross_entropy(logits, labels, reduction="sum")
                correct += (logits.argmax(dim=1) == labels).sum()
                count += len(labels)
        model.train()
        return float(total_loss) / count, int(correct) / count

    def _hessian(
        self, epoch: int, data: SearchData, model: torch.nn.Module, optimizer: optimizers.SearchOptimizer
    ) -> tuple[float, float]:
        """(dominant eigenvalue of the architecture Hessian + weight decay, seconds); NaN when the
        optimizer has no architecture parameters or the Hessian is switched off. Random draws of
        the objective (GDAS's noise) come from a forked RNG: measuring never changes training."""
        params = optimizer.arch_parameters()
        if not (self.config.hessian and params):
            return float("nan"), 0.0
        started = time.perf_counter()
        batches = data.fixed_valid_batches(epoch, self.config.hessian_batches)
        devices = [data.device] if data.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            objectives = [optimizer.architecture_objective(batch) for batch in batches]
            pair = architecture_eigenpair(
                model,
                objectives,
                params,
                self.config.hessian_method,
                graphs=use_cuda_graphs(self.config, data.device),
            )
        return dominant_eigenvalue(pair, optimizer.config.arch_weight_decay), time.perf_counter() - started

    def _summary(self, row: dict) -> str:
        eigen = "n/a" if row["hessian_eigenvalue"] != row["hessian_eigenvalue"] else f"{row['hessian_eigenvalue']:.4g}"
        return (
            f"{row['run']} | epoch {row['epoch'] + 1}/{self.config.epochs} | test error {row['test_error']:.4f} "
            f"(regret {row['regret']:.4f}) | Hessian eig {eigen} | train loss {row['train_loss']:.3f} "
            f"acc {row['train_accuracy']:.1%} | valid acc {row['valid_accuracy']:.1%} | "
            f"{row['epoch_seconds']:.1f} s + {row['hessian_seconds']:.1f} s Hessian"
        )


def run_search(
    config: RunConfig, progress: bool = True, log: Callable[[str], None] = print, wait: bool = False
) -> Path:
    """Run or resume one search; returns its run directory. `wait`: if another process is
    running it, wait for that process instead of failing."""
    return SearchRun(config, progress, log, wait).execute()
