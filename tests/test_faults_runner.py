"""Faults around a real (tiny) run (issue #13, items 5 and 6): SIGTERM ends it like Ctrl-C, a
damaged table is rebuilt from the checkpoint, orphans are removed, other CIFAR-10 data is refused,
a full disk is one line and recorded, a completed run on read-only storage is reported complete."""

from __future__ import annotations

import dataclasses
import errno
import json
import pickle
import shutil
import signal
import time
from pathlib import Path

import pandas as pd
import pytest

import harness.runner as runner_module
from benchmarks.errors import HarnessError
from harness.cli import main
from harness.results import STATUS_FILE, TABLE_FILE, TIMING_COLUMNS, read_status, read_table
from harness.runner import run_search
from tests.runs import cli_args, start_cli, tiny_config
from tests.test_faults_runs import refuse_writes_under

QUIET = {"progress": False, "log": lambda _: None}


@pytest.fixture
def completed(cifar_root: Path, tmp_path: Path, synthetic_table) -> tuple:
    """(config, run directory, table) of a completed tiny run."""
    config = tiny_config(cifar_root, tmp_path / "results", hessian=False)
    run_dir = run_search(config, **QUIET)
    return config, run_dir, read_table(run_dir / TABLE_FILE)


def _comparable(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.drop(columns=list(TIMING_COLUMNS)).reset_index(drop=True)


def test_damaged_table_is_rebuilt_and_orphans_removed(completed: tuple) -> None:
    config, run_dir, expected = completed
    (run_dir / TABLE_FILE).write_bytes(b"PAR1 damaged by a crash")
    (run_dir / f".{TABLE_FILE}.abc123.tmp").write_bytes(b"half written")
    lines = []
    run_search(config, progress=False, log=lines.append)
    pd.testing.assert_frame_equal(_comparable(read_table(run_dir / TABLE_FILE)), _comparable(expected))
    assert (run_dir / f"{TABLE_FILE}.damaged").read_bytes() == b"PAR1 damaged by a crash"
    assert not list(run_dir.glob(".*.tmp"))
    assert any("was damaged: rebuilt its" in line for line in lines)
    assert "was damaged: rebuilt its" in (run_dir / "run.log").read_text()  # kept there, even for --quiet


def test_completed_run_on_read_only_storage_is_reported_complete(completed: tuple, monkeypatch) -> None:
    config, run_dir, _ = completed
    refuse_writes_under(monkeypatch, run_dir.parent)
    lines = []
    assert run_search(config, progress=False, log=lines.append) == run_dir
    assert any("already complete" in line for line in lines)


def _other_cifar(cifar_root: Path, tmp_path: Path) -> Path:
    """A copy of `cifar_root` whose first training image differs by one pixel."""
    other = tmp_path / "other-cifar"
    shutil.copytree(cifar_root, other)
    path = other / "cifar-10-batches-py" / "data_batch_1"
    batch = pickle.loads(path.read_bytes())
    batch["data"][0, 0] ^= 1
    path.write_bytes(pickle.dumps(batch))
    return other


def test_resuming_on_other_cifar_files_is_refused(completed: tuple, cifar_root: Path, tmp_path: Path) -> None:
    config, run_dir, _ = completed
    status = read_status(run_dir)
    (run_dir / STATUS_FILE).write_text(json.dumps({**status, "state": "running", "epochs_completed": 1}))
    other = dataclasses.replace(config, data=str(_other_cifar(cifar_root, tmp_path)))
    with pytest.raises(HarnessError, match="was run on other CIFAR-10 images"):
        run_search(other, **QUIET)


def test_full_disk_is_one_line_and_recorded(
    cifar_root: Path, tmp_path: Path, monkeypatch, capsys, synthetic_table
) -> None:
    config = tiny_config(cifar_root, tmp_path / "results", hessian=False)
    table = Path(config.out) / config.run_name / TABLE_FILE

    def full(path, frame) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(runner_module, "write_table", full)
    assert main(cli_args(config)) == 2
    err = capsys.readouterr().err
    assert f"error: cannot write {table}: the disk is full" in err and "Traceback" not in err
    status = read_status(table.parent)
    assert status["state"] == "failed" and "the disk is full" in status["error"]


def test_sigterm_ends_a_run_like_ctrl_c(cifar_root: Path, tmp_path: Path, synthetic_table) -> None:
    config = tiny_config(cifar_root, tmp_path / "results", hessian=False, epochs=50)
    run_dir = Path(config.out) / config.run_name
    process = start_cli(cli_args(config), env={"OMP_NUM_THREADS": "1"})
    deadline = time.time() + 600
    while not (run_dir / STATUS_FILE).exists() or read_status(run_dir)["state"] != "running":
        assert process.poll() is None and time.time() < deadline, process.stdout.read() if process.stdout else ""
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    output = process.communicate(timeout=120)[0]
    assert process.returncode == 130, output
    assert "Traceback" not in output
    assert output.splitlines()[-1] == "interrupted; finished epochs are kept: run the same command again to resume"
    status = read_status(run_dir)
    assert status["state"] == "interrupted" and "run the same command again to resume" in status["error"]
