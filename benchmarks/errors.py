"""Errors every layer of the harness raises, so callers can catch one family.

Each message names the offending file or value and, where there is one, the fix.
"""


class HarnessError(Exception):
    """Base class of every error the harness raises on purpose."""


class DataFileError(HarnessError, ValueError):
    """A data file exists but is corrupt, truncated or not in the expected format."""


class MissingFileError(HarnessError, FileNotFoundError):
    """A required file or folder does not exist."""


class OutOfDomainError(HarnessError, ValueError):
    """An architecture that is not a valid NAS-Bench-101 model, or not in the benchmark."""


class UnknownNameError(HarnessError, ValueError):
    """A name (optimizer, search space, preset) that is not registered."""
