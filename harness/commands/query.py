"""`python -m harness query (HASH | --matrix M --ops OPS) [--repeat all|random|N] [--json]`: a model's results.

Unlike the NAS-Bench-101 API's `query` (one repeat drawn at random), this prints every repeat
and their mean by default; `--repeat random` draws one as that API does.
"""

from __future__ import annotations

import argparse
import json

from benchmarks.nasbench101.convert import RECORD_COLUMNS
from harness.benchmark import load_benchmark
from harness.config import DEFAULT_BENCHMARK

OP_ALIASES = {
    "conv3x3": "conv3x3-bn-relu",
    "conv1x1": "conv1x1-bn-relu",
    "maxpool": "maxpool3x3",
    "in": "input",
    "out": "output",
}
"""Short op names `--ops` accepts besides NAS-Bench-101's own."""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "query",
        help="print a NAS-Bench-101 model's results (every repeat, or one at random)",
        description="Look a model up by its NAS-Bench-101 hash, or by its cell (--matrix and --ops), and print every "
        "repeat and the mean errors. Unlike the NAS-Bench-101 API's query (one repeat at random), all repeats are "
        "shown unless --repeat says otherwise.",
    )
    parser.add_argument("hash", nargs="?", help="the model's NAS-Bench-101 hash (32 hex digits)")
    parser.add_argument(
        "--matrix",
        help="the cell's adjacency matrix instead of a hash: JSON ([[0,1,0],[0,0,1],[0,0,0]]) or rows of 0/1 digits "
        "separated by commas (011,001,000); pruned as NAS-Bench-101 prunes it",
    )
    parser.add_argument(
        "--ops",
        help="with --matrix: the ops, comma-separated, input first and output last, e.g. "
        "input,conv3x3-bn-relu,output (short names conv3x3, conv1x1, maxpool accepted)",
    )
    parser.add_argument(
        "--repeat",
        default="all",
        help="all (default): every training repeat and their mean; random: one repeat drawn at random, as the "
        "NAS-Bench-101 API's query does; N: repeat N (0-based)",
    )
    parser.add_argument("--seed", type=int, help="with --repeat random: the seed of the draw (default: random)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    parser.add_argument(
        "--benchmark",
        default=DEFAULT_BENCHMARK,
        help="NAS-Bench-101 .tfrecord or cache, or 'synthetic' (default: %(default)s)",
    )
    parser.add_argument("--epochs", type=int, default=108, help="training budget (default: %(default)s)")
    parser.set_defaults(handler=run)


def parse_matrix(text: str) -> list[list[int]]:
    """'[[0,1],[0,0]]' or '01,00' -> [[0, 1], [0, 0]]."""
    from harness.config import SettingError

    text = text.strip()
    try:
        if text.startswith("["):
            matrix = json.loads(text)
        else:
            matrix = [[int(digit) for digit in row.strip()] for row in text.split(",")]
        return [[int(x) for x in row] for row in matrix]
    except (ValueError, TypeError) as err:
        raise SettingError(
            f"cannot read --matrix {text!r}: give JSON ([[0,1],[0,0]]) or rows of digits (01,00)"
        ) from err


def model_of(args: argparse.Namespace):
    """The ModelSpec or hash that `args` name (exactly one of a hash, or --matrix with --ops)."""
    from benchmarks.nasbench101.model_spec import OP_LABELS, ModelSpec
    from harness.config import SettingError

    if (args.hash is None) == (args.matrix is None):
        raise SettingError("give a model hash, or --matrix with --ops (not both)")
    if args.matrix is None:
        return args.hash
    if not args.ops:
        raise SettingError("--matrix needs --ops, e.g. --ops input,conv3x3,maxpool,output")
    ops = [OP_ALIASES.get(op.strip(), op.strip()) for op in args.ops.split(",")]
    unknown = [op for op in ops if op not in OP_LABELS]
    if unknown:
        raise SettingError(
            f"--ops: unknown op(s) {', '.join(unknown)}; allowed: {', '.join(OP_LABELS)} "
            f"(or the short names {', '.join(OP_ALIASES)})"
        )
    return ModelSpec(parse_matrix(args.matrix), ops)


def _repeat(text: str) -> str | int:
    from harness.config import SettingError

    if text in ("all", "random"):
        return text
    try:
        return int(text)
    except ValueError:
        raise SettingError(f"--repeat takes all, random or a repeat number, not {text!r}") from None


def run(args: argparse.Namespace) -> int:
    model = model_of(args)
    repeat = _repeat(args.repeat)
    table = load_benchmark(args.benchmark)
    spec = table.spec(model)
    module_hash = spec.hash()
    found = table.query(module_hash, args.epochs, repeat=repeat, rng=args.seed)
    rows = found if isinstance(found, list) else [found]
    errors = table.mean_errors(module_hash, args.epochs)
    if args.json:
        payload = {
            "benchmark": table.name,
            "synthetic": table.synthetic,
            "table": str(table.path),
            "hash": module_hash,
            "matrix": spec.matrix.tolist(),
            "ops": spec.ops,
            "epochs": args.epochs,
            "trainable_parameters": rows[0]["trainable_parameters"],
            "repeats": rows,
            "mean_errors": errors,
        }
        print(json.dumps(payload, indent=2))
        return 0
    print(f"{table.name} table {table.path}: model {module_hash}: {spec}")
    print(f"trainable parameters: {rows[0]['trainable_parameters']}")
    print("repeat " + " ".join(f"{name:>27}" for name in RECORD_COLUMNS))
    for row in rows:
        print(f"{row['repeat']:>6} " + " ".join(f"{row[name]:>27.6f}" for name in RECORD_COLUMNS))
    count = len(table.query(module_hash, args.epochs))
    print(
        f"mean over {count} repeats at {args.epochs} epochs: test error {errors['test_error']:.6f} "
        f"± {errors['test_error_std']:.6f}, validation error {errors['valid_error']:.6f} "
        f"± {errors['valid_error_std']:.6f}"
    )
    if table.synthetic:
        print("note: synthetic table: made-up numbers, not NAS-Bench-101 results")
    return 0
