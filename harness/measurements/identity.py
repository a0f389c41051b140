"""Which run and which row: the columns that tell rows apart in a collected table."""

from __future__ import annotations

from typing import Any, ClassVar

from harness.measurements.base import Column, EpochContext, Measurement, register_measurement
from harness.schema import SCHEMA_VERSION


@register_measurement
class RunIdentity(Measurement):
    name = "identity"
    order = 0
    columns: ClassVar[dict[str, Column]] = {
        "run": Column("string", "the run directory's name, `optimizer[-variant]-sSPACE-seedSEED`"),
        "optimizer": Column("string", "the registered optimizer"),
        "variant": Column("string", "the variant's name (`--variant`), else the optimizer's: the legend label", 3),
        "space": Column("int64", "NAS-Bench-1Shot1 search space (1, 2, 3)"),
        "seed": Column("int64", "the run's seed"),
        "epoch": Column("int64", "search epochs completed: 0 = before training, k = after k epochs (since 2)"),
        "schema_version": Column("int64", "the table version that wrote the row (`harness/schema.py`)"),
    }

    def measure(self, context: EpochContext) -> dict[str, Any]:
        config = context.config
        return {
            "run": config.run_name,
            "optimizer": config.optimizer,
            "variant": config.variant_label,
            "space": config.space,
            "seed": config.seed,
            "epoch": context.epoch,
            "schema_version": SCHEMA_VERSION,
        }


@register_measurement
class Outcome(Measurement):
    """The run's result: the newest row until the run points back (DARTS-ES); the runner moves
    `selected` and fills `stop_reason` when the optimizer asks to stop."""

    name = "outcome"
    order = 5
    columns: ClassVar[dict[str, Column]] = {
        "selected": Column(
            "boolean",
            "the row whose architecture the run reports as its result (one per run: its last row, or "
            "the row an early stop points back to)",
            3,
        ),
        "stop_reason": Column("string", "why the search stopped early, on its last row (else empty)", 3),
    }

    def measure(self, context: EpochContext) -> dict[str, Any]:
        return {"selected": True, "stop_reason": None}
