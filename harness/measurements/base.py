"""What a measurement is: a small registered unit that declares its columns and computes them
for one row of a run's table from the row's `EpochContext`.

Row k of a run's table describes the state after k search epochs (row 0: before training).
The row is the union of every registered measurement's columns, in registration order, then the
optimizer's own (`SearchOptimizer.columns`). A new per-epoch quantity is one new module with a
`@register_measurement` class (a plug-in file given with `--plugin` may add one too).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

if TYPE_CHECKING:
    import torch

    from benchmarks.nasbench101 import NASBench101
    from harness.config import RunConfig
    from harness.data import SearchData
    from optimizers.base import Batch, SearchOptimizer


@dataclass(frozen=True)
class Column:
    """dtype: the pandas dtype ("float64", "int64", "string", "boolean"); doc: what it holds,
    with units; since: the table version that introduced it (`harness.schema`)."""

    dtype: str
    doc: str
    since: int = 1


@dataclass
class TrainingStats:
    """The training loop of one epoch, left on the device: `loss_sum` (summed weight-step losses,
    0-d), `correct` (correct predictions, 0-d int64), `seen` (images, host int)."""

    loss_sum: torch.Tensor
    correct: torch.Tensor
    seen: int


@dataclass
class EpochContext:
    """What a measurement may read about the row being measured.

    epoch: epochs completed (the row's index; 0 = before training); started: `time.perf_counter()`
    when the epoch's training began (row 0: when its measurement began); training: the epoch's
    loop statistics (None for row 0); last_valid_batch(): the last search-valid batch of the
    epoch's training loop (for row 0, of epoch 0's loop; made on first call); best_test_error:
    the space's best mean test error in `table`; values: the columns measured so far in this row,
    by earlier measurements.
    """

    config: RunConfig
    epoch: int
    optimizer: SearchOptimizer
    model: torch.nn.Module
    data: SearchData
    table: NASBench101
    best_test_error: float
    started: float
    training: TrainingStats | None
    last_valid_batch: Callable[[], Batch]
    graphs: bool
    values: dict[str, Any] = field(default_factory=dict)


class Measurement(ABC):
    """One per-epoch quantity. Subclasses set `name`, `columns` and `order` (measurements run in
    increasing order; a later one may read `context.values` of earlier ones) and implement
    `measure`, returning a value for each declared column."""

    name: ClassVar[str] = ""
    columns: ClassVar[dict[str, Column]] = {}
    order: ClassVar[int] = 100

    @abstractmethod
    def measure(self, context: EpochContext) -> dict[str, Any]:
        """The declared columns' values for the row `context.epoch`."""


M = TypeVar("M", bound=type[Measurement])
_MEASUREMENTS: dict[str, type[Measurement]] = {}


def register_measurement(cls: M) -> M:
    """Class decorator: add a measurement to every run's rows (its columns must be new)."""
    taken = {column: other.name for other in _MEASUREMENTS.values() if other is not cls for column in other.columns}
    clashes = [f"{column} (by {taken[column]})" for column in cls.columns if column in taken]
    if clashes:
        raise ValueError(f"measurement {cls.name!r} declares columns already declared: {', '.join(clashes)}")
    _MEASUREMENTS[cls.name] = cls
    return cls


def measurements() -> list[Measurement]:
    """One instance of every registered measurement, in the order they run."""
    return [cls() for cls in sorted(_MEASUREMENTS.values(), key=lambda cls: cls.order)]


def declared_columns() -> dict[str, Column]:
    """Every registered measurement's columns, in row order: the table's documented schema."""
    return {name: column for m in measurements() for name, column in m.columns.items()}


def schema_markdown(describe: Callable[[Column], str] = lambda c: c.doc) -> str:
    """The schema as the Markdown table of docs/results.md (column | type | since | meaning)."""
    lines = ["| column | type | since | meaning |", "|---|---|---|---|"]
    lines += [f"| `{name}` | {c.dtype} | {c.since} | {describe(c)} |" for name, c in declared_columns().items()]
    return "\n".join(lines)
