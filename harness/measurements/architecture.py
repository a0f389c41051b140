"""The discretized architecture and what NAS-Bench-101 says of it: the anytime test error."""

from __future__ import annotations

from typing import Any, ClassVar

from benchmarks.errors import OutOfDomainError
from harness.measurements.base import Column, EpochContext, Measurement, register_measurement
from harness.measurements.errors import RunFailed


@register_measurement
class Architecture(Measurement):
    name = "architecture"
    order = 20
    columns: ClassVar[dict[str, Column]] = {
        "benchmark": Column("string", "the NAS-Bench-101 table looked up: `nasbench101` or `synthetic`"),
        "arch_hash": Column("string", "NAS-Bench-101 hash of the discretized architecture"),
        "arch_matrix": Column("string", "its pruned adjacency matrix, row-major '0'/'1' (V x V, V = len(arch_ops))", 2),
        "arch_ops": Column("string", "its ops after pruning, comma-separated, input first, output last", 2),
        "test_error": Column("float64", "NAS-Bench-101: 1 - mean test accuracy over the 3 repeats at 108 epochs"),
        "test_error_std": Column("float64", "NAS-Bench-101: std (ddof 0) of the repeats' test errors"),
        "benchmark_valid_error": Column("float64", "NAS-Bench-101: 1 - mean validation accuracy of the repeats", 4),
        "regret": Column("float64", "test_error - the best mean test error of the space in this table"),
        "params": Column("int64", "NAS-Bench-101: trainable parameters of the architecture"),
    }

    def measure(self, context: EpochContext) -> dict[str, Any]:
        try:
            spec = context.optimizer.discretize()
            errors = context.table.mean_errors(spec)
        except OutOfDomainError as err:
            raise RunFailed(f"row {context.epoch}: the discretized architecture cannot be evaluated: {err}") from err
        return {
            "benchmark": context.table.name,
            "arch_hash": spec.hash(),
            "arch_matrix": "".join(str(int(x)) for x in spec.matrix.flatten()),
            "arch_ops": ",".join(spec.ops),
            "test_error": errors["test_error"],
            "test_error_std": errors["test_error_std"],
            "benchmark_valid_error": errors["valid_error"],
            "regret": errors["test_error"] - context.best_test_error,
            "params": int(errors["params"]),
        }
