"""The SDARTS paper's NAS-Bench-1Shot1 claims (Chen & Hsieh, ICML 2020, §4 and §5.1), as checks on
a tidy results table.

Each claim turns a sentence of the paper into a rule on the table (methods told apart by the
`variant` column, trajectories averaged over seeds per space and epoch) and answers "holds",
"does not hold" or "not checkable" with the reason. Claims on the anytime test error need the
real NAS-Bench-101 table: on the synthetic one they are "not checkable". The rules are stated in
each claim's `rule`, so a reader can judge the operationalisation, not only the verdict.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

HOLDS, FAILS, UNCHECKABLE = "holds", "does not hold", "not checkable"
BASELINES = ("darts", "gdas", "nasp", "pcdarts")
"""The paper's baselines with architecture weights (Figure 5; ENAS has none)."""
SDARTS = ("sdarts-rs", "sdarts-adv")
FIRST_EPOCH = 1
"""Eigenvalue trajectories start after the first epoch, where the reference's first Hessian is."""


@dataclass(frozen=True)
class Verdict:
    claim: str
    status: str
    detail: str


@dataclass(frozen=True)
class Claim:
    """name: a short id; quote: the paper's sentence; rule: how it is checked here."""

    name: str
    quote: str
    rule: str
    check: Callable[[pd.DataFrame], tuple[str, str]]
    needs_benchmark: bool = False

    def verdict(self, table: pd.DataFrame) -> Verdict:
        if self.needs_benchmark and _synthetic(table):
            return Verdict(self.name, UNCHECKABLE, "test errors come from the synthetic benchmark, not NAS-Bench-101")
        try:
            status, detail = self.check(table)
        except _Missing as missing:
            return Verdict(self.name, UNCHECKABLE, str(missing))
        return Verdict(self.name, status, detail)


class _Missing(Exception):
    """What a claim needs is not in the table."""


def _synthetic(table: pd.DataFrame) -> bool:
    return "benchmark" in table.columns and table["benchmark"].astype(str).str.contains("synthetic").any()


def mean_trajectory(table: pd.DataFrame, method: str, space: int, column: str) -> pd.Series:
    """Mean of `column` over seeds per epoch, for one method and space, over the epochs every
    seed reached; raises _Missing when the method has no finite values there."""
    rows = table[(table["variant"] == method) & (table["space"] == space)]
    if rows.empty or rows[column].isna().all():
        raise _Missing(f"no {column} for {method} in space {space}")
    reached = rows.groupby("seed")["epoch"].max().min()
    return rows[rows["epoch"] <= reached].groupby("epoch")[column].mean()


def _spaces(table: pd.DataFrame) -> list[int]:
    return sorted(int(s) for s in table["space"].unique())


def _per_space(table: pd.DataFrame, test: Callable[[int], tuple[bool, str]]) -> tuple[str, str]:
    results = [test(space) for space in _spaces(table)]
    status = HOLDS if all(ok for ok, _ in results) else FAILS
    return status, "; ".join(detail for _, detail in results)


def _growth(table: pd.DataFrame, method: str, space: int) -> tuple[float, float, float]:
    """(first, final, final / first) of the mean eigenvalue trajectory from FIRST_EPOCH on."""
    trajectory = mean_trajectory(table, method, space, "hessian_eigenvalue")
    trajectory = trajectory[trajectory.index >= FIRST_EPOCH]
    if len(trajectory) < 2:
        raise _Missing(f"{method} in space {space} has fewer than 2 epochs of eigenvalues")
    return trajectory.iloc[0], trajectory.iloc[-1], trajectory.iloc[-1] / trajectory.iloc[0]


def _present(table: pd.DataFrame, methods: tuple[str, ...]) -> list[str]:
    found = [m for m in methods if (table["variant"] == m).any()]
    if not found:
        raise _Missing(f"none of {', '.join(methods)} in the table")
    return found


def baselines_grow_tenfold(table: pd.DataFrame) -> tuple[str, str]:
    def test(space: int) -> tuple[bool, str]:
        growth = {m: _growth(table, m, space)[2] for m in _present(table, BASELINES)}
        text = ", ".join(f"{m} x{g:.1f}" for m, g in growth.items())
        return all(g > 10 for g in growth.values()), f"space {space}: {text}"

    return _per_space(table, test)


def sdarts_ends_below_every_baseline(table: pd.DataFrame) -> tuple[str, str]:
    def test(space: int) -> tuple[bool, str]:
        final = {m: _growth(table, m, space)[1] for m in (*_present(table, SDARTS), *_present(table, BASELINES))}
        worst_sdarts = max(final[m] for m in SDARTS if m in final)
        best_baseline = min(final[m] for m in BASELINES if m in final)
        text = ", ".join(f"{m} {v:.3g}" for m, v in final.items())
        return worst_sdarts < best_baseline, f"space {space}: {text}"

    return _per_space(table, test)


def gdas_starts_lowest_grows_fastest(table: pd.DataFrame) -> tuple[str, str]:
    def test(space: int) -> tuple[bool, str]:
        growth = {m: _growth(table, m, space) for m in _present(table, BASELINES)}
        if "gdas" not in growth:
            raise _Missing("no gdas in the table")
        lowest = min(growth, key=lambda m: growth[m][0])
        fastest = max(growth, key=lambda m: growth[m][2])
        ok = lowest == fastest == "gdas"
        return ok, f"space {space}: lowest start {lowest}, fastest growth {fastest}"

    return _per_space(table, test)


def pcdarts_tracks_darts_and_nasp(table: pd.DataFrame) -> tuple[str, str]:
    def test(space: int) -> tuple[bool, str]:
        pc = _growth(table, "pcdarts", space)[1]
        ratios = {m: pc / _growth(table, m, space)[1] for m in ("darts", "nasp")}
        text = ", ".join(f"pcdarts/{m} {r:.2f}" for m, r in ratios.items())
        return all(abs(math.log(r)) < math.log(2) for r in ratios.values()), f"space {space}: {text}"

    return _per_space(table, test)


def darts_deteriorates(table: pd.DataFrame) -> tuple[str, str]:
    def test(space: int) -> tuple[bool, str]:
        trajectory = mean_trajectory(table, "darts", space, "test_error")
        best, final = trajectory.min(), trajectory.iloc[-1]
        return final > best + 0.005, f"space {space}: best {best:.4f} (epoch {trajectory.idxmin()}), final {final:.4f}"

    return _per_space(table, test)


def _final_test_errors(table: pd.DataFrame, space: int, methods: list[str]) -> dict[str, float]:
    return {m: mean_trajectory(table, m, space, "test_error").iloc[-1] for m in methods}


def sdarts_adv_ends_lowest(table: pd.DataFrame) -> tuple[str, str]:
    def test(space: int) -> tuple[bool, str]:
        methods = sorted(table.loc[table["space"] == space, "variant"].unique())
        if "sdarts-adv" not in methods or len(methods) < 2:
            raise _Missing(f"space {space} needs sdarts-adv and another method")
        final = _final_test_errors(table, space, methods)
        best = min(final, key=final.get)
        return best == "sdarts-adv", f"space {space}: lowest {best} ({final[best]:.4f})"

    return _per_space(table, test)


def hessian_regularisation_in_between(table: pd.DataFrame) -> tuple[str, str]:
    def test(space: int) -> tuple[bool, str]:
        final = _final_test_errors(table, space, ["darts", "hessian-reg", *SDARTS])
        ok = max(final["sdarts-rs"], final["sdarts-adv"]) < final["hessian-reg"] < final["darts"]
        return ok, f"space {space}: " + ", ".join(f"{m} {v:.4f}" for m, v in final.items())

    return _per_space(table, test)


CLAIMS: tuple[Claim, ...] = (
    Claim(
        "baselines-eigenvalue-grows-10x",
        "In comparison, in all baselines [the Hessian norm] continue[s] to increase and they even enlarge beyond "
        "10 times after 100 search epochs. (§5.1, Figure 5)",
        "for DARTS, GDAS, NASP and PC-DARTS in every space: the seed-mean eigenvalue at the last epoch is more "
        "than 10x the one after the first epoch",
        baselines_grow_tenfold,
    ),
    Claim(
        "sdarts-eigenvalue-stays-low",
        "both SDARTS-RS and SDARTS-ADV anneal to a low level throughout the search procedure. (§5.1, Figure 5)",
        "in every space, the final seed-mean eigenvalue of SDARTS-RS and of SDARTS-ADV is below every baseline's",
        sdarts_ends_below_every_baseline,
    ),
    Claim(
        "gdas-lowest-start-fastest-growth",
        "Though GDAS has the lowest [Hessian norm] at the beginning, it suffers the largest growth rate. (§5.1)",
        "in every space, among the baselines GDAS has the lowest seed-mean eigenvalue after the first epoch and "
        "the largest final / first ratio",
        gdas_starts_lowest_grows_fastest,
    ),
    Claim(
        "pcdarts-tracks-darts-and-nasp",
        "PC-DARTS has a similar trajectory to DARTS and NASP. (§5.1, Figure 5)",
        "in every space, PC-DARTS's final seed-mean eigenvalue is within a factor of 2 of DARTS's and of NASP's",
        pcdarts_tracks_darts_and_nasp,
    ),
    Claim(
        "darts-deteriorates",
        "DARTS generates architectures with deteriorating performance when the search epoch becomes large. "
        "(§5.1, Figures 3-4)",
        "in every space, DARTS's final seed-mean anytime test error is more than 0.5 percentage points above its "
        "best over the run",
        darts_deteriorates,
        needs_benchmark=True,
    ),
    Claim(
        "sdarts-adv-lowest-test-error",
        "SDARTS-ADV achieves even better performance [than SDARTS-RS, which outperforms all 5 baselines on 3 "
        "search spaces]. (§5.1, Figure 4)",
        "in every space, SDARTS-ADV has the lowest final seed-mean anytime test error of all methods in the table",
        sdarts_adv_ends_lowest,
        needs_benchmark=True,
    ),
    Claim(
        "hessian-regularisation-helps-less-than-sdarts",
        "Figure 3 suggests that it takes some effect compared with DARTS but is worse than both SDARTS-RS and "
        "SDARTS-ADV. (§4)",
        "in every space, final seed-mean test error: SDARTS-RS and SDARTS-ADV < explicit Hessian regularisation "
        "(hessian-reg) < DARTS",
        hessian_regularisation_in_between,
        needs_benchmark=True,
    ),
)


def check_claims(table: pd.DataFrame) -> list[Verdict]:
    """Every claim's verdict on a tidy table (current schema: `variant`, `space`, `seed`, `epoch`,
    `test_error`, `hessian_eigenvalue`, `benchmark`)."""
    return [claim.verdict(table) for claim in CLAIMS]


def claims_markdown(verdicts: list[Verdict]) -> str:
    """The claim table of a report: claim | verdict | what was measured | the paper | the rule."""
    claims = {claim.name: claim for claim in CLAIMS}
    lines = ["| claim | verdict | measured | the paper says | checked as |", "|---|---|---|---|---|"]
    for v in verdicts:
        claim = claims[v.claim]
        lines.append(f"| {v.claim} | **{v.status}** | {v.detail} | {claim.quote} | {claim.rule} |")
    return "\n".join(lines)
