"""The NAS-Bench-101 verbs: synthetic -> convert -> query, and errors as one `error:` line."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.nasbench101.synthetic import choose_models
from harness.cli import main


def test_synthetic_convert_query(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "syn.tfrecord"
    assert main(["synthetic", "--out", str(source), "--spaces", "1", "--models", "25", "--seed", "4"]) == 0
    assert "25 models, 75 records" in capsys.readouterr().out
    assert main(["convert", str(source)]) == 0
    out = capsys.readouterr().out
    assert "wrote" in out and "synthetic data, not NAS-Bench-101" in out
    assert main(["convert", str(source)]) == 0
    assert "up to date" in capsys.readouterr().out
    module_hash = choose_models(spaces=(1,), models=25, seed=4)[0][0]
    assert main(["query", module_hash, "--benchmark", str(source)]) == 0
    out = capsys.readouterr().out
    assert module_hash in out and "mean over 3 repeats" in out and "synthetic table" in out
    assert len([line for line in out.splitlines() if line.split()[:1] in (["0"], ["1"], ["2"])]) == 3


def test_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["convert", str(tmp_path / "missing.tfrecord")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "fetch nasbench101" in err
    bad = tmp_path / "bad.tfrecord"
    bad.write_bytes(b"\x05")
    assert main(["query", "0" * 32, "--benchmark", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "byte offset 0" in err and err.count("\n") == 1
