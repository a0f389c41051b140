"""Command-line entry point: `python -m harness VERB ...` (verbs live in `harness.commands`)."""

from __future__ import annotations

import argparse
import difflib
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


def _verb_parsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices


def _options(parser: argparse.ArgumentParser) -> list[str]:
    return [name for action in parser._actions for name in action.option_strings if name.startswith("--")]


def unrecognized(parser: argparse.ArgumentParser, verb: str, extras: list[str]) -> str:
    """The one-line error for arguments `verb` does not take: the nearest of its options, and the
    verbs that do take such an option (`run --seeds` -> `sweep`)."""
    verbs = _verb_parsers(parser)
    hints = []
    for name in dict.fromkeys(arg.split("=", 1)[0] for arg in extras if arg.startswith("--")):
        near = difflib.get_close_matches(name, _options(verbs[verb]), n=1, cutoff=0.75)
        elsewhere = [other for other, other_parser in verbs.items() if name in _options(other_parser)]
        hint = f"did you mean {near[0]}?" if near else ""
        if elsewhere:
            hint += f"{' (' if hint else ''}{name} is an option of {', '.join(elsewhere)}{')' if hint else ''}"
        hints += [hint] if hint else []
    return (
        f"{verb}: unrecognized arguments: {' '.join(extras)}{'; ' if hints else ''}{'; '.join(hints)}; "
        f"`python -m harness {verb} --help` lists its options"
    )


RESUMABLE_VERBS = ("run", "sweep", "demo", "reproduce")
"""Verbs whose interrupted work the same command resumes."""
RESUME_HINT = "; finished epochs are kept: run the same command again to resume"


def main(argv: list[str] | None = None) -> int:
    """Parse `argv` and run the verb; a `HarnessError`, or a write that fails for want of space or
    permission (`harness.storage`), prints as one line and exits with 2."""
    parser = build_parser()
    args, extras = parser.parse_known_args(argv)
    if extras:
        print(f"error: {unrecognized(parser, args.verb, extras)}", file=sys.stderr)
        return 2
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
