"""`python -m harness bench`: median step time, validation pass, Hessian and peak memory."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from harness.config import RunConfig


def _bench(args: argparse.Namespace) -> int:
    from harness.bench import run_bench
    from harness.commands.run import config_from_args
    from harness.config import SettingError
    from harness.hessian import METHODS, NCHW_ONLY_METHODS

    methods = tuple(m.strip() for m in args.hessian_methods.split(",") if m.strip())
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise SettingError(f"unknown Hessian method(s) {', '.join(unknown)}; choose from {', '.join(METHODS)}")
    if args.steps < 1 or args.warmup < 0:
        raise SettingError(f"--steps must be at least 1 and --warmup at least 0 (got {args.steps}, {args.warmup})")
    if args.compile and methods:
        raise SettingError(
            "--compile cannot time the Hessian (its double backward cannot run through compiled cells): "
            "add --hessian-methods="
        )
    if args.quiet and not args.out:
        raise SettingError("bench --quiet would print nothing: add --out DIR for the figures' JSON file")
    config = config_from_args(args, args.optimizer, args.space, args.seed)
    if set(methods) & set(NCHW_ONLY_METHODS):  # the default layout, as a run with such a method
        config = dataclasses.replace(config, channels_last=False)
    from harness.run_log import set_threads

    threads = set_threads(config.threads)
    if not args.quiet:
        print(f"bench: {threads} CPU thread{'s' if threads != 1 else ''} (--threads N to change)", flush=True)
    figures = run_bench(
        config,
        steps=args.steps,
        warmup=args.warmup,
        hessian_methods=methods,
        profile=args.profile,
        compile=args.compile,
        synthetic_images=args.data is None,
        log=(lambda _: None) if args.quiet else print,
    )
    if args.out:
        print(f"bench: figures in {write_bench_json(Path(args.out), config, args, figures)}")
    return 0


def write_bench_json(out: Path, config: RunConfig, args: argparse.Namespace, figures: dict[str, object]) -> Path:
    """OUT/bench-OPTIMIZER-sSPACE.json: the figures (timings in ms: median, p10, p90, count), the
    resolved configuration, what was timed and on what."""
    from harness.components import resolve_device
    from harness.results import write_json
    from harness.run_log import environment

    path = out / f"bench-{config.optimizer}-s{config.space}.json"
    write_json(
        path,
        {
            "figures": {k: dataclasses.asdict(v) if dataclasses.is_dataclass(v) else v for k, v in figures.items()},
            "config": dataclasses.asdict(config),
            "bench": {"steps": args.steps, "warmup": args.warmup, "compile": args.compile, "data": args.data},
            "environment": environment(resolve_device(config.device)),
        },
    )
    return path


def add_parser(subparsers) -> None:
    from harness.commands.run import add_run_options

    parser = subparsers.add_parser(
        "bench", help="time steps, a validation pass and the Hessian (synthetic batches unless --data is given)"
    )
    parser.add_argument("--optimizer", required=True, help="registered name (see `python -m harness list`)")
    parser.add_argument("--space", type=int, required=True, choices=(1, 2, 3), help="NAS-Bench-1Shot1 search space")
    parser.add_argument("--seed", type=int, default=0, help="seed of the model and batches (default 0)")
    parser.add_argument("--steps", type=int, default=50, help="timed steps (default 50)")
    parser.add_argument("--warmup", type=int, default=10, help="untimed steps first (default 10)")
    parser.add_argument(
        "--hessian-methods",
        default="rows,lanczos",
        help="comma-separated Hessian methods to time, or '' for none (default rows,lanczos)",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="also list the kernels of a few eager steps, and count the ATen ops of one step, one validation "
        "forward and one Hessian-vector product, and the bytes they read and write (about the memory traffic)",
    )
    parser.add_argument(
        "--compile",
        action="store_true",
        help="torch.compile each cell first (an experiment: the Hessian's double backward cannot run through "
        "compiled cells, so leave --hessian-methods empty); the warm-up's time then includes the compilation",
    )
    add_run_options(parser, "print only where --out's JSON file is (needs --out)")
    next(
        action for action in parser._actions if action.dest == "out"
    ).help = "also write the figures to OUT/bench-OPTIMIZER-sSPACE.json (default: print them only)"
    parser.set_defaults(handler=_bench)
