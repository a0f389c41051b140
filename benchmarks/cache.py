"""Where the harness keeps what it computes once per machine, atomic file writes, and caches
that are built once (by one process), rebuilt when damaged, and leave no orphans behind."""

from __future__ import annotations

import contextlib
import fcntl
import glob
import hashlib
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


class CacheDamaged(Exception):
    """A cache file that exists but cannot be used (truncated, not the expected arrays)."""


def cache_dir() -> Path:
    """`$NAS_HARNESS_CACHE`, else `$XDG_CACHE_HOME/nas-harness`, else `~/.cache/nas-harness`."""
    explicit = os.environ.get("NAS_HARNESS_CACHE")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "nas-harness"


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def naming(err: OSError, path: str | os.PathLike) -> OSError:
    """`err` as an OSError of the same errno (and subclass) naming `path`; `err` itself if it has no errno."""
    return OSError(err.errno, os.strerror(err.errno), str(path)) if err.errno is not None else err


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Call `write(tmp_path)` for a temporary file beside `path`, then rename it onto `path`.

    Readers never see a half-written file (the data reach the disk before the rename); if `write`
    raises, the temporary file is removed and whatever stood at `path` before is left as it was.
    An OSError (a full disk, a read-only folder) is raised again naming `path`, not the temporary.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as err:
        raise naming(err, path) from err
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        write(tmp_path)
        os.chmod(tmp_path, 0o666 & ~_umask())
        with open(tmp_path, "rb+") as written:
            os.fsync(written.fileno())
        os.replace(tmp_path, path)
    except OSError as err:
        raise naming(err, path) from err
    finally:
        tmp_path.unlink(missing_ok=True)
    return path


def remove_orphans(path: str | os.PathLike) -> list[Path]:
    """Remove what killed writes of `path` left beside it (`.NAME.*.tmp` files and folders, see
    `atomic_write`); returns what was removed. Call only while no other process writes `path`
    (e.g. holding `build_lock(path)`)."""
    path = Path(path)
    removed = []
    for orphan in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        if orphan.is_dir() and not orphan.is_symlink():
            shutil.rmtree(orphan, ignore_errors=True)
        else:
            orphan.unlink(missing_ok=True)
        removed.append(orphan)
    return removed


@contextlib.contextmanager
def build_lock(path: str | os.PathLike) -> Iterator[None]:
    """Hold an exclusive lock on building `path` (flock on a file in `cache_dir()/locks`, so no
    lock file is left beside the data), waiting for another process that holds it; released when
    the process dies. Without a writable cache folder the build goes on unlocked."""
    path = Path(path).absolute()
    digest = hashlib.sha1(str(path).encode()).hexdigest()[:16]
    lock = cache_dir() / "locks" / f"{path.name}-{digest}.lock"
    try:
        lock.parent.mkdir(parents=True, exist_ok=True)
        handle = open(lock, "a")  # noqa: SIM115 (closed below, after the build)
    except OSError:
        handle = None
    with handle or contextlib.nullcontext():
        if handle is not None:
            fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def load_or_build(path: Path, load: Callable[[Path], T], build: Callable[[Path], None], what: str) -> T:
    """`load(path)`; if `path` is missing or damaged, `build(path)` it (atomically) and load that.

    `load` raises `CacheDamaged` for a file it cannot use. A damaged file is rebuilt with a warning
    on stderr naming it. Two processes needing the same missing cache build it once: the second
    waits for the first (`build_lock`) and loads its result. Orphans of a killed build are removed.
    what: a description for the warning, e.g. "the space-3 model list".
    """
    if path.is_file():
        with contextlib.suppress(CacheDamaged):
            return load(path)
    with build_lock(path):
        remove_orphans(path)
        if path.is_file():
            try:
                return load(path)
            except CacheDamaged as err:
                print(f"warning: {what} {path} is damaged ({err}); rebuilding it", file=sys.stderr)
                path.unlink()
        build(path)
    return load(path)
