"""Errors the plots package raises on purpose, so callers can catch one family.

`plots` imports nothing from the harness, so these do not derive from `HarnessError`;
a caller that wants one family catches `PlotsError` beside it.
"""


class PlotsError(Exception):
    """Base class of every error the plots package raises on purpose."""


class TableFileError(PlotsError, FileNotFoundError):
    """The results table file does not exist (or is a folder)."""


class TableFormatError(PlotsError, ValueError):
    """The results table cannot be read or its values are not usable."""


class MissingColumnsError(TableFormatError):
    """The results table lacks columns the plots need."""
