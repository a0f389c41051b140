"""Downloading a large file over HTTP(S) with urllib: progress bar, resume, size and md5 checks.

The bytes go to `DEST.part` first; an interrupted download resumes from there (HTTP Range) when
the same call is made again, and only a complete, checked file is renamed onto `DEST`.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

from tqdm import tqdm

from benchmarks.cache import naming
from benchmarks.errors import DataFileError, HarnessError

_NETWORK_ERRORS = (urllib.error.URLError, http.client.HTTPException, ConnectionError, TimeoutError)


def _manual_hint(url: str, dest: Path) -> str:
    return f"download {url} by other means (a browser, or `curl -L -C - -o {dest} {url}`) and save it as {dest}"


def _md5(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()


def download(
    url: str,
    dest: str | os.PathLike,
    expected_size: int | None = None,
    md5: str | None = None,
    *,
    timeout: float = 60.0,
    chunk_size: int = 1 << 20,
    progress: bool = True,
) -> Path:
    """Download `url` to `dest` and return `dest`; do nothing if `dest` already exists with the
    expected size (bytes; unchecked if None). Resumes from `dest.part`. The size is checked against
    `expected_size` and the server's Content-Length, the content against `md5` (hex) if given.

    Raises `HarnessError` when the host cannot be reached or the transfer breaks off (rerun to
    resume), `DataFileError` when the file is not what was expected.
    """
    dest = Path(dest)
    if dest.is_file():
        size = dest.stat().st_size
        if expected_size is None or size == expected_size:
            return dest
        raise DataFileError(f"{dest} has {size} bytes, expected {expected_size}: delete it and download it again")
    made = [folder for folder in (dest.parent, *dest.parent.parents) if not folder.exists()]
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    start = part.stat().st_size if part.is_file() else 0
    if expected_size is not None and start > expected_size:
        part.unlink()
        start = 0
    try:
        total = _transfer(url, part, start, expected_size, timeout, chunk_size, progress)
    except urllib.error.HTTPError as err:
        _undo_empty(part, made)
        raise HarnessError(
            f"{url}: the server answered HTTP {err.code} {err.reason}; {_manual_hint(url, dest)}"
        ) from None
    except _NETWORK_ERRORS as err:
        host = urlsplit(url).hostname
        reason = getattr(err, "reason", err)
        done = part.stat().st_size if part.is_file() else 0
        if done > start:
            raise HarnessError(
                f"download of {url} broke off after {done} bytes ({reason}); run the same command again to resume, "
                f"or {_manual_hint(url, dest)}"
            ) from None
        _undo_empty(part, made)
        raise HarnessError(
            f"cannot reach {host} ({reason}): this machine may be offline; {_manual_hint(url, dest)}"
        ) from None
    size = part.stat().st_size
    if size != total:
        part.unlink()
        raise DataFileError(f"{url}: got {size} bytes, expected {total}; the partial file was removed, try again")
    if md5 is not None and _md5(part) != md5.lower():
        part.unlink()
        raise DataFileError(f"{url}: MD5 checksum mismatch (expected {md5}); the download was removed, try again")
    os.replace(part, dest)
    return dest


def _undo_empty(part: Path, made: list[Path]) -> None:
    """After a download that brought nothing: remove an empty `part` file and the folders made
    for it (deepest first), so a failed attempt leaves no trace."""
    if part.is_file() and part.stat().st_size == 0:
        part.unlink()
    for folder in made:
        with contextlib.suppress(OSError):  # not empty (or not ours to remove): kept
            folder.rmdir()


def _transfer(
    url: str, part: Path, start: int, expected_size: int | None, timeout: float, chunk_size: int, progress: bool
) -> int:
    """Append the rest of `url` to `part` (resuming at byte `start`); return the file's full size."""
    if expected_size is not None and start == expected_size:
        return start
    headers = {"User-Agent": "nas-harness"}
    if start:
        headers["Range"] = f"bytes={start}-"
    try:
        response = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as err:
        if err.code != 416 or not start:
            raise
        # Range not satisfiable: the part file already holds the whole resource (or more).
        return start
    with response:
        if response.status != 206:
            start = 0
        length = response.headers.get("Content-Length")
        total = start + int(length) if length is not None else expected_size
        if expected_size is not None and total is not None and total != expected_size:
            raise DataFileError(f"{url}: the server offers {total} bytes, expected {expected_size}")
        with (
            open(part, "ab" if start else "wb") as f,
            tqdm(
                total=total,
                initial=start,
                unit="B",
                unit_scale=True,
                desc=part.name[: -len(".part")],
                disable=None if progress else True,  # None: only on a terminal
            ) as bar,
        ):
            while chunk := response.read(chunk_size):
                try:
                    f.write(chunk)
                except OSError as err:  # a full disk: name the file (network errors come from read)
                    raise naming(err, part) from err
                bar.update(len(chunk))
    return total if total is not None else part.stat().st_size
