"""What a run tells its user: how many threads it uses, a `run.log` of everything it printed
(with full tracebacks), and where its results are once it ends.

The runner calls these; sweeps call them around each run too. `run_logging` is reentrant for a
run directory, so a sweep's wrapper and the runner's own do not write each line twice.
"""

from __future__ import annotations

import contextlib
import datetime
import functools
import importlib.metadata
import io
import os
import platform
import shlex
import subprocess
import sys
import threading
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TextIO

from harness.storage import is_storage_error

LOG_FILE = "run.log"
"""Everything a run printed, appended to on every (re)start, with full tracebacks."""

Log = Callable[[str], None]


def free_cores() -> int:
    """CPU cores this process may use (its affinity mask) that are not already busy, judged by
    the 1-minute load average; at least 1."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        cores = os.cpu_count() or 1
    try:
        busy = os.getloadavg()[0]
    except (AttributeError, OSError):
        busy = 0.0
    return max(1, min(cores, round(cores - busy)))


def default_threads(concurrent: int = 1) -> int:
    """Intra-op threads for each of `concurrent` runs: the free cores divided among them, at least 1.

    On a busy machine this is 1: with more threads than free cores, PyTorch's threads wait for
    each other (a quick run took 30 s per step with 2 threads on 2 busy cores, 0.65 s with 1)."""
    return max(1, free_cores() // max(1, concurrent))


def set_threads(threads: int | None = None, concurrent: int = 1) -> int:
    """Set PyTorch's intra-op threads to `threads` (None: `default_threads(concurrent)`); returns it."""
    import torch

    if threads is not None and threads < 1:
        from harness.config import SettingError

        raise SettingError(f"--threads must be at least 1, got {threads}")
    chosen = int(threads) if threads is not None else default_threads(concurrent)
    if torch.get_num_threads() != chosen:
        torch.set_num_threads(chosen)
    return chosen


FREE_CORES = "the cores free to this process, shared among concurrent runs"
"""How a run's thread count was chosen when nobody asked for one."""


def threads_line(run_name: str, threads: int, how: str = FREE_CORES) -> str:
    """The first line of a run: how many threads it computes with, how they were chosen ("as
    asked", `FREE_CORES`, ...), and how to change that."""
    return f"{run_name}: {threads} CPU thread{'s' if threads != 1 else ''} ({how}; --threads N to change)"


def plot_command(run_dir: str | Path) -> str:
    """The command that draws a run's (or a results folder's) figures."""
    return f"python -m harness plot {shlex.quote(str(run_dir))}"


def finished_line(run_dir: str | Path) -> str:
    """The last line of a run: where its results are and the command that plots them."""
    run_dir = Path(run_dir)
    return (
        f"{run_dir.name}: results in {run_dir}/ (epochs.parquet, config.json, {LOG_FILE}); "
        f"plot them: {plot_command(run_dir)}"
    )


def environment(device: Any) -> dict[str, Any]:
    """What results were computed with: the harness's version and commit, torch and Python
    versions, the device and its name, and PyTorch's CPU threads (config.json's `environment`,
    bench's JSON)."""
    import torch

    return {
        **harness_version(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "device": str(device),
        "device_name": device_name(device),
        "torch_threads": torch.get_num_threads(),
    }


@functools.cache
def harness_version() -> dict[str, str | None]:
    """The installed harness's version, and the git commit of its source when that is the top of
    a git checkout ("+dirty" when tracked files differ from it; None otherwise, e.g. installed
    into another repository's virtual environment). Asked once per process."""
    try:
        version = importlib.metadata.version("nas-harness")
    except importlib.metadata.PackageNotFoundError:
        version = "unknown (not installed)"
    source = Path(__file__).resolve().parents[1]
    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0"}  # never take the index's lock

    def git(*args: str) -> str:
        command = ["git", "-C", str(source), *args]
        return subprocess.run(command, capture_output=True, text=True, timeout=10, check=True, env=env).stdout.strip()

    try:
        if Path(git("rev-parse", "--show-toplevel")).resolve() != source:
            return {"harness": version, "harness_commit": None}
        dirty = "+dirty" if git("status", "--porcelain", "--untracked-files=no") else ""
        return {"harness": version, "harness_commit": git("rev-parse", "HEAD") + dirty}
    except (OSError, subprocess.SubprocessError):
        return {"harness": version, "harness_commit": None}


def device_name(device: Any) -> str:
    """A readable name of a torch device: the GPU's name, or the CPU's model name (from
    /proc/cpuinfo on Linux, else `platform.processor()`, else the machine type)."""
    kind = getattr(device, "type", str(device).split(":")[0])
    if kind == "cuda":
        import torch

        return torch.cuda.get_device_name(device)
    if kind == "cpu":
        with contextlib.suppress(OSError):
            for line in Path("/proc/cpuinfo").read_text().splitlines():
                key, _, value = line.partition(":")
                if key.strip() in ("model name", "Model", "Hardware") and value.strip():
                    return value.strip()
        return platform.processor() or platform.machine() or "cpu"
    return str(device)


class _Tee(io.TextIOBase):
    """A text stream that writes to `stream` and, line by line, to the log file. Progress bars
    (lines redrawn with carriage returns) reach the file only as their last state, and blank
    leftovers of cleared bars not at all."""

    def __init__(self, stream: TextIO, sink: Callable[[str], None]):
        self.stream, self.sink = stream, sink
        self.partial = ""
        self.muted = threading.local()

    def write(self, text: str) -> int:
        try:
            self.stream.write(text)
        except UnicodeEncodeError:  # e.g. a path of bytes that are not UTF-8, on a strict console
            encoding = self.encoding
            self.stream.write(text.encode(encoding, "backslashreplace").decode(encoding))
        if not getattr(self.muted, "on", False):
            self.partial += text
            *lines, self.partial = self.partial.split("\n")
            for line in lines:
                line = line.split("\r")[-1].rstrip()
                if line:
                    self.sink(line)
        return len(text)

    def flush(self) -> None:
        self.stream.flush()

    def isatty(self) -> bool:
        return self.stream.isatty()

    def fileno(self) -> int:
        return self.stream.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self.stream, "encoding", "utf-8")


_ACTIVE: dict[Path, Log] = {}
_ACTIVE_LOCK = threading.Lock()


def _stamp() -> str:
    return datetime.datetime.now().astimezone().isoformat(timespec="seconds")


@contextlib.contextmanager
def run_logging(run_dir: str | Path, log: Log = print) -> Iterator[Log]:
    """Append everything the run prints to `run_dir/run.log` while the block runs; yields the log
    function to use inside it (it calls `log` and writes the line to the file).

    Besides the yielded function's lines, whatever is written to stdout and stderr meanwhile
    (warnings, progress bars' final states) reaches the file too. An exception leaving the block
    is written there with its full traceback, then re-raised. Nested use for the same directory
    (a sweep's wrapper around the runner's) writes each line once.
    """
    path = Path(run_dir).resolve() / LOG_FILE
    with _ACTIVE_LOCK:
        outer = _ACTIVE.get(path)
    if outer is not None:
        yield outer
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        # backslashreplace: a path of bytes that are not UTF-8 (decoded with surrogates) is logged escaped
        file = open(path, "a", encoding="utf-8", errors="backslashreplace", buffering=1)  # noqa: SIM115
    except OSError as err:
        if not is_storage_error(err):
            raise
        file = None
    if file is None:  # storage this process cannot write (read-only): the console only
        yield log
        return
    lock = threading.Lock()
    with file:

        def write(line: str) -> None:
            with lock:
                file.write(line + "\n")

        write(f"=== {_stamp()} {' '.join(sys.argv) or 'python'} (pid {os.getpid()}, {platform.node()})")
        out, err = _Tee(sys.stdout, write), _Tee(sys.stderr, write)

        def logged(line: str) -> None:
            for piece in str(line).splitlines() or [""]:
                write(piece)
            out.muted.on = err.muted.on = True
            try:
                log(line)
            finally:
                out.muted.on = err.muted.on = False

        with _ACTIVE_LOCK:
            _ACTIVE[path] = logged
        saved = sys.stdout, sys.stderr
        sys.stdout, sys.stderr = out, err
        try:
            yield logged
        except BaseException as error:
            kind = "interrupted" if isinstance(error, KeyboardInterrupt) else "failed"
            write(f"=== {_stamp()} {kind}:")
            for line in traceback.format_exc().rstrip().splitlines():
                write(line)
            raise
        finally:
            sys.stdout, sys.stderr = saved
            with _ACTIVE_LOCK:
                _ACTIVE.pop(path, None)
            if out.partial.strip() or err.partial.strip():
                write((out.partial + err.partial).split("\r")[-1].rstrip())
