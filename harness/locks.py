"""Advisory file locks (flock): one process per run directory, one run per GPU slot.

A lock belongs to an open file and is released when the file is closed or its process dies,
so a killed run never leaves a stale lock behind.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from benchmarks.errors import HarnessError

POLL_SECONDS = 1.0
READ_ONLY = (errno.EROFS, errno.EACCES)
"""Errors opening a lock file on storage this process cannot write (then no lock is taken)."""


def try_lock(path: Path) -> IO[str] | None:
    """An open file holding an exclusive lock on `path`, or None if another holder has it.

    Two opens of the same path conflict even within one process.
    """
    handle = open(path, "a")  # noqa: SIM115 (kept open while the lock is held)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    return handle


@contextlib.contextmanager
def hold_lock(path: Path, wait: bool, what: str) -> Iterator[None]:
    """Hold the lock on `path` for the duration. If another process holds it: wait for it when
    `wait`, else raise a HarnessError naming `what` is busy. On read-only storage (or one this
    process may not write) no lock is taken: no process can write there, and reading needs none."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        blocking = next((p for p in (path.parent, *path.parent.parents) if p.exists() and not p.is_dir()), None)
        raise HarnessError(
            f"cannot create the folder {path.parent}: {blocking or 'a part of that path'} is not a folder; "
            "choose another --out (or move that file)"
        ) from None
    try:
        handle = try_lock(path)
    except OSError as err:
        if err.errno not in READ_ONLY:
            raise
        handle = contextlib.nullcontext()  # storage this process cannot write: reading goes on unlocked
    while handle is None:
        if not wait:
            raise HarnessError(f"{what} is in use by another process (lock {path}); wait for it to finish or stop it")
        time.sleep(POLL_SECONDS)
        handle = try_lock(path)
    with handle:
        yield


def is_held(path: Path) -> bool | None:
    """Whether a process holds the lock on `path` now: False when the file is missing or free,
    None when this process cannot tell (it may not open the file). It asks by taking the lock for
    an instant: a process that tries to take it without waiting in that instant is refused."""
    if not path.exists():
        return False
    try:
        handle = try_lock(path)
    except OSError:
        return None
    if handle is None:
        return True
    handle.close()
    return False
