"""The plots package: compute-layer numbers, written files, colours, benchmark labels, errors."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import plots
from plots.output import atomic_write
from plots.style import linestyle_for, sort_optimizers

PLOTS_DIR = Path(plots.__file__).parent
OPTIMIZERS = ("darts", "sdarts-rs", "enas")


def make_table(benchmark: str = "synthetic") -> pd.DataFrame:
    """3 optimizers x 2 spaces x 3 seeds x 5 epochs; test error lowest at epoch 3; ENAS has no Hessian."""
    rows = []
    for k, optimizer in enumerate(OPTIMIZERS):
        for space in (1, 2):
            for seed in range(3):
                for epoch in range(5):
                    error = 0.10 + 0.01 * k + 0.01 * seed + 0.002 * (epoch - 3) ** 2 + 0.001 * space
                    rows.append(
                        {
                            "run": f"{optimizer}-s{space}-seed{seed}",
                            "optimizer": optimizer,
                            "space": space,
                            "seed": seed,
                            "epoch": epoch,
                            "benchmark": benchmark,
                            "test_error": error,
                            "regret": error - 0.05,
                            "hessian_eigenvalue": np.nan if optimizer == "enas" else 0.1 * (epoch + 1) + 0.01 * seed,
                            "epoch_seconds": 10.0 + seed,
                            "extra_unknown_column": "ignored",
                        }
                    )
    return pd.DataFrame(rows)


def line_colours(fig) -> dict[str, str]:
    """Label -> colour of every labelled line in every panel of `fig`."""
    from matplotlib.colors import to_hex

    return {
        line.get_label(): to_hex(line.get_color())
        for ax in fig.axes
        for line in ax.get_lines()
        if not line.get_label().startswith("_")
    }


def all_titles(fig) -> list[str]:
    return [fig.get_suptitle(), *(ax.get_title() for ax in fig.axes)]


def test_make_figures_writes_figures_and_summary(tmp_path: Path) -> None:
    written = plots.make_figures(make_table(), tmp_path / "out")
    names = {path.name for path in written}
    assert names == {
        "anytime_test_error.png",
        "anytime_test_error.pdf",
        "hessian_eigenvalue.png",
        "hessian_eigenvalue.pdf",
        "summary.md",
        "summary.csv",
    }
    assert all(path.is_file() and path.stat().st_size > 0 for path in written)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(names)  # no temporary file left
    assert (tmp_path / "out" / "anytime_test_error.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    markdown = (tmp_path / "out" / "summary.md").read_text()
    assert "synthetic benchmark" in markdown and "SDARTS-RS" in markdown


def test_make_figures_regret_reads_a_file(tmp_path: Path) -> None:
    path = tmp_path / "table.parquet"
    make_table().to_parquet(path)
    names = {p.name for p in plots.make_figures(str(path), tmp_path, log_y=True, regret=True)}
    assert {"anytime_regret.png", "anytime_regret.pdf"} <= names
    assert "anytime_test_error.png" not in names


def test_epoch_stats_hand_checked() -> None:
    stats = plots.epoch_stats(make_table(), "test_error")
    row = stats[(stats["space"] == 1) & (stats["optimizer"] == "darts") & (stats["epoch"] == 0)].iloc[0]
    seeds = [0.10 + 0.01 * s + 0.002 * 9 + 0.001 for s in range(3)]  # 0.119, 0.129, 0.139
    assert row["mean"] == pytest.approx(np.mean(seeds)) == pytest.approx(0.129)
    assert row["std"] == pytest.approx(0.01)  # sample std (ddof=1) of three values 0.01 apart
    assert row["count"] == 3
    assert len(stats) == 3 * 2 * 5


def test_epoch_stats_skips_nan() -> None:
    table = make_table()
    table.loc[(table["optimizer"] == "darts") & (table["seed"] == 2), "hessian_eigenvalue"] = np.nan
    stats = plots.epoch_stats(table, "hessian_eigenvalue")
    assert "enas" not in set(stats["optimizer"])  # all NaN: dropped
    row = stats[(stats["space"] == 2) & (stats["optimizer"] == "darts") & (stats["epoch"] == 4)].iloc[0]
    assert row["count"] == 2 and row["mean"] == pytest.approx(0.505)


def test_summary_final_and_best_epoch() -> None:
    summary = plots.summary(make_table())
    assert len(summary) == 6
    assert list(summary["optimizer"][:3]) == ["enas", "darts", "sdarts-rs"]  # palette order within a space
    darts = summary[(summary["space"] == 1) & (summary["optimizer"] == "darts")].iloc[0]
    assert darts["seeds"] == 3 and darts["final_epoch"] == 4 and darts["seeds_at_final"] == 3
    assert darts["test_error_mean"] == pytest.approx(0.10 + 0.01 + 0.002 + 0.001)
    assert darts["test_error_std"] == pytest.approx(0.01)
    assert darts["hessian_eigenvalue_mean"] == pytest.approx(0.51)
    assert darts["best_epoch"] == 3
    assert darts["best_test_error"] == pytest.approx(0.10 + 0.01 + 0.001)
    assert darts["epoch_seconds_mean"] == pytest.approx(11.0)
    assert darts["label"] == "DARTS"
    enas = summary[(summary["space"] == 1) & (summary["optimizer"] == "enas")].iloc[0]
    assert np.isnan(enas["hessian_eigenvalue_mean"])


def test_same_colour_for_an_optimizer_in_every_figure() -> None:
    built = plots.figures(make_table())
    errors, hessian = line_colours(built["anytime_test_error"]), line_colours(built["hessian_eigenvalue"])
    assert set(errors) == {"DARTS", "SDARTS-RS", "ENAS"}
    assert set(hessian) == {"DARTS", "SDARTS-RS"}  # ENAS has no Hessian values
    for label, colour in hessian.items():
        assert errors[label] == colour
    assert errors["DARTS"] == plots.color_for("darts")
    assert errors["SDARTS-RS"] != errors["DARTS"]
    assert plots.color_for("sdarts-rs") != plots.color_for("sdarts-adv")


def test_labels_and_fallback_colours_are_stable() -> None:
    labels = [plots.label_for(n) for n in ("pcdarts-adv", "sdarts-adv", "MyOpt")]
    assert labels == ["PC-DARTS-ADV", "SDARTS-ADV", "MyOpt"]
    known = {plots.color_for(n) for n in ("darts", "sdarts-rs", "sdarts-adv", "pcdarts", "gdas", "nasp", "enas")}
    assert len(known) == 7
    assert plots.color_for("my-method") == plots.color_for("my-method")  # MD5 of the name, not hash()
    assert plots.color_for("my-method") != plots.color_for("my-method-2")
    assert linestyle_for("my-method") == "--" and linestyle_for("darts") == "-"
    assert sort_optimizers(["zeta", "sdarts-adv", "alpha", "darts"]) == ["darts", "sdarts-adv", "alpha", "zeta"]


@pytest.mark.parametrize(("benchmark", "synthetic"), [("synthetic", True), ("nasbench101", False)])
def test_synthetic_label_in_every_title(benchmark: str, synthetic: bool) -> None:
    for fig in plots.figures(make_table(benchmark)).values():
        titles = all_titles(fig)
        assert all(("synthetic benchmark" in t) is synthetic for t in titles), titles
        assert ("NAS-Bench-101" in fig.get_suptitle()) is not synthetic


def test_runs_of_different_benchmarks_are_not_averaged_together(tmp_path: Path) -> None:
    mixed = pd.concat([make_table("synthetic"), make_table("nasbench101")], ignore_index=True)
    with pytest.raises(plots.TableFormatError, match=r"different benchmarks \(nasbench101, synthetic\)"):
        plots.make_figures(mixed, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_single_seed_single_epoch_draws_markers() -> None:
    table = make_table("nasbench101")
    table = table[(table["seed"] == 0) & (table["epoch"] == 0)].drop(columns=["hessian_eigenvalue", "benchmark"])
    built = plots.figures(table)
    assert list(built) == ["anytime_test_error"]  # no Hessian column: no Hessian figure
    lines = [line for ax in built["anytime_test_error"].axes for line in ax.get_lines()]
    assert lines and all(line.get_marker() == "o" for line in lines)
    assert np.isnan(plots.epoch_stats(table)["std"]).all()


def test_missing_columns_raise_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "runs.csv"
    make_table().drop(columns=["test_error", "epoch"]).to_csv(path, index=False)
    with pytest.raises(plots.MissingColumnsError, match=r"runs\.csv lacks column\(s\) epoch, test_error"):
        plots.read_table(path)
    with pytest.raises(ValueError, match="test_error"):
        plots.make_figures(make_table().drop(columns="test_error"), tmp_path / "out")
    with pytest.raises(plots.MissingColumnsError, match="regret"):
        plots.figures(make_table().drop(columns="regret"), regret=True)
    assert not (tmp_path / "out").exists()


def test_read_table_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(plots.TableFileError, match=r"nope\.parquet"):
        plots.read_table(tmp_path / "nope.parquet")
    (tmp_path / "table.json").write_text("{}")
    with pytest.raises(plots.TableFormatError, match=r"table\.json"):
        plots.read_table(tmp_path / "table.json")
    assert issubclass(plots.TableFileError, FileNotFoundError)


def test_read_table_csv_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "runs.csv"
    make_table().to_csv(path, index=False)
    table = plots.read_table(path)
    assert len(table) == 90 and table["space"].dtype.kind == "i"


def test_atomic_write_leaves_nothing_on_failure(tmp_path: Path) -> None:
    def fail(tmp: Path) -> None:
        tmp.write_text("half")
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        atomic_write(tmp_path / "summary.md", fail)
    assert list(tmp_path.iterdir()) == []


def test_plots_imports_nothing_from_the_runner() -> None:
    for source in PLOTS_DIR.glob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                names.append(node.module)
            assert not {n.split(".")[0] for n in names} & {"harness", "optimizers", "benchmarks"}, source
