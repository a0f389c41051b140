"""The Python API as a notebook uses it: examples/notebook_session.py runs end to end, from a
folder outside the repository (so the installed package, not the working directory, is imported)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_packages_import_from_another_folder(tmp_path: Path) -> None:
    code = "import benchmarks, harness, optimizers, plots; print(harness.__file__)"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode == 0, f"not installed? run `make` (pip install -e .): {done.stderr}"
    assert Path(done.stdout.strip()).is_relative_to(REPO)  # the editable install points at this checkout


def test_the_notebook_example_runs(cifar_root: Path, synthetic_table, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = tmp_path / "out"
    done = subprocess.run(
        [sys.executable, str(REPO / "examples" / "notebook_session.py"), "--data", str(cifar_root), "--out", str(out)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    assert "space 1: 2685 models" in done.stdout and "figures: anytime_test_error.png" in done.stdout
    pdf = (out / "figures" / "anytime_test_error.pdf").read_bytes()
    assert b"/Subtype /Type3" not in pdf
    assert {p.name for p in out.iterdir()} >= {"darts-s1-seed0", "sdarts-rs-s1-seed0", "figures"}
