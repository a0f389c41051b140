"""Selection among a method's variants by search-valid accuracy (plots.selection, `harness select`)."""

from __future__ import annotations

import pandas as pd
import pytest

from harness.cli import main
from plots.errors import MissingColumnsError, TableFormatError
from plots.selection import picks, select_variants

ACCURACY = {
    # (seed, variant): supernet search-valid accuracy after epochs 0, 1, 2
    (0, "a"): [0.1, 0.9, 0.5],  # best mid-run, not at the end
    (0, "b"): [0.1, 0.4, 0.7],  # best final row: picked for seed 0
    (0, "c"): [0.1, 0.5, 0.6],
    (0, "d"): [0.1, 0.9, 0.99],  # not one of the method's variants
    (1, "a"): [0.1, 0.5, 0.6],
    (1, "b"): [0.1, 0.5, 0.6],
    (1, "c"): [0.1, 0.8, 0.2],  # early-stopped: reports epoch 1 (selected), picked for seed 1
}


def table(column: str = "supernet_valid_accuracy") -> pd.DataFrame:
    rows = [
        {
            "optimizer": "darts",
            "variant": variant,
            "space": 1,
            "seed": seed,
            "epoch": epoch,
            "test_error": 0.1,
            column: accuracy,
            "selected": epoch == (1 if (seed, variant) == (1, "c") else 2),
        }
        for (seed, variant), accuracies in ACCURACY.items()
        for epoch, accuracy in enumerate(accuracies)
    ]
    return pd.DataFrame(rows)


def test_picks_the_variant_whose_reported_row_has_the_best_search_valid_accuracy():
    chosen = picks(table(), ["a", "b", "c"])
    assert chosen[["seed", "variant", "epoch"]].values.tolist() == [[0, "b", 2], [1, "c", 1]]
    assert chosen["score"].tolist() == [0.7, 0.8]
    assert chosen["candidates"].tolist() == [3, 3]


def test_without_the_selected_flag_the_last_epoch_counts():
    chosen = picks(table().drop(columns="selected"), ["a", "b", "c"])
    assert chosen["variant"].tolist() == ["b", "a"]  # seed 1: a and b tie at 0.6, a is named first


def test_select_returns_every_epoch_of_the_picks_under_the_method_name():
    selected = select_variants(table("valid_accuracy"), "M", ["a", "b", "c"])
    assert selected[["seed", "variant"]].drop_duplicates().values.tolist() == [[0, "b"], [1, "c"]]
    assert len(selected) == 6 and (selected["method"] == "M").all()


def test_clear_errors_for_missing_accuracy_or_variants():
    with pytest.raises(MissingColumnsError, match="supernet_valid_accuracy"):
        picks(table().drop(columns="supernet_valid_accuracy"), ["a"])
    with pytest.raises(TableFormatError, match="present: a, b, c, d"):
        picks(table(), ["x"])


def test_select_command_writes_the_table_of_a_registered_method(tmp_path, capsys):
    frame = table().replace({"variant": {"a": "rdarts-l2-3e-4", "b": "rdarts-l2-9e-4", "c": "rdarts-l2-27e-4"}})
    frame = frame.assign(run=frame["variant"] + "-s1-seed" + frame["seed"].astype(str), schema_version=4)
    frame.to_csv(tmp_path / "t.csv", index=False)
    out = tmp_path / "picked.csv"
    assert main(["select", str(tmp_path / "t.csv"), "--method", "R-DARTS(L2)", "--out", str(out)]) == 0
    written = pd.read_csv(out)
    assert sorted(written["variant"].unique()) == ["rdarts-l2-27e-4", "rdarts-l2-9e-4"]
    assert (written["method"] == "R-DARTS(L2)").all()
    assert "rdarts-l2-9e-4" in capsys.readouterr().out
