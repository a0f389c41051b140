"""DARTS-ES (Zela et al., "Understanding and Robustifying Differentiable Architecture Search",
ICLR 2020; SPEC §5c): DARTS that stops when the dominant Hessian eigenvalue starts to grow fast.

The signal is the runner's `hessian_eigenvalue` column, fed back through `observe(row)` (this
optimizer never computes a Hessian of its own). Let ev(j) be the eigenvalue of row j (after j
epochs) and avg(i) its local average over a window of w rows centred on row i. The search stops
at row i when avg(i - k) / avg(i) < r, and the run reports the architecture of row i - k.

Paper defaults (SPEC §5c): w = 5, k = 5, r = 0.75. From the reference code (automl/RobustDARTS,
`src/utils.py` EVLocalAvg and `early_stop`):

* the window is centred, so avg(i) is known once row i + w // 2 is observed: that is where the
  search stops (two epochs after row i with w = 5);
* near the start the window is cut: avg(i) = mean of ev(j) for max(first, i - w//2) <= j <= i + w//2;
* the first eigenvalue is after one epoch of training: row 0 (before training) is not part of
  the signal;
* no stop is considered before the reported row would be its epoch 10 (`es_start_epoch`,
  counted from 0 after the first epoch), i.e. row 11 here (`es_min_report_epoch`).

Deviations from the reference code, whose defaults differ from the paper: it compares
avg(i) / avg(i - delta) > 1.3 with delta = 4 (the paper, and this module: avg(i - k) / avg(i) <
0.75 with k = 5), and it skips the check in the last epoch (here every row is checked).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from benchmarks.nasbench1shot1 import OneShotModel, SearchSpace
from harness.config import SettingError
from optimizers.base import StopRequest, out_of_range
from optimizers.darts import DARTS, DARTSConfig
from optimizers.registry import register

FIRST_ROW = 1
"""The first row whose eigenvalue enters the signal (the reference's first is after one epoch)."""


@dataclass
class DARTSESConfig(DARTSConfig):
    """es_window: rows in the local average (odd); es_lag: k, rows between the compared averages;
    es_ratio: stop when avg(i - k) / avg(i) falls below it; es_min_report_epoch: the earliest row
    an early stop may report."""

    es_window: int = 5
    es_lag: int = 5
    es_ratio: float = 0.75
    es_min_report_epoch: int = 11

    def problems(self) -> list[str]:
        problems = super().problems() + out_of_range(
            self, minimum={"es_window": 1, "es_lag": 1, "es_min_report_epoch": FIRST_ROW}, positive=("es_ratio",)
        )
        if self.es_window % 2 == 0:
            problems.append(f"es_window={self.es_window} must be odd (the window is centred on a row)")
        return problems


class EigenvalueEarlyStop:
    """The DARTS-ES criterion over the rows observed so far (the role of RobustDARTS's EVLocalAvg).

    `observe` is idempotent per row, so a runner that feeds a row again after resuming changes nothing.
    """

    def __init__(self, config: DARTSESConfig):
        self.config = config
        self.eigenvalues: dict[int, float] = {}
        """Row (epochs completed) -> dominant eigenvalue."""
        self.stop: StopRequest | None = None

    def local_average(self, row: int) -> float:
        """avg(row): the mean eigenvalue of the window centred on `row`, cut at the first row."""
        half = self.config.es_window // 2
        values = [self.eigenvalues[j] for j in range(max(FIRST_ROW, row - half), row + half + 1)]
        return sum(values) / len(values)

    def observe(self, row: dict[str, Any]) -> None:
        """Take row k's eigenvalue; decide, for i = k - w // 2, whether to stop and report i - k."""
        epoch = int(row["epoch"])
        eigenvalue = float(row.get("hessian_eigenvalue", math.nan))
        if math.isnan(eigenvalue):
            raise SettingError(
                f"darts-es stops on the Hessian's dominant eigenvalue, but row {epoch} has none "
                "(hessian_eigenvalue is NaN): run it with the Hessian on (drop --set hessian=false)"
            )
        if self.stop is not None or epoch < FIRST_ROW:
            return
        self.eigenvalues[epoch] = eigenvalue
        current = epoch - self.config.es_window // 2
        earlier = current - self.config.es_lag
        if earlier < self.config.es_min_report_epoch:
            return
        before, now = self.local_average(earlier), self.local_average(current)
        if before < self.config.es_ratio * now:
            self.stop = StopRequest(
                f"DARTS-ES: local average eigenvalue {before:.4g} (row {earlier}) -> {now:.4g} "
                f"(row {current}), ratio {before / now:.3f} < {self.config.es_ratio}; reporting row {earlier}",
                report_epoch=earlier,
            )

    def state_dict(self) -> dict[str, Any]:
        stop = None if self.stop is None else {"reason": self.stop.reason, "report_epoch": self.stop.report_epoch}
        return {"eigenvalues": dict(self.eigenvalues), "stop": stop}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.eigenvalues = {int(row): float(value) for row, value in state["eigenvalues"].items()}
        self.stop = None if state["stop"] is None else StopRequest(**state["stop"])


@register("darts-es")
class DARTSES(DARTS):
    """DARTS-ES (Zela et al., 2020): DARTS stopped early when the local average of the dominant
    Hessian eigenvalue grows by more than 1 / 0.75 over 5 epochs; reports the architecture of 5 epochs before."""

    Config = DARTSESConfig

    def __init__(self, space: SearchSpace, model: OneShotModel, config: DARTSESConfig):
        super().__init__(space, model, config)
        self.early_stop = EigenvalueEarlyStop(config)

    def observe(self, row: dict[str, Any]) -> None:
        self.early_stop.observe(row)

    def should_stop(self) -> StopRequest | None:
        return self.early_stop.stop

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "early_stop": self.early_stop.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.early_stop.load_state_dict(state["early_stop"])
