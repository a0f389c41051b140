"""NAS-Bench-101 without TensorFlow: model specs, the graph hash and the tabular benchmark."""

from benchmarks.errors import OutOfDomainError
from benchmarks.nasbench101.model_spec import ModelSpec
from benchmarks.nasbench101.table import NASBench101

__all__ = ["ModelSpec", "NASBench101", "OutOfDomainError"]
