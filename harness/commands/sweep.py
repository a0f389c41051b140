"""`python -m harness sweep`: the grid optimizers x spaces x seeds, in parallel."""

from __future__ import annotations

import argparse

from harness.commands.run import add_run_options, config_from_args
from harness.sweep import RunOutcome


def print_outcomes(outcomes: list[RunOutcome]) -> list[RunOutcome]:
    """Print the sweep's summary (one line per failed run); returns the failed outcomes."""
    failed = [o for o in outcomes if not o.ok]
    skipped = sum(o.state == "skipped" for o in outcomes)
    done = len(outcomes) - len(failed)
    print(
        f"sweep: {done} of {len(outcomes)} runs complete"
        + (f" ({skipped} were complete already)" if skipped else "")
        + (f"; {len(failed)} failed:" if failed else "")
    )
    for outcome in failed:
        print(f"  FAILED {outcome.run}: {outcome.detail}")
    if failed:
        print("Run the same command again to retry the failed runs (finished ones are skipped, others resume).")
    return failed


def _sweep(args: argparse.Namespace) -> int:
    import optimizers
    from benchmarks.errors import UnknownNameError
    from benchmarks.nasbench1shot1.spaces import SEARCH_SPACES
    from harness.sweep import parse_int_list, run_sweep

    for plugin in args.plugin:
        optimizers.load_plugin(plugin)
    if args.optimizers == "all":
        names = optimizers.available()
    else:
        names = list(dict.fromkeys(n.strip() for n in args.optimizers.split(",") if n.strip()))
    spaces, seeds = parse_int_list(args.spaces), parse_int_list(args.seeds)
    unknown = [s for s in spaces if s not in SEARCH_SPACES]
    if unknown:
        known = ", ".join(map(str, SEARCH_SPACES))
        raise UnknownNameError(
            f"unknown search space(s) {unknown} in --spaces {args.spaces}; NAS-Bench-1Shot1 has {known}"
        )
    if not names:
        available = ", ".join(optimizers.available())
        raise UnknownNameError(f"--optimizers {args.optimizers!r} names no optimizer; available: all, {available}")
    sweep_classes = [optimizers.get(name).Config for name in names]
    configs = [
        config_from_args(args, name, space, seed, sweep_classes) for space in spaces for name in names for seed in seeds
    ]
    gpus = parse_int_list(args.gpus) if args.gpus else []
    print(
        f"sweep: {len(configs)} runs ({len(names)} optimizers x spaces {args.spaces} x seeds {args.seeds}) "
        f"-> {configs[0].out}, {args.jobs} at a time ({args.backend})"
    )
    outcomes = run_sweep(
        configs, args.jobs, gpus, args.runs_per_gpu, args.backend, args.scheduler, verbose=0 if args.quiet else 5
    )
    return 1 if print_outcomes(outcomes) else 0


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "sweep",
        help="run a grid of searches in parallel (skips finished runs)",
        description="Run every optimizer x space x seed. Finished runs are skipped and interrupted ones resume, so "
        "the same command restarts a killed sweep; a failing run is listed at the end without stopping the others.",
    )
    parser.add_argument("--optimizers", required=True, help="comma-separated names, or 'all'")
    parser.add_argument("--spaces", default="1,2,3", help="e.g. 1,2,3 or 1-3 (default: %(default)s)")
    parser.add_argument("--seeds", default="0-5", help="e.g. 0-5 or 0,1 (default: %(default)s)")
    parser.add_argument("--jobs", type=int, default=1, help="runs at once (default 1)")
    parser.add_argument("--gpus", help="GPU indices to use, e.g. 0,1 (default: none, or as --device says)")
    parser.add_argument("--runs-per-gpu", type=int, default=1, help="runs sharing one GPU (default 1)")
    parser.add_argument(
        "--backend",
        choices=("loky", "dask"),
        default="loky",
        help="loky: local processes; dask: a Dask cluster (--scheduler, else a LocalCluster)",
    )
    parser.add_argument("--scheduler", help="Dask scheduler address, e.g. tcp://host:8786")
    add_run_options(parser)
    parser.set_defaults(handler=_sweep)
