"""The per-epoch measurements: each declares its columns; together they make a table row.

Importing this package registers the built-in ones (run identity and outcome, training,
architecture and NAS-Bench-101 lookup, supernet validation, timing, Hessian eigenvalue).
"""

from harness.measurements import architecture, curvature, identity, supernet, timing, training  # noqa: F401
from harness.measurements.base import (
    Column,
    EpochContext,
    Measurement,
    TrainingStats,
    declared_columns,
    measurements,
    register_measurement,
    schema_markdown,
)
from harness.measurements.errors import RunFailed

__all__ = [
    "Column",
    "EpochContext",
    "Measurement",
    "RunFailed",
    "TrainingStats",
    "declared_columns",
    "measurements",
    "register_measurement",
    "schema_markdown",
]
