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


UNSAFE_ADVICE = ("allow_pickle", "weights_only")
"""Words of a library's advice to load a file by running its pickled code."""


def brief(err: BaseException) -> str:
    """Why a library failed to read a file, for a one-line message: the error's type and first
    line. Where the library advises loading the file unsafely (numpy's allow_pickle, torch's
    weights_only), the reason is said instead: pickled Python objects (a refused global), or a
    damaged file or one of another kind."""
    text = str(err).strip()
    if any(word in text for word in UNSAFE_ADVICE):
        if "Unsupported global" in text or "GLOBAL" in text:
            return "it holds pickled Python objects, which are refused, never run"
        return "it is damaged, or not this kind of file (nothing in it was run)"
    first = text.splitlines()[0] if text else ""
    return f"{type(err).__name__}: {first}" if first else type(err).__name__
