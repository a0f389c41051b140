"""Run directories recover, signals and full or read-only disks end in one line, and the smaller
bad inputs of issue #13 (items 5, 6 and 7), tested on the pieces the runner and the CLI use."""

from __future__ import annotations

import errno
import json
import os
import signal
from pathlib import Path

import pandas as pd
import pytest
import torch

import benchmarks.cache as cache_module
from benchmarks.errors import DataFileError, HarnessError
from harness.benchmark import load_benchmark
from harness.cli import main
from harness.commands.plot import tidy_table
from harness.config import RunConfig, SettingError, apply_settings
from harness.locks import hold_lock
from harness.recovery import check_same_data, rebuild_table_from_checkpoint, remove_orphan_temporaries
from harness.results import COLLECTED_FILE, read_table, write_table
from harness.signals import sigterm_as_interrupt
from harness.storage import StorageError, record_failure
from optimizers.base import SearchConfig

ROWS = [{"run": "r", "optimizer": "darts", "space": 1, "seed": 0, "epoch": e, "test_error": 0.1 * e} for e in range(3)]


def run_dir_with(tmp_path: Path, checkpoint: dict | None, table: bytes | None) -> Path:
    """A run directory holding a config.json, and the given checkpoint payload and table bytes."""
    run_dir = tmp_path / "results" / "darts-s1-seed0"
    run_dir.mkdir(parents=True)
    (run_dir / "config.json").write_text(json.dumps({"data": {"fingerprint": "aaaa"}}))
    if checkpoint is not None:
        torch.save(checkpoint, run_dir / "checkpoint.pt")
    if table is not None:
        (run_dir / "epochs.parquet").write_bytes(table)
    return run_dir


def test_orphaned_temporaries_are_removed(tmp_path: Path) -> None:
    run_dir = run_dir_with(tmp_path, None, None)
    (run_dir / ".epochs.parquet.k2j3.tmp").write_bytes(b"half")
    (run_dir / ".checkpoint.pt.zz1.tmp").write_bytes(b"half")
    removed = remove_orphan_temporaries(run_dir)
    assert len(removed) == 2 and sorted(p.name for p in run_dir.iterdir()) == ["config.json"]


@pytest.mark.parametrize("payload", [{"records": {"rows": ROWS}}, {"rows": ROWS}], ids=["records", "rows"])
def test_damaged_table_is_rebuilt_from_the_checkpoint(tmp_path: Path, payload: dict) -> None:
    run_dir = run_dir_with(tmp_path, payload, b"PAR1 damaged")
    lines = []
    assert rebuild_table_from_checkpoint(run_dir, log=lines.append)
    assert read_table(run_dir / "epochs.parquet")["test_error"].tolist() == [0.0, 0.1, 0.2]
    assert (run_dir / "epochs.parquet.damaged").read_bytes() == b"PAR1 damaged"
    assert "was damaged: rebuilt its 3 rows from checkpoint.pt" in lines[0]
    assert not rebuild_table_from_checkpoint(run_dir, log=lines.append)


def test_missing_table_is_rebuilt_with_the_runs_dtypes(tmp_path: Path) -> None:
    run_dir = run_dir_with(tmp_path, {"records": {"rows": ROWS}}, None)
    dtypes = {"run": "string", "epoch": "int64", "test_error": "float64"}
    assert rebuild_table_from_checkpoint(run_dir, dtypes, log=lambda line: None)
    frame = pd.read_parquet(run_dir / "epochs.parquet")
    assert list(frame.columns) == list(dtypes) and str(frame["run"].dtype) == "string"


def test_damaged_table_and_an_older_checkpoint_say_so(tmp_path: Path) -> None:
    run_dir = run_dir_with(tmp_path, {"format": 1, "epoch": 2}, b"garbage")
    with pytest.raises(DataFileError, match="keeps no readable copy of its rows"):
        rebuild_table_from_checkpoint(run_dir)
    assert (run_dir / "epochs.parquet").read_bytes() == b"garbage"


def test_resuming_on_other_data_is_refused(tmp_path: Path) -> None:
    run_dir = run_dir_with(tmp_path, {"rows": ROWS}, None)
    check_same_data(run_dir, "aaaa")
    with pytest.raises(HarnessError, match=r"was run on other CIFAR-10 images .*aaaa, now bbbb"):
        check_same_data(run_dir, "bbbb")
    (run_dir / "checkpoint.pt").unlink()
    check_same_data(run_dir, "bbbb")  # no epoch completed: starting over on other data is fine


def test_sigterm_raises_keyboard_interrupt_inside_only() -> None:
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt, match="SIGTERM"), sigterm_as_interrupt():
        os.kill(os.getpid(), signal.SIGTERM)
    assert signal.getsignal(signal.SIGTERM) is before


def refuse_writes_under(monkeypatch: pytest.MonkeyPatch, folder: Path, code: int = errno.EROFS) -> None:
    """Make every atomic write (and lock file) under `folder` fail as on a read-only or full disk."""
    mkstemp, real_open = cache_module.tempfile.mkstemp, open

    def failing_mkstemp(*args, dir=None, **kwargs):
        if dir is not None and Path(dir).is_relative_to(folder):
            raise OSError(code, os.strerror(code), str(Path(dir) / kwargs.get("prefix", "")))
        return mkstemp(*args, dir=dir, **kwargs)

    def failing_open(file, mode="r", *args, **kwargs):
        if any(m in mode for m in "wax+") and Path(file).is_relative_to(folder):
            raise OSError(code, os.strerror(code), str(file))
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr(cache_module.tempfile, "mkstemp", failing_mkstemp)
    monkeypatch.setattr("builtins.open", failing_open)


def results_with_one_run(tmp_path: Path, table: bytes | None = None) -> Path:
    run_dir = tmp_path / "results" / "darts-s1-seed0"
    run_dir.mkdir(parents=True)
    (run_dir / "config.json").write_text("{}")
    if table is None:
        write_table(run_dir / "epochs.parquet", pd.DataFrame(ROWS))
    else:
        (run_dir / "epochs.parquet").write_bytes(table)
    return run_dir.parent


def test_collect_and_plot_read_a_read_only_results_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    results = results_with_one_run(tmp_path)
    refuse_writes_under(monkeypatch, results)
    assert main(["collect", str(results)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot write" in err and "read-only" in err and str(results) in err
    assert main(["collect", str(results), "--out", str(tmp_path / "elsewhere")]) == 0
    assert len(read_table(tmp_path / "elsewhere" / f"{COLLECTED_FILE}.parquet")) == 3
    figures = tmp_path / "figures"
    assert tidy_table(results, figures) == figures / f"{COLLECTED_FILE}.parquet"


@pytest.mark.parametrize(
    ("code", "what"),
    [
        (errno.ENOSPC, "the disk is full"),
        (errno.EFBIG, "the largest file size allowed"),
        (errno.EEXIST, "a file stands where a folder is needed"),
        (errno.ENOTDIR, "part of the path is a file, not a folder"),
    ],
)
def test_full_disk_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys, code: int, what: str) -> None:
    results = results_with_one_run(tmp_path)
    refuse_writes_under(monkeypatch, results, code)
    assert main(["collect", str(results)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: cannot write {results}") and what in err and err.count("\n") == 1


def test_lock_on_read_only_storage_lets_reading_go_on(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    refuse_writes_under(monkeypatch, run_dir)
    with hold_lock(run_dir / ".lock", wait=False, what="run"):
        pass
    assert not (run_dir / ".lock").exists()


def test_collect_whose_only_table_is_damaged_says_so(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    results = results_with_one_run(tmp_path, table=b"not parquet")
    assert main(["collect", str(results)]) == 2
    err = capsys.readouterr().err
    assert "no readable run table under" in err and "epochs.parquet cannot be read" in err


def test_benchmark_folder_is_named_a_folder(tmp_path: Path) -> None:
    with pytest.raises(DataFileError, match=f"{tmp_path} is a folder, not a file"):
        load_benchmark(tmp_path)


def test_float_settings_must_be_finite() -> None:
    config = RunConfig(optimizer="darts", space=1)
    for value in ("nan", "inf", "-inf"):
        with pytest.raises(SettingError, match=f"weight_lr={value}: '{value}' is not a finite number"):
            apply_settings(config, {"weight_lr": value}, [SearchConfig])
    with pytest.raises(ValueError, match="weight_lr=nan must be a finite number"):
        SearchConfig(weight_lr=float("nan"))
    with pytest.raises(SettingError, match="bn_momentum=inf must be a finite number"):
        RunConfig(optimizer="darts", space=1, bn_momentum=float("inf"))


@pytest.mark.parametrize("models", ["-1", "0", "423625"])
def test_synthetic_models_out_of_range_is_refused_at_once(tmp_path: Path, models: str, capsys) -> None:
    assert main(["synthetic", "--models", models, "--out", str(tmp_path / "t.tfrecord")]) == 2
    assert f"--models {models}: a synthetic table holds between 1 and 423624 models" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("verb", ["synthetic", "convert"])
def test_out_that_is_a_folder_is_named_a_folder(tmp_path: Path, verb: str, capsys: pytest.CaptureFixture) -> None:
    args = [verb, "--out", str(tmp_path)] + ([str(tmp_path / "t.tfrecord")] if verb == "convert" else [])
    assert main(args) == 2
    assert f"--out {tmp_path} is a folder" in capsys.readouterr().err


def test_a_full_disk_during_a_write_names_the_target_and_leaves_nothing(tmp_path: Path) -> None:
    (tmp_path / "t.parquet").write_bytes(b"before")

    def full(tmp: Path) -> None:
        tmp.write_bytes(b"half")
        raise OSError(errno.ENOSPC, "Error writing bytes to file")

    with pytest.raises(OSError) as caught:
        cache_module.atomic_write(tmp_path / "t.parquet", full)
    assert (caught.value.errno, caught.value.filename) == (errno.ENOSPC, str(tmp_path / "t.parquet"))
    assert [p.name for p in tmp_path.iterdir()] == ["t.parquet"] and (tmp_path / "t.parquet").read_bytes() == b"before"


def test_record_failure_maps_storage_errors_and_survives_a_failing_record() -> None:
    recorded = []
    failure = record_failure(OSError(errno.ENOSPC, "No space", "/r/epochs.parquet"), recorded.append)
    assert isinstance(failure, StorageError) and recorded == [str(failure)]
    assert str(failure) == "cannot write /r/epochs.parquet: the disk is full; free some space"

    def read_only(reason: str) -> None:
        raise OSError(errno.EROFS, "Read-only file system", "/r/status.json")

    other = RuntimeError("boom")
    assert record_failure(other, read_only) is other


def test_a_library_read_error_is_brief_and_never_advises_loading_unsafely(tmp_path: Path) -> None:
    from benchmarks.errors import brief

    hostile, damaged = tmp_path / "hostile.pt", tmp_path / "damaged.pt"
    torch.save({"records": os.system}, hostile)  # a checkpoint that would run os.system if unpickled unsafely
    damaged.write_bytes(b"\x80\x02not a pickle at all")
    reasons = []
    for path in (hostile, damaged):
        with pytest.raises(Exception) as caught:
            torch.load(path, weights_only=True)
        reasons.append(brief(caught.value))
    assert reasons == [
        "it holds pickled Python objects, which are refused, never run",
        "it is damaged, or not this kind of file (nothing in it was run)",
    ]
    assert brief(OSError("first line\nsecond line")) == "OSError: first line"
