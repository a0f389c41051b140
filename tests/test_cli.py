"""The user-facing verbs end to end: list, run with --set, sweep's summary, export, collect, plot,
errors as one `error:` line with exit code 2, and demo's way out when NAS-Bench-101 is missing."""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

import optimizers
from benchmarks.nasbench1shot1.spaces import SEARCH_SPACES
from harness.cli import main
from harness.config import PRESETS
from harness.results import COLLECTED_FILE, TABLE_FILE, read_table
from harness.run_log import finished_line
from tests.runs import RAISING_PLUGIN, TINY_SETTINGS, cli_args, set_args, tiny_config

REPO = Path(__file__).resolve().parents[1]
BUILT_IN = (
    "darts",
    "pcdarts",
    "sdarts-rs",
    "sdarts-adv",
    "pcdarts-rs",
    "pcdarts-adv",
    "gdas",
    "nasp",
    "enas",
    "random-ws",
)


CLI_RUN_CONSOLE: list[str] = []
"""What `cli_run`'s command printed (a module-scoped fixture cannot use capsys)."""
CLI_RUN_ARGS: list[list[str]] = []
"""`cli_run`'s command line."""


@pytest.fixture(scope="module")
def cli_run(cifar_root: Path, synthetic_table, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`harness run --quiet` of one tiny SDARTS-RS epoch with --set overrides of both kinds; its
    run directory."""
    config = tiny_config(cifar_root, tmp_path_factory.mktemp("cli-run"), "sdarts-rs", epochs=1, hessian=False)
    overrides = ["bn_momentum=0.9", "hessian_method=lanczos", "arch_lr=0.002", "epsilon_max=0.2"]
    console = io.StringIO()
    args = [*cli_args(config), *(a for item in overrides for a in ("--set", item))]
    with contextlib.redirect_stdout(console):
        assert main(args) == 0
    CLI_RUN_CONSOLE.append(console.getvalue())
    CLI_RUN_ARGS.append(args)
    return Path(config.out) / config.run_name


def test_quiet_run_prints_only_where_its_results_are(cli_run: Path) -> None:
    assert CLI_RUN_CONSOLE[-1].splitlines() == [finished_line(cli_run)]
    assert "| epoch 1/1 |" in (cli_run / "run.log").read_text()  # the log keeps every line


def test_a_complete_run_is_left_alone_whatever_device_is_named(cli_run: Path) -> None:
    assert main([*CLI_RUN_ARGS[-1], "--device", "cuda"]) == 0  # a device outside the run's identity
    assert "already complete (1 of 1 epochs), nothing to do" in (cli_run / "run.log").read_text()


def test_list_shows_spaces_with_sizes_and_every_optimizer(synthetic_table, capsys: pytest.CaptureFixture) -> None:
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for number, alphas in ((1, 24), (2, 26), (3, 35)):
        space = SEARCH_SPACES[number]
        assert f"  {number}: {space.num_choice_nodes} choice nodes, {alphas} architecture parameters, " in out
        assert f"{space.num_models:,} distinct NAS-Bench-101 models" in out
    listed = {line.split()[0] for line in out.split("Optimizers:\n")[1].split("Presets")[0].splitlines()}
    assert set(BUILT_IN) <= listed and set(optimizers.available()) <= listed
    presets = out.split("Presets (--preset):\n")[1].splitlines()
    assert [line.split()[0] for line in presets] == list(PRESETS)
    assert "(no docstring" not in out and "Base class" not in out


def test_list_gives_a_plugin_without_a_docstring_none_of_its_base() -> None:
    from harness.commands.list import own_docstring
    from optimizers.base import SearchOptimizer
    from optimizers.darts import DARTS

    class Bare(SearchOptimizer):
        pass

    assert own_docstring(Bare) == "(no docstring; a subclass of SearchOptimizer)"
    assert own_docstring(DARTS).startswith("Softmax mixing of all ops and edges")


def test_run_writes_the_resolved_overrides(cli_run: Path) -> None:
    written = json.loads((cli_run / "config.json").read_text())
    resolved, environment = written["resolved"], written["environment"]
    assert environment["harness"] and environment["torch"] == torch.__version__
    assert environment["harness_commit"] is None or len(environment["harness_commit"].split("+")[0]) == 40
    run, options = resolved["run"], resolved["optimizer_config"]
    assert (run["optimizer"], run["epochs"], run["channels"], run["cells"]) == ("sdarts-rs", 1, 2, 3)
    assert (run["bn_momentum"], run["hessian_method"], run["hessian"]) == (0.9, "lanczos", False)
    assert (options["arch_lr"], options["epsilon_max"], options["batch_size"]) == (0.002, 0.2, 32)
    assert options["epsilon_min"] == 0.03  # untouched defaults are written too
    assert read_table(cli_run / TABLE_FILE)["epoch"].tolist() == [0, 1]


def test_export_writes_csv(cli_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["export", str(cli_run)]) == 0
    assert f"{cli_run / 'epochs.csv'}: 2 rows" in capsys.readouterr().out  # row 0: before training
    table = read_table(cli_run / TABLE_FILE)
    exported = read_table(cli_run / "epochs.csv").astype(table.dtypes.to_dict())
    pd.testing.assert_frame_equal(exported, table)
    assert main(["export", str(cli_run.parent), "--out", str(tmp_path / "all.csv")]) == 0
    assert len(pd.read_csv(tmp_path / "all.csv")) == 2


def test_export_refuses_a_name_that_is_not_csv(cli_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["export", str(cli_run), "--out", str(tmp_path / "table.txt")]) == 2
    assert "give --out a .csv file name" in capsys.readouterr().err
    assert not (tmp_path / "table.txt").exists()


def test_collect_leaves_out_an_unreadable_run_with_a_warning(
    cli_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    results = tmp_path / "results"
    for name in ("good", "broken"):
        (results / name).mkdir(parents=True)
        for file in ("config.json", "status.json", TABLE_FILE):
            (results / name / file).write_bytes((cli_run / file).read_bytes())
    (results / "broken" / TABLE_FILE).write_bytes(b"PAR1 truncated")
    (results / "broken" / "status.json").write_text("{")
    assert main(["collect", str(results)]) == 0
    captured = capsys.readouterr()
    assert "warning: left out: results table" in captured.err and "broken" in captured.err
    assert "2 rows" in captured.out and "broken: status unknown" in captured.out


def test_collect_tells_a_killed_run_from_a_running_one(
    cli_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from harness.locks import try_lock
    from harness.results import LOCK_FILE, write_status

    run_dir = tmp_path / "results" / cli_run.name
    run_dir.mkdir(parents=True)
    for file in ("config.json", TABLE_FILE):
        (run_dir / file).write_bytes((cli_run / file).read_bytes())
    write_status(run_dir, "running", 1, 3)
    assert main(["collect", str(run_dir.parent)]) == 0
    out = capsys.readouterr().out
    assert f"{cli_run.name}: stopped (1/3 epochs): it says running, but no process holds it" in out
    holder = try_lock(run_dir / LOCK_FILE)
    try:
        assert main(["collect", str(run_dir.parent)]) == 0
    finally:
        holder.close()
    assert f"{cli_run.name}: running (1/3 epochs)\n" in capsys.readouterr().out
    assert main(["plot", str(run_dir.parent), "--out", str(tmp_path / "figures")]) == 0
    err = capsys.readouterr().err
    assert f"warning: drawn with their rows so far, not complete: {cli_run.name} (stopped, 1/3 epochs)" in err


def test_collect_and_plot_name_a_run_that_failed_before_its_first_row(
    cli_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from harness.results import write_status

    results = tmp_path / "results"
    failed = results / "darts-s1-seed0"
    failed.mkdir(parents=True)
    write_status(failed, "failed", 0, 3, error="CIFAR-10 is missing; use --data DIR")
    assert main(["plot", str(results)]) == 2
    err = capsys.readouterr().err
    assert "failed before their first row: darts-s1-seed0: CIFAR-10 is missing; use --data DIR" in err
    good = results / cli_run.name
    good.mkdir()
    for file in ("config.json", "status.json", TABLE_FILE):
        (good / file).write_bytes((cli_run / file).read_bytes())
    assert main(["collect", str(results)]) == 0
    assert "darts-s1-seed0: failed (0/3 epochs): CIFAR-10 is missing; use --data DIR" in capsys.readouterr().out


def test_collect_and_plot_verbs(cli_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    results = cli_run.parent
    assert main(["collect", str(results)]) == 0
    out = capsys.readouterr().out
    assert "2 rows" in out and f"{cli_run.name}: completed (1/1 epochs)" in out
    table = results / f"{COLLECTED_FILE}.parquet"
    assert table.is_file() and (results / f"{COLLECTED_FILE}.csv").is_file()
    for source, figures in ((results, tmp_path / "from-folder"), (table, tmp_path / "from-table")):
        assert main(["plot", str(source), "--out", str(figures)]) == 0
        names = {p.name for p in figures.iterdir()}  # no Hessian figure: the run had the Hessian off
        assert names == {"anytime_test_error.png", "anytime_test_error.pdf", "summary.md", "summary.csv"}
    assert main(["plot", str(cli_run)]) == 0  # one run's directory; figures beside it by default
    assert (cli_run / "figures" / "anytime_test_error.pdf").is_file()
    assert main(["plot", str(results), "--figure", "fig3", "--size", "one-column"]) == 0
    out = capsys.readouterr().out
    assert "fig3: SDARTS-RS; not in the table: darts, hessian-reg, sdarts-adv" in out
    assert (results / "figures" / "fig3_summary.md").is_file()


def test_run_help_shows_threads(capsys: pytest.CaptureFixture) -> None:
    for verb in ("run", "sweep", "bench", "demo"):
        with pytest.raises(SystemExit):
            main([verb, "--help"])
        assert "--threads" in capsys.readouterr().out, verb


def test_sweep_lists_the_failed_run_and_finishes_the_others(
    cifar_root: Path, synthetic_table, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    plugin = tmp_path / "raising.py"
    plugin.write_text(RAISING_PLUGIN)
    args = ["sweep", "--optimizers", "darts,test-raises-in-step", "--plugin", str(plugin), "--spaces", "1"]
    args += ["--seeds", "0", "--epochs", "1", "--data", str(cifar_root), "--benchmark", "synthetic"]
    args += ["--out", str(tmp_path / "runs"), "--device", "cpu", "--quiet"]
    args += set_args(TINY_SETTINGS)
    assert main(args) == 1
    out = capsys.readouterr().out
    assert "sweep: 1 of 2 runs complete; 1 failed:" in out
    assert "FAILED test-raises-in-step-s1-seed0: RuntimeError: boom in step" in out
    assert f"full log: {tmp_path / 'runs' / 'test-raises-in-step-s1-seed0' / 'run.log'}" in out
    assert f"python -m harness plot {tmp_path / 'runs'}" in out
    assert (tmp_path / "runs" / "darts-s1-seed0" / TABLE_FILE).is_file()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "--optimizer", "dart", "--space", "1"], "unknown optimizer 'dart'. Did you mean darts"),
        (["sweep", "--optimizers", "darts,nope", "--seeds", "0"], "unknown optimizer 'nope'"),
        (["run", "--optimizer", "darts", "--space", "1", "--set", "nope=1"], "unknown setting 'nope'; settable: "),
        (["sweep", "--optimizers", "darts", "--set", "nope=1"], "unknown setting 'nope'"),
        (["sweep", "--optimizers", "darts", "--seeds", "x"], "cannot read 'x' as integers"),
        (["sweep", "--optimizers", "darts", "--seeds", "3-1"], "empty range '3-1'"),
        (["sweep", "--optimizers", "darts", "--seeds", ""], "cannot read '' as integers"),
        (["sweep", "--optimizers", "darts", "--spaces", "2,4"], "unknown search space(s) [4]"),
        (["sweep", "--optimizers", "darts", "--set", "channels=x"], "'x'"),
        (["collect", "no-such-folder"], "results folder no-such-folder does not exist"),
        (["export", "no-such-folder"], "no-such-folder is not a run directory nor a results folder"),
        (["plot", "no-such-folder"], "results folder no-such-folder does not exist"),
        (["run", "--optimizer", "darts", "--space", "1", "--device", "tpu"], "device='tpu' is not one of"),
        (["run", "--optimizer", "darts", "--space", "1", "--set", "weight_momentum=1.5"], "must be in [0, 1)"),
        (["bench", "--optimizer", "darts", "--space", "1", "--hessian-methods", "exact"], "unknown Hessian method"),
        (["bench", "--optimizer", "darts", "--space", "1", "--steps", "0"], "--steps must be at least 1"),
        (["run", "--optimizer", "darts", "--space", "1", "--set", "chanels=2"], "did you mean channels"),
        (["sweep", "--optimizers", "darts", "--jobs", "0"], "--jobs and --runs-per-gpu must be at least 1"),
        (["demo", "--jobs", "0"], "--jobs and --runs-per-gpu must be at least 1"),
        (["run", "--optimizer", "darts", "--space", "1", "--threads", "0"], "threads=0 must be at least 1 (or unset"),
        (["run", "--optimizer", "darts", "--space", "1", "--set", "seed=3"], "give it as --seed (sweep: --seeds)"),
        (["run", "--optimizers", "darts", "--space", "1"], "did you mean --optimizer? (--optimizers is an option of"),
        (["run", "--optimizer", "darts", "--space", "1", "--seeds", "0-2"], "--seeds is an option of reproduce, sweep"),
        (["plot", "results", "--alignment", "epochs", "stray"], "plot: unrecognized arguments: stray; `python -m"),
        (["sweep", "--optimizers", "darts", "--set", "threads=1"], "threads is not a --set setting; give it as"),
        (["run", "--optimizer", "darts", "--space", "1", "--set", "attack_steps=1"], "a setting of pcdarts-adv, "),
        (["run", "--optimizer", "darts", "--space", "1", "--set", "arch_lr=fast"], "expected a number, got 'fast'"),
        (["run", "--optimizer", "darts", "--space", "1", "--set", "epochs=2.5"], "expected an integer, got '2.5'"),
        (["plot", "no-such-folder", "--figure", "fig3"], "results folder no-such-folder does not exist"),
        (["run", "--optimizer", "darts", "--space", "1", "--set", "attack_step=1"], "did you mean attack_steps (a "),
        (["run", "--optimizer", "darts", "--space", "1", "--set", "hessian=maybe"], "(true, false, yes, no, on, off"),
        (
            ["run", "--optimizer", "darts", "--space", "1", "--variant", "rdarts-l2-81e4", "--set", "hessian=false"],
            "sets none of what 'rdarts-l2-81e-4' sets, so it would run plain darts under that name: did you mean",
        ),
        (["run", "--space", "1", "--variant", "rdarts-l2-81e4"], "did you mean 'rdarts-l2-81e-4'? Else name its"),
        (["run", "--optimizer", "darts", "--space", "1", "--epochs", "2", "--set", "epochs=3"], "--epochs and --set"),
        (["sweep", "--optimizers", "darts", "--out", "a", "--set", "out=b"], "--out and --set out= both given"),
        (
            ["query", "--matrix", "[[0,1],[0,0]]", "--ops", "input,mxpool"],
            "unknown op(s) mxpool; allowed: input, output, conv3x3-bn-relu",
        ),
    ],
)
def test_errors_are_one_line_with_exit_code_2(
    args: list[str], message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(args) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("error: ") and captured.err.count("\n") == 1, captured.err
    assert message in captured.err
    assert list(tmp_path.iterdir()) == []  # nothing ran, nothing was written


def _offline_cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """`python -m harness ARGS` with every download refused (a proxy on a closed port)."""
    env = {k: v for k, v in os.environ.items() if k.lower() not in ("no_proxy", "http_proxy", "https_proxy")}
    env.update(PYTHONPATH=str(REPO), http_proxy="http://127.0.0.1:9", https_proxy="http://127.0.0.1:9")
    return subprocess.run(
        [sys.executable, "-m", "harness", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def test_demo_offline_without_the_benchmark_says_how_to_go_on(cifar_root: Path, tmp_path: Path) -> None:
    result = _offline_cli(["demo", "--data", str(cifar_root)], tmp_path)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("error: NAS-Bench-101 (data/nasbench_only108.tfrecord, about 499 MB)")
    assert "python -m harness fetch nasbench101 --dest data" in result.stderr
    assert "make demo BENCHMARK=synthetic DATA=DIR" in result.stderr
    assert "python -m harness demo --benchmark synthetic --data DIR" in result.stderr
    assert not (tmp_path / "results").exists()


def test_demo_offline_without_cifar_says_how_to_prepare_it(tmp_path: Path) -> None:
    result = _offline_cli(["demo", "--benchmark", "synthetic", "--data", "nodata"], tmp_path)
    assert result.returncode == 2, result.stderr
    assert "CIFAR-10" in result.stderr and "prepare_cifar10.py" in result.stderr
    assert "make demo BENCHMARK=synthetic DATA=DIR" in result.stderr


def test_docs_cli_md_covers_every_verb_and_option() -> None:
    """docs/cli.md has a section per verb naming each of its options (regenerate the help blocks
    with `COLUMNS=100 python -m harness VERB --help` when a verb changes)."""
    import argparse

    from harness.cli import build_parser

    text = (REPO / "docs" / "cli.md").read_text()
    verbs = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)).choices
    sections = {block.split("\n", 1)[0]: block for block in text.split("\n## ")[1:]}
    assert sorted(sections) == sorted(verbs)
    for verb, parser in verbs.items():
        names = [s for action in parser._actions for s in action.option_strings if s.startswith("--")]
        names += [action.dest for action in parser._actions if not action.option_strings]
        missing = [name for name in names if name not in sections[verb]]
        assert not missing, f"docs/cli.md's `{verb}` section lacks {missing}"


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
@pytest.mark.parametrize(
    ("device", "message"),
    [("cuda", "PyTorch sees no CUDA device here; use --device cpu"), ("mps", "PyTorch has no Apple GPU (MPS) here")],
)
def test_a_missing_gpu_fails_before_any_folder_is_made(
    tmp_path: Path, capsys: pytest.CaptureFixture, device: str, message: str
) -> None:
    if torch.cuda.is_available() or torch.backends.mps.is_available():
        pytest.skip("this machine has a GPU")
    assert main(["run", "--optimizer", "darts", "--space", "1", "--device", device, "--out", str(tmp_path / "r")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_a_user_variant_setting_what_its_near_registered_namesake_sets_is_its_own(tmp_path: Path) -> None:
    from harness.cli import build_parser
    from harness.commands.run import config_from_args

    args = build_parser().parse_args(
        ["run", "--optimizer", "darts", "--space", "1", "--variant", "rdarts-l2-5e-4", "--set", "weight_decay=5e-4"]
    )
    config = config_from_args(args, "darts", 1, 0, (), "rdarts-l2-5e-4", {})
    assert config.variant == "rdarts-l2-5e-4" and config.optimizer_options["weight_decay"] == 5e-4
