"""Writes that fail for want of disk space or permission: one line naming the path, no traceback."""

from __future__ import annotations

import contextlib
import errno
from collections.abc import Callable

from benchmarks.errors import HarnessError

REASONS = {
    errno.ENOSPC: ("the disk is full", "free some space"),
    errno.EDQUOT: ("the disk quota is exceeded", "free some space"),
    errno.EFBIG: ("the file exceeds the largest file size allowed (ulimit -f)", "raise the limit"),
    errno.EROFS: ("the file system is read-only", "write somewhere writable (e.g. another --out)"),
    errno.EACCES: ("permission denied", "make it writable, or write somewhere else (e.g. another --out)"),
    errno.EPERM: ("operation not permitted", "make it writable, or write somewhere else (e.g. another --out)"),
    errno.EEXIST: ("a file stands where a folder is needed", "move that file, or name another folder"),
    errno.ENOTDIR: ("part of the path is a file, not a folder", "move that file, or name another folder"),
}
"""errno -> (what happened, the fix) for the storage faults reported as one line (EEXIST and
ENOTDIR: a folder to make or write into that is a file)."""


class StorageError(HarnessError):
    """A file could not be written: full disk, read-only file system, no permission."""


def is_storage_error(err: BaseException) -> bool:
    """Whether `err` is an OSError for lack of space or permission (see `REASONS`)."""
    return isinstance(err, OSError) and err.errno in REASONS


def storage_error(err: OSError) -> StorageError:
    """The one-line error for a storage fault `err` (see `is_storage_error`), naming its path."""
    what, fix = REASONS[err.errno]
    where = err.filename if err.filename is not None else "a file"
    return StorageError(f"cannot write {where}: {what}; {fix}")


def record_failure(err: Exception, record: Callable[[str], None]) -> Exception:
    """The error to raise for `err` (a storage fault becomes its one-line `StorageError`), after
    recording its one-line reason with `record` (e.g. into status.json). On a full or read-only
    disk the record itself may fail: it is then skipped, and `err` is still what is reported."""
    failure = storage_error(err) if is_storage_error(err) else err
    reason = str(failure) if isinstance(failure, HarnessError) else f"{type(err).__name__}: {err}"
    with contextlib.suppress(OSError):
        record(reason)
    return failure
