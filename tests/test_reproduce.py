"""The paper's claims as checks on hand-made tables, and `reproduce --scale tiny` end to end."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from harness import cli
from plots.claims import FAILS, HOLDS, UNCHECKABLE, check_claims

EIGENVALUES = {  # (after epoch 1, final): baselines grow more than 10x, GDAS from the lowest, fastest
    "darts": (0.10, 2.0),
    "gdas": (0.04, 1.8),
    "nasp": (0.12, 1.6),
    "pcdarts": (0.11, 1.9),
    "sdarts-rs": (0.10, 0.05),
    "sdarts-adv": (0.09, 0.04),
    "hessian-reg": (0.10, 0.8),
}
FINAL_TEST_ERROR = {"darts": 0.08, "hessian-reg": 0.07, "sdarts-rs": 0.062, "sdarts-adv": 0.058, "gdas": 0.065}


def paper_like_table(benchmark: str = "nasbench101", epochs: int = 10) -> pd.DataFrame:
    rows = []
    for method, (first, final) in EIGENVALUES.items():
        for space in (1, 2):
            for seed in (0, 1):
                for epoch in range(epochs + 1):
                    fraction = max(epoch - 1, 0) / (epochs - 1)
                    error = FINAL_TEST_ERROR.get(method, 0.07)
                    if method == "darts":  # best in the middle, worse at the end
                        error = 0.06 + 0.02 * abs(2 * fraction - 1)
                    rows.append(
                        {
                            "variant": method,
                            "space": space,
                            "seed": seed,
                            "epoch": epoch,
                            "benchmark": benchmark,
                            "hessian_eigenvalue": first * (final / first) ** fraction * (1 + 0.01 * seed),
                            "test_error": error + 0.001 * seed,
                        }
                    )
    return pd.DataFrame(rows)


def verdicts(table: pd.DataFrame) -> dict[str, str]:
    return {v.claim: v.status for v in check_claims(table)}


def test_every_claim_holds_on_a_table_shaped_like_the_papers():
    assert set(verdicts(paper_like_table()).values()) == {HOLDS}


def test_claims_that_the_table_contradicts_do_not_hold():
    table = paper_like_table()
    gdas = table["variant"] == "gdas"
    table.loc[gdas, "hessian_eigenvalue"] = 0.5  # flat: neither 10x nor the lowest start
    sdarts_adv = table["variant"] == "sdarts-adv"
    table.loc[sdarts_adv, "test_error"] = 0.09
    result = verdicts(table)
    assert result["baselines-eigenvalue-grows-10x"] == FAILS
    assert result["gdas-lowest-start-fastest-growth"] == FAILS
    assert result["sdarts-adv-lowest-test-error"] == FAILS
    assert result["sdarts-eigenvalue-stays-low"] == HOLDS


def test_test_error_claims_are_not_judged_on_the_synthetic_benchmark():
    result = verdicts(paper_like_table(benchmark="synthetic"))
    for claim in (
        "darts-deteriorates",
        "sdarts-adv-lowest-test-error",
        "hessian-regularisation-helps-less-than-sdarts",
    ):
        assert result[claim] == UNCHECKABLE
    assert result["baselines-eigenvalue-grows-10x"] == HOLDS


def test_a_missing_method_makes_its_claims_not_checkable():
    table = paper_like_table()
    result = verdicts(table[table["variant"] != "pcdarts"])
    assert result["pcdarts-tracks-darts-and-nasp"] == UNCHECKABLE
    table.loc[table["variant"] == "darts", "hessian_eigenvalue"] = np.nan
    assert verdicts(table)["baselines-eigenvalue-grows-10x"] == UNCHECKABLE


@pytest.mark.slow
def test_reproduce_tiny_runs_end_to_end(cifar_root, tmp_path, capsys):
    out = tmp_path / "tiny"
    args = ["reproduce", "--scale", "tiny", "--data", str(cifar_root), "--benchmark", "synthetic"]
    assert cli.main([*args, "--device", "cpu", "--out", str(out), "--jobs", "2", "--quiet"]) == 0
    report = (out / "report.md").read_text()
    assert "| baselines-eigenvalue-grows-10x |" in report and "not checkable" in report
    assert "--scale tiny" in report
    table = pd.read_parquet(out / "runs" / "all_epochs.parquet")
    assert sorted(table["optimizer"].unique()) == sorted(
        ["enas", "darts", "gdas", "nasp", "pcdarts", "sdarts-rs", "sdarts-adv", "hessian-reg"]
    )
    assert (table.groupby("run")["epoch"].max() == 2).all()
    assert any(out.glob("*.pdf"))


def test_only_the_grids_runs_are_drawn_and_checked_and_the_others_are_named(tmp_path):
    from harness.reproduce import SCALES, grid_configs, grid_rows, report_markdown

    configs = grid_configs(SCALES["tiny"], str(tmp_path), methods=["darts", "gdas"])
    table = paper_like_table()
    table["run"] = table["variant"] + "-s" + table["space"].astype(str) + "-seed" + table["seed"].astype(str)
    rows, left_out = grid_rows(table, configs)
    assert sorted(rows["variant"].unique()) == ["darts", "gdas"]
    assert set(rows["space"]) == {1} and set(rows["seed"]) == {0}
    assert len(rows) == 2 * 11  # two runs of 10 epochs and row 0
    assert {"sdarts-adv-s1-seed0", "darts-s2-seed0", "darts-s1-seed1"} <= set(left_out)
    assert len(left_out) == 7 * 2 * 2 - 2
    report = report_markdown(SCALES["tiny"], "cmd", configs, [], [], "claims", left_out)
    assert f"Left out: {len(left_out)} other run(s)" in report
