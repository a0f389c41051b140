"""The NAS-Bench-101 verbs: synthetic -> convert -> query, and errors as one `error:` line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.errors import OutOfDomainError
from benchmarks.nasbench101 import NASBench101
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

    table = NASBench101.load(source)
    spec = table.spec(module_hash)
    matrix, ops = ",".join("".join(map(str, row)) for row in spec.matrix), ",".join(spec.ops)
    assert main(["query", "--matrix", matrix, "--ops", ops, "--benchmark", str(source), "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["hash"] == module_hash and len(payload["repeats"]) == 3 and payload["synthetic"] is True
    assert payload["repeats"] == table.query(module_hash)
    assert main(["query", module_hash, "--benchmark", str(source), "--repeat", "random", "--json", "--seed", "1"]) == 0
    assert json.loads(capsys.readouterr().out)["repeats"] == [table.query(module_hash, repeat="random", rng=1)]

    # The NAS-Bench-101 API's habits: one random repeat, is_valid on a spec or a matrix with ops.
    assert table.query(module_hash, repeat=2) == table.query(module_hash)[2]
    assert {table.query(spec, repeat="random")["repeat"] for _ in range(40)} == {0, 1, 2}
    assert table.is_valid(spec) and table.is_valid(spec.matrix, spec.ops) and table.is_valid(module_hash)
    assert not table.is_valid([[0, 1], [0, 0]], ["input", "nonsense"]) and not table.is_valid("0" * 32)
    with pytest.raises(OutOfDomainError, match="no repeat 5"):
        table.query(module_hash, repeat=5)


def test_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["convert", str(tmp_path / "missing.tfrecord")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "fetch nasbench101" in err
    bad = tmp_path / "bad.tfrecord"
    bad.write_bytes(b"\x05")
    assert main(["query", "0" * 32, "--benchmark", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "byte offset 0" in err and err.count("\n") == 1
    assert main(["query", "--matrix", "011,001,000", "--ops", "in,bogus,out", "--benchmark", str(bad)]) == 2
    assert "unknown op(s) bogus; allowed:" in capsys.readouterr().err  # an invalid cell: said before any loading
    assert main(["query", "--benchmark", str(bad)]) == 2
    assert "--matrix" in capsys.readouterr().err
