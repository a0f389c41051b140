"""The supernet's loss and accuracy on search-valid, mixed as the optimizer evaluates it."""

from __future__ import annotations

import itertools
from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from harness.components import inference
from harness.measurements.base import Column, EpochContext, Measurement, register_measurement


@register_measurement
class SupernetValidation(Measurement):
    name = "supernet"
    order = 30
    columns: ClassVar[dict[str, Column]] = {
        "supernet_valid_loss": Column(
            "float64", "the supernet's mean cross-entropy on search-valid (eval mode, `valid_batches` batches)", 4
        ),
        "supernet_valid_accuracy": Column("float64", "its accuracy there, a fraction", 4),
    }

    def measure(self, context: EpochContext) -> dict[str, Any]:
        model, data = context.model, context.data
        model.eval()
        total_loss = torch.zeros((), device=data.device)
        correct = torch.zeros((), device=data.device, dtype=torch.long)
        count = 0
        try:
            with torch.no_grad():
                forward = inference(model, context.optimizer.eval_mixing(), context.graphs)
                for images, labels in itertools.islice(data.valid_batches(), context.config.valid_batches):
                    logits = forward(images)
                    total_loss += F.cross_entropy(logits, labels, reduction="sum")
                    correct += (logits.argmax(dim=1) == labels).sum()
                    count += len(labels)
        finally:
            model.train()
        return {"supernet_valid_loss": float(total_loss) / count, "supernet_valid_accuracy": int(correct) / count}
