"""The error a measurement raises when a run cannot go on."""

from benchmarks.errors import HarnessError


class RunFailed(HarnessError):
    """The run stopped on a non-finite loss or an architecture that cannot be evaluated."""
