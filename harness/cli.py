"""Command-line entry point: `python -m harness VERB ...` (verbs live in `harness.commands`)."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from benchmarks.errors import HarnessError
from harness import commands
from harness.storage import is_storage_error, storage_error


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m harness",
        description="Run and compare one-shot NAS optimizers on the NAS-Bench-1Shot1 search spaces.",
    )
    subparsers = parser.add_subparsers(dest="verb", metavar="VERB", required=True)
    for module in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        importlib.import_module(f"{commands.__name__}.{module.name}").add_parser(subparsers)
    return parser


RESUMABLE_VERBS = ("run", "sweep", "demo", "reproduce")
"""Verbs whose interrupted work the same command resumes."""
RESUME_HINT = "; finished epochs are kept: run the same command again to resume"


def main(argv: list[str] | None = None) -> int:
    """Parse `argv` and run the verb; a `HarnessError`, or a write that fails for want of space or
    permission (`harness.storage`), prints as one line and exits with 2."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except HarnessError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        resumable = args.verb in RESUMABLE_VERBS
        print("interrupted" + (RESUME_HINT if resumable else ""), file=sys.stderr)
        return 130
    except BrokenPipeError:
        sys.stderr.close()
        return 1
    except OSError as err:
        if not is_storage_error(err):
            raise
        print(f"error: {storage_error(err)}", file=sys.stderr)
        return 2
