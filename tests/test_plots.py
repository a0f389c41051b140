"""The plots package: compute-layer numbers, written files, colours, benchmark labels, errors."""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import plots
from plots.output import atomic_write
from plots.style import FALLBACK_COLOURS as FALLBACK
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
                            "schema_version": 4,
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
    table = make_table()
    table.loc[table["epoch"] == 0, "epoch_seconds"] = 0.3  # row 0 times only the lookups
    summary = plots.summary(table)
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
def test_benchmark_named_once_in_a_one_line_title(benchmark: str, synthetic: bool) -> None:
    for fig in plots.figures(make_table(benchmark)).values():
        title = fig.get_suptitle()
        assert "\n" not in title and title.count("synthetic benchmark") == int(synthetic), title
        assert ("NAS-Bench-101" in title) is not synthetic
        assert not any("benchmark" in ax.get_title() for ax in fig.axes)


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
    """Only the table format's definition (`harness.schema`: pandas and the standard library) is shared."""
    for source in PLOTS_DIR.glob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                names.append(node.module)
            outside = {n.split(".")[0] for n in names if n != "harness.schema"}
            assert not outside & {"harness", "optimizers", "benchmarks"}, source
    schema = ast.parse((PLOTS_DIR.parent / "harness" / "schema.py").read_text())
    imported = {a.name for n in ast.walk(schema) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module for n in ast.walk(schema) if isinstance(n, ast.ImportFrom)}
    assert {name.split(".")[0] for name in imported} <= {"pandas", *sys.stdlib_module_names}


def legend_texts(fig) -> list[str]:
    return [text.get_text() for legend in fig.legends for text in legend.get_texts()]


def test_pdfs_embed_truetype_not_type3_and_sizes_are_paper_sizes(tmp_path: Path) -> None:
    plots.make_figures(make_table(), tmp_path)
    pdf = (tmp_path / "anytime_test_error.pdf").read_bytes()
    assert b"/Subtype /Type3" not in pdf and b"/FontFile2" in pdf  # TrueType (font type 42) embedded
    wide = plots.figures(make_table())["anytime_test_error"]
    narrow = plots.figures(make_table(), size="one-column")["anytime_test_error"]
    assert wide.get_size_inches()[0] == 6.75 and narrow.get_size_inches()[0] == 3.25
    assert all(ax.title.get_fontsize() >= 7 for ax in [*wide.axes, *narrow.axes])


def test_legend_counts_seeds_and_epochs_fewer_seeds_reached_are_marked() -> None:
    table = make_table()
    table = table[~((table["optimizer"] == "darts") & (table["seed"] == 2) & (table["epoch"] > 2))]
    fig = plots.figures(table)["anytime_test_error"]
    texts = legend_texts(fig)
    assert "DARTS (n=3)" in texts and "SDARTS-RS (n=3)" in texts and "fewer seeds reached" in texts
    darts = next(line for line in fig.axes[0].get_lines() if line.get_label() == "DARTS")
    assert np.isnan(darts.get_ydata()[3:]).all() and not np.isnan(darts.get_ydata()[:3]).any()
    assert "fewer seeds reached" not in legend_texts(plots.figures(make_table())["anytime_test_error"])


def test_clipped_log_bands_are_marked() -> None:
    table = make_table()
    table.loc[table["seed"] == 2, "regret"] += 1.0  # std far above the mean: the lower edge is cut off
    fig = plots.figures(table, log_y=True, regret=True)["anytime_regret"]
    assert "band cut at axis" in legend_texts(fig)


def test_fallback_colours_stay_away_from_curated_ones() -> None:
    from plots.style import _KNOWN, _distance

    curated = [colour for _, colour in _KNOWN.values()]
    for name in ("my-method", "rdarts-l2-0.0003", "x", "another"):
        assert min(_distance(plots.color_for(name), c) for c in curated) >= 0.3
    assert plots.label_for("random-ws") == "Random WS" and plots.color_for("random-ws") not in FALLBACK
    assert plots.label_for("rdarts-l2-0.0003") == "R-DARTS(L2) wd=0.0003"


def test_old_tables_read_with_the_new_column_names() -> None:
    old = make_table().drop(columns="schema_version").assign(valid_error=0.1, valid_accuracy=0.5)
    table = plots.load_table(old)
    assert {"benchmark_valid_error", "supernet_valid_accuracy"} <= set(table) and "valid_error" not in table
    assert table["epoch"].min() == 1  # version 1: row e was after e + 1 epochs
    assert list(table["variant"].unique()) == list(OPTIMIZERS) == list(table["method"].unique())


def test_presets_draw_what_is_there_and_name_what_is_missing(tmp_path: Path) -> None:
    table = make_table()
    selected = table[table["optimizer"] == "darts"].assign(method="R-DARTS(L2)", variant="rdarts-l2-0.0003")
    table = pd.concat([table, selected], ignore_index=True)
    lines: list[str] = []
    written = {p.name for p in plots.make_figures(table, tmp_path, figure="all", report=lines.append)}
    assert {"fig3_test_error.pdf", "regularisation_hessian_eigenvalue.png", "regularisation_summary.md"} <= written
    assert "anytime_test_error.pdf" in written
    assert any(line.startswith("fig3: DARTS") and "hessian-reg" in line for line in lines), lines
    markdown = (tmp_path / "regularisation_summary.md").read_text()
    assert "| R-DARTS(L2) | 0.1130 ± 0.0100 (3) | 0.1140 ± 0.0100 (3) |" in markdown, markdown
    assert "darts-es" in markdown  # named as missing
    fig = plots.figures(table, figure="regularisation")["regularisation_test_error"]
    assert legend_texts(fig)[:2] == ["R-DARTS(L2) (n=3)", "SDARTS-RS (n=3)"]  # the preset's order
    with pytest.raises(plots.PlotsError, match="the table has none of fig3's methods"):
        plots.make_figures(table[table["optimizer"] == "enas"], tmp_path / "none", figure="fig3")
    assert not (tmp_path / "none").exists() or not any((tmp_path / "none").iterdir())


def test_a_run_in_two_sources_is_refused_not_merged() -> None:
    from plots.table import check_table, combine_tables

    table = check_table(make_table())
    other = table[table["optimizer"] == OPTIMIZERS[0]]
    assert len(combine_tables({"a": table[table["optimizer"] != OPTIMIZERS[0]], "b": other})) == len(table)
    with pytest.raises(plots.PlotsError, match=f"run {OPTIMIZERS[0]} space 1 seed 0 is in both a and b"):
        combine_tables({"a": table, "b": other})


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda text: text[:-40], "ends in a half-written line"),
        (lambda text: text.replace(",4\n", ",2.5\n", 1), "row(s) 1 have no valid schema_version"),
        (lambda text: text.replace(",4\n", ",4", 1)[:-1], "ends in a half-written line"),
        (lambda text: text.replace(",4\n", ",99\n", 1), "newer harness (table version 99; this one reads 1 to 4)"),
        (lambda text: text.replace("\ndarts,", "\ndarts,", 1).replace(",0.1", ",abc", 1), "other than a number"),
    ],
)
def test_a_damaged_or_newer_csv_table_is_refused_naming_the_file(tmp_path: Path, damage, message: str) -> None:
    from benchmarks.errors import DataFileError
    from harness.results import read_table as read_run_table

    columns = ["run", "optimizer", "space", "seed", "epoch", "benchmark", "test_error", "schema_version"]
    path = tmp_path / "table.csv"
    path.write_text(damage(make_table()[columns].to_csv(index=False)))
    with pytest.raises(plots.PlotsError, match=re.escape(message)) as caught:
        plots.read_table(path)
    assert str(path) in str(caught.value)
    if "number" not in message:  # the harness's reader checks the rows' versions and the last line too
        with pytest.raises(DataFileError, match=re.escape(message)):
            read_run_table(path)
