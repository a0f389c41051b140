"""The supernet's training loss and accuracy over the epoch's weight steps."""

from __future__ import annotations

from typing import Any, ClassVar

from harness.measurements.base import Column, EpochContext, Measurement, register_measurement


@register_measurement
class Training(Measurement):
    name = "training"
    order = 10
    columns: ClassVar[dict[str, Column]] = {
        "train_loss": Column("float64", "mean cross-entropy of the epoch's weight steps (search-train; NaN in row 0)"),
        "train_accuracy": Column("float64", "their accuracy, a fraction (NaN in row 0)"),
    }

    def measure(self, context: EpochContext) -> dict[str, Any]:
        stats = context.training
        if stats is None:
            return {"train_loss": float("nan"), "train_accuracy": float("nan")}
        return {"train_loss": float(stats.loss_sum) / stats.seen, "train_accuracy": int(stats.correct) / stats.seen}
