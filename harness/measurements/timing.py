"""Wall-clock time of the epoch's training and of the measurements before the Hessian."""

from __future__ import annotations

import time
from typing import Any, ClassVar

import torch

from harness.measurements.base import Column, EpochContext, Measurement, register_measurement


@register_measurement
class EpochTime(Measurement):
    name = "timing"
    order = 40
    columns: ClassVar[dict[str, Column]] = {
        "epoch_seconds": Column(
            "float64", "seconds from the epoch's first step through the supernet validation (row 0: the lookups)"
        ),
    }

    def measure(self, context: EpochContext) -> dict[str, Any]:
        if context.data.device.type == "cuda":
            torch.cuda.synchronize(context.data.device)
        return {"epoch_seconds": time.perf_counter() - context.started}
