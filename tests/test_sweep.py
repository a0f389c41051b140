"""Sweeps: failures reported without stopping the others, finished runs skipped, a killed sweep
restarted to the same tables, the Dask backend, GPU slots, run locks, collect and plot."""

from __future__ import annotations

import dataclasses
import io
import os
import shutil
import signal
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from benchmarks.errors import HarnessError
from harness import locks, sweep
from harness.commands.collect import collect_to_files
from harness.commands.plot import make_plots
from harness.config import RunConfig
from harness.measurements import declared_columns
from harness.results import (
    CHECKPOINT_FILE,
    COLLECTED_FILE,
    CONFIG_FILE,
    LOCK_FILE,
    STATUS_FILE,
    TABLE_FILE,
    TIMING_COLUMNS,
    read_json,
    read_status,
    read_table,
)
from harness.run_log import LOG_FILE, default_threads, device_name, finished_line, run_logging, set_threads
from harness.runner import run_search
from harness.schema import RUN_KEY
from harness.sweep import gpu_slot, parse_int_list, run_one, run_sweep
from tests.runs import RAISING_PLUGIN, TINY_SETTINGS, set_args, start_cli, tiny_config

OPTIMIZERS = ("darts", "sdarts-rs")
SEEDS = (0, 1)
EPOCHS = 3
RUN_FILES = (CONFIG_FILE, TABLE_FILE, STATUS_FILE, CHECKPOINT_FILE)


def grid(cifar_root: Path, out: Path) -> list[RunConfig]:
    """optimizers x seeds on space 1, in the order `harness sweep` builds them."""
    return [
        tiny_config(cifar_root, out, name, 1, seed, epochs=EPOCHS, hessian=False)
        for name in OPTIMIZERS
        for seed in SEEDS
    ]


def sweep_args(cifar_root: Path, out: Path) -> list[str]:
    """`python -m harness sweep` arguments for `grid(cifar_root, out)`, two runs at a time."""
    args = ["sweep", "--optimizers", ",".join(OPTIMIZERS), "--spaces", "1", "--seeds", ",".join(map(str, SEEDS))]
    args += ["--jobs", "2", "--epochs", str(EPOCHS), "--data", str(cifar_root), "--benchmark", "synthetic"]
    args += ["--out", str(out), "--device", "cpu", "--quiet"]
    return args + set_args(TINY_SETTINGS)


def tables(out: Path) -> dict[str, pd.DataFrame]:
    """Every run's table under `out` without the timing columns, by run name."""
    return {
        d.name: read_table(d / TABLE_FILE).drop(columns=list(TIMING_COLUMNS))
        for d in sorted(out.iterdir())
        if (d / TABLE_FILE).is_file()
    }


def assert_same_tables(got: dict[str, pd.DataFrame], expected: dict[str, pd.DataFrame]) -> None:
    assert sorted(got) == sorted(expected)
    for name, frame in expected.items():
        pd.testing.assert_frame_equal(got[name], frame, check_exact=True, obj=name)


def stamps(run_dir: Path) -> dict[str, int]:
    """Modification times (ns) of a run's files."""
    return {name: (run_dir / name).stat().st_mtime_ns for name in RUN_FILES}


def is_complete(run_dir: Path) -> bool:
    status = read_status(run_dir) if (run_dir / STATUS_FILE).exists() else None
    return bool(status) and status["state"] == "completed"


@pytest.fixture(scope="module")
def reference(cifar_root: Path, synthetic_table, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An uninterrupted loky sweep of `grid`, two runs at a time; returns its results folder."""
    out = tmp_path_factory.mktemp("reference")
    outcomes = run_sweep(grid(cifar_root, out), jobs=2)
    assert [o.state for o in outcomes] == ["completed"] * len(outcomes), outcomes
    return out


@pytest.mark.parametrize(
    ("text", "values"),
    [("0-5", [0, 1, 2, 3, 4, 5]), ("1,3", [1, 3]), ("0-2,7", [0, 1, 2, 7]), (" 3 , 1,1 ", [1, 3]), ("4", [4])],
)
def test_parse_int_list(text: str, values: list[int]) -> None:
    assert parse_int_list(text) == values


@pytest.mark.parametrize("text", ["", "x", "1,,2", "5-0", "-1", "1-2-3", "0-5x"])
def test_parse_int_list_rejects(text: str) -> None:
    with pytest.raises(HarnessError, match="0-5"):
        parse_int_list(text)


def test_failing_runs_are_reported_and_the_rest_complete_then_skipped(
    cifar_root: Path, synthetic_table, tmp_path: Path
) -> None:
    plugin = tmp_path / "raising.py"
    plugin.write_text(RAISING_PLUGIN)
    out = tmp_path / "runs"
    tiny = {"epochs": 1, "hessian": False}
    configs = [
        tiny_config(cifar_root, out, "darts", seed=0, **tiny),
        tiny_config(cifar_root, out, "test-raises-in-step", plugins=[str(plugin)], **tiny),
        tiny_config(cifar_root, out, "darts", seed=1, benchmark=str(tmp_path / "missing.tfrecord"), **tiny),
        tiny_config(cifar_root, out, "sdarts-rs", seed=0, **tiny),
    ]
    outcomes = run_sweep(configs, jobs=2)
    assert [o.run for o in outcomes] == [c.run_name for c in configs]
    assert [o.state for o in outcomes] == ["completed", "failed", "failed", "completed"], outcomes
    assert outcomes[1].detail == "RuntimeError: boom in step"
    log = Path(outcomes[1].log)
    assert log == out / configs[1].run_name / LOG_FILE
    assert "Traceback" in log.read_text() and "RuntimeError: boom in step" in log.read_text()
    assert "missing.tfrecord not found" in outcomes[2].detail and "--benchmark synthetic" in outcomes[2].detail
    finished = [out / configs[i].run_name for i in (0, 3)]
    assert all(is_complete(d) for d in finished)
    assert "(the sweep's share of the free cores; --threads N to change)" in (finished[0] / LOG_FILE).read_text()
    before = {d: stamps(d) for d in finished}

    again = run_sweep(configs, jobs=2)
    assert [o.state for o in again] == ["skipped", "failed", "failed", "skipped"], again
    assert [o.detail for o in again] == [o.detail for o in outcomes]
    assert {d: stamps(d) for d in finished} == before

    changed = [
        dataclasses.replace(configs[0], optimizer_options={**configs[0].optimizer_options, "weight_decay": 1e-3})
    ]
    refused = run_sweep(changed, jobs=1)  # finished, but under another configuration: not skipped
    assert [o.state for o in refused] == ["failed"] and "different configuration" in refused[0].detail


def test_killed_sweep_restarts_to_the_same_tables(cifar_root: Path, reference: Path, tmp_path: Path) -> None:
    out = tmp_path / "killed"
    run_dirs = [out / c.run_name for c in grid(cifar_root, out)]
    process = start_cli(sweep_args(cifar_root, out))
    deadline = time.time() + 300
    while True:  # kill once a run is complete and another is part-way (it has a checkpoint)
        complete = [d for d in run_dirs if is_complete(d)]
        partial = [d for d in run_dirs if (d / CHECKPOINT_FILE).exists() and d not in complete]
        if complete and partial:
            break
        if process.poll() is not None or time.time() > deadline:
            process.kill()
            pytest.fail(f"the sweep ended before it could be interrupted:\n{process.communicate()[0]}")
        time.sleep(0.01)
    os.killpg(process.pid, signal.SIGKILL)  # the sweep and its workers, as a crash or `kill -9 -PGID` would
    process.communicate()
    complete = [d for d in run_dirs if is_complete(d)]
    assert 0 < len(complete) < len(run_dirs)
    before = {d: stamps(d) for d in complete}

    restarted = start_cli(sweep_args(cifar_root, out))
    output = restarted.communicate(timeout=300)[0]
    assert restarted.returncode == 0, output
    assert f"{len(run_dirs)} of {len(run_dirs)} runs complete ({len(complete)} were complete already)" in output
    assert {d: stamps(d) for d in complete} == before
    assert all(is_complete(d) for d in run_dirs)
    assert_same_tables(tables(out), tables(reference))
    for d in run_dirs:  # the CLI made the same runs as the in-process grid
        assert (
            read_json(d / CONFIG_FILE)["config_digest"] == read_json(reference / d.name / CONFIG_FILE)["config_digest"]
        )


def test_dask_local_cluster_gives_the_same_tables_as_loky(cifar_root: Path, reference: Path, tmp_path: Path) -> None:
    pytest.importorskip("distributed")
    configs = grid(cifar_root, tmp_path)[:2]
    outcomes = run_sweep(configs, jobs=2, backend="dask")  # a LocalCluster of 2 worker processes
    assert [o.state for o in outcomes] == ["completed", "completed"], outcomes
    expected = tables(reference)
    assert_same_tables(tables(tmp_path), {c.run_name: expected[c.run_name] for c in configs})


@pytest.mark.parametrize(("gpus", "runs_per_gpu"), [([0, 1], 1), ([3], 2), ([0, 1], 2)])
def test_gpu_slot_hands_out_distinct_slots_and_blocks_when_full(
    gpus: list[int], runs_per_gpu: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sweep, "SLOT_POLL_SECONDS", 0.01)
    holders = [gpu_slot(gpus, runs_per_gpu, tmp_path) for _ in range(len(gpus) * runs_per_gpu)]
    devices = [holder.__enter__() for holder in holders]
    assert devices == [f"cuda:{gpu}" for _ in range(runs_per_gpu) for gpu in gpus]  # spread over the GPUs first

    acquired, release, got = threading.Event(), threading.Event(), []

    def one_more() -> None:
        with gpu_slot(gpus, runs_per_gpu, tmp_path) as device:
            got.append(device)
            acquired.set()
            release.wait(10)

    waiter = threading.Thread(target=one_more, daemon=True)
    waiter.start()
    assert not acquired.wait(0.3), "a slot was handed out while all were held"
    holders[-1].__exit__(None, None, None)
    assert acquired.wait(10) and got == [devices[-1]]
    release.set()
    waiter.join(10)
    for holder in holders[:-1]:
        holder.__exit__(None, None, None)


def test_run_held_by_another_process_is_waited_for(
    cifar_root: Path, synthetic_table, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run still held by a worker of a killed sweep is not started a second time alongside it."""
    monkeypatch.setattr(locks, "POLL_SECONDS", 0.02)
    config = tiny_config(cifar_root, tmp_path, epochs=1, hessian=False)
    run_dir = tmp_path / config.run_name
    run_dir.mkdir()
    holder = locks.try_lock(run_dir / LOCK_FILE)
    outcomes = []
    worker = threading.Thread(target=lambda: outcomes.append(run_one(dataclasses.asdict(config), [], 1, 1)))
    worker.start()
    time.sleep(0.3)
    assert worker.is_alive() and not (run_dir / CONFIG_FILE).exists()
    holder.close()
    worker.join(120)
    assert [o.state for o in outcomes] == ["completed"]


def test_collect_and_plot(cifar_root: Path, reference: Path, tmp_path: Path) -> None:
    results = tmp_path / "results"
    shutil.copytree(reference, results)
    hessian_run = tiny_config(cifar_root, results, "darts", seed=2, epochs=2, hessian_method="lanczos")
    run_search(hessian_run, progress=False, log=lambda _: None)
    run_tables = [read_table(d / TABLE_FILE) for d in sorted(results.iterdir())]

    parquet, csv, rows = collect_to_files(results)
    assert (parquet.name, csv.name) == (f"{COLLECTED_FILE}.parquet", f"{COLLECTED_FILE}.csv")
    assert rows == sum(len(t) for t in run_tables) == len(OPTIMIZERS) * len(SEEDS) * (EPOCHS + 1) + 3
    collected = pd.read_parquet(parquet)
    dtypes = {name: column.dtype for name, column in declared_columns().items()}
    assert list(collected.columns) == list(dtypes)
    expected = pd.concat(run_tables).sort_values([*RUN_KEY, "epoch"], ignore_index=True)
    pd.testing.assert_frame_equal(collected, expected)
    from_csv = read_table(csv).astype(dtypes)
    pd.testing.assert_frame_equal(from_csv, collected)

    figures = tmp_path / "figures"
    written = make_plots(results, figures)
    stems = ("anytime_test_error", "hessian_eigenvalue")
    expected_files = {f"{s}.{ext}" for s in stems for ext in ("png", "pdf")} | {"summary.md", "summary.csv"}
    assert {p.name for p in written} == expected_files == {p.name for p in figures.iterdir()}
    for stem in stems:
        assert (figures / f"{stem}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert (figures / f"{stem}.pdf").read_bytes()[:5] == b"%PDF-"
    summary = pd.read_csv(figures / "summary.csv")
    assert sorted(summary["optimizer"]) == sorted(OPTIMIZERS)
    assert "synthetic benchmark" in (figures / "summary.md").read_text()


DYING_PLUGIN = '''
import os

import optimizers


@optimizers.register("test-kills-its-worker")
class KillsItsWorker(optimizers.get("darts")):
    """DARTS whose weight step kills the worker process, as the out-of-memory killer would."""

    def step(self, train_batch, valid_batch):
        os._exit(9)
'''


def test_a_dead_worker_is_reported_not_raised(cifar_root: Path, synthetic_table, tmp_path: Path) -> None:
    plugin = tmp_path / "dying.py"
    plugin.write_text(DYING_PLUGIN)
    tiny = {"epochs": 1, "hessian": False}
    configs = [
        tiny_config(cifar_root, tmp_path, "test-kills-its-worker", plugins=[str(plugin)], **tiny),
        tiny_config(cifar_root, tmp_path, "darts", **tiny),
    ]
    outcomes = run_sweep(configs, jobs=2)
    assert outcomes[0].state == "failed" and "workers broke off" in outcomes[0].detail, outcomes[0]
    assert "run the sweep again to resume" in outcomes[0].detail
    for config, outcome in zip(configs[1:], outcomes[1:]):  # finished before the pool broke, or not
        assert outcome.state == ("completed" if is_complete(tmp_path / config.run_name) else "failed")


def test_run_logging_tees_prints_and_tracebacks_once_when_nested(tmp_path: Path, capsys) -> None:
    lines: list[str] = []
    with pytest.raises(ValueError), run_logging(tmp_path / "run", lines.append) as log:
        log("epoch 1/3 | test error 0.1")
        print("a warning on stdout")
        with run_logging(tmp_path / "run", print) as inner:  # the runner's own, inside a sweep's
            inner("epoch 2/3")
        raise ValueError("boom")
    text = (tmp_path / "run" / LOG_FILE).read_text()
    assert lines == ["epoch 1/3 | test error 0.1", "epoch 2/3"]
    assert text.count("epoch 2/3") == 1 and "a warning on stdout" in text
    assert "Traceback (most recent call last)" in text and "ValueError: boom" in text
    assert "a warning on stdout" in capsys.readouterr().out


@pytest.mark.skipif(sys.platform != "linux", reason="a file name of bytes that are not UTF-8: Linux allows it")
def test_a_run_path_that_is_not_utf8_is_logged_escaped(tmp_path: Path, monkeypatch) -> None:
    """In run.log and on a console that refuses what UTF-8 cannot encode (a strict stdout)."""
    console = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="strict", write_through=True)
    monkeypatch.setattr(sys, "stdout", console)
    run_dir = Path(os.fsdecode(os.fsencode(tmp_path) + b"/run-\xff"))
    with run_logging(run_dir, print) as log:
        log(f"results in {run_dir}")
    text = (run_dir / LOG_FILE).read_text(encoding="utf-8")
    assert "results in " in text and "run-\\udcff" in text
    assert "run-\\udcff" in console.buffer.getvalue().decode()


def test_threads_and_end_of_run_lines(tmp_path: Path) -> None:
    import torch

    before = torch.get_num_threads()
    try:
        assert set_threads(1) == 1 == torch.get_num_threads()
        assert set_threads(None, concurrent=10**6) == 1  # never 0, even with more runs than cores
    finally:
        torch.set_num_threads(before)
    assert 1 <= default_threads() <= (os.cpu_count() or 1)
    with pytest.raises(HarnessError, match="--threads"):
        set_threads(0)
    assert "python -m harness plot" in finished_line(tmp_path / "darts-s1-seed0")
    assert device_name(torch.device("cpu"))


def test_dask_missing_is_a_clear_error_before_anything_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sweep.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(HarnessError, match=r"pip install -e '\.\[dask\]'"):
        run_sweep([], backend="dask")
