"""`python -m harness sweep`: the grid optimizers x spaces x seeds, in parallel."""

from __future__ import annotations

import argparse
import shlex

from harness.commands.run import add_run_options, config_from_args, optimizer_of_variant, parse_variant
from harness.config import SettingError
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
        print(f"  FAILED {outcome.run}: {outcome.detail}" + (f"\n    full log: {outcome.log}" if outcome.log else ""))
    if failed:
        print("Run the same command again to retry the failed runs (finished ones are skipped, others resume).")
    return failed


def grid_entries(names: list[str], variants: list[str] | None) -> list[tuple[str, str, dict[str, str]]]:
    """(optimizer, variant, variant settings) of every method of the grid. Without variants, the
    optimizers `names`; with variants, only the variants: a registered one with its optimizer, a
    user-named one (NAME:KEY=VALUE,...) once for each of `names`."""
    if not variants:
        return [(name, "", {}) for name in names]
    entries = []
    for text in variants:
        variant, settings = parse_variant(text)
        if names and not _is_registered(variant):
            if len(names) > 1:
                raise SettingError(
                    f"variant {variant!r} would name runs of {', '.join(names)} alike, and their curves would merge: "
                    "sweep one optimizer per user-named variant (or register the variants)"
                )
            entries.append((names[0], variant, settings))
        else:
            entries.append((optimizer_of_variant(variant, None), variant, settings))
    return entries


def _is_registered(variant: str) -> bool:
    import optimizers

    return optimizers.registered_variant(variant) is not None


def print_next_steps(results_dir: str, outcomes: list[RunOutcome]) -> None:
    """Where the sweep's results are, and the command that plots them."""
    if any(o.ok for o in outcomes):
        print(f"results in {results_dir}/ (one folder per run, each with its run.log); plot them:")
        print(f"  python -m harness plot {shlex.quote(str(results_dir))}      # figures in {results_dir}/figures/")


def _sweep(args: argparse.Namespace) -> int:
    import optimizers
    from benchmarks.errors import UnknownNameError
    from benchmarks.nasbench1shot1.spaces import SEARCH_SPACES
    from harness.sweep import check_sweep, parse_int_list, run_sweep, threads_per_run

    check_sweep(args.jobs, args.runs_per_gpu, args.backend, args.threads)

    for plugin in args.plugin:
        optimizers.load_plugin(plugin)
    if args.optimizers == "all":
        names = optimizers.available()
    else:
        names = list(dict.fromkeys(n.strip() for n in (args.optimizers or "").split(",") if n.strip()))
    spaces, seeds = parse_int_list(args.spaces), parse_int_list(args.seeds)
    unknown = [s for s in spaces if s not in SEARCH_SPACES]
    if unknown:
        known = ", ".join(map(str, SEARCH_SPACES))
        raise UnknownNameError(
            f"unknown search space(s) {unknown} in --spaces {args.spaces}; NAS-Bench-1Shot1 has {known}"
        )
    entries = grid_entries(names, args.variant)
    if not entries:
        available = ", ".join(optimizers.available())
        raise UnknownNameError(f"--optimizers {args.optimizers!r} names no optimizer; available: all, {available}")
    sweep_classes = [optimizers.get(name).Config for name in dict.fromkeys(e[0] for e in entries)]
    configs = [
        config_from_args(args, name, space, seed, sweep_classes, variant, settings)
        for space in spaces
        for name, variant, settings in entries
        for seed in seeds
    ]
    gpus = parse_int_list(args.gpus) if args.gpus else []
    jobs = max(args.jobs, len(gpus) * args.runs_per_gpu) if gpus else args.jobs
    threads = threads_per_run(jobs, gpus, args.threads)
    methods = _count(len(entries), "optimizer or variant", "optimizers or variants")
    print(
        f"sweep: {_count(len(configs), 'run')} ({methods} x spaces {args.spaces} x seeds {args.seeds}) "
        f"-> {configs[0].out}, {jobs} at a time ({args.backend}), {threads} CPU thread(s) each",
        flush=True,
    )
    outcomes = run_sweep(
        configs, jobs, gpus, args.runs_per_gpu, args.backend, args.scheduler, threads=threads, progress=not args.quiet
    )
    failed = print_outcomes(outcomes)
    print_next_steps(configs[0].out, outcomes)
    return 1 if failed else 0


def _count(number: int, one: str, many: str | None = None) -> str:
    """'1 run', '2 runs' (`many`: the plural where it is not `one` + 's')."""
    return f"{number} {one if number == 1 else many or one + 's'}"


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "sweep",
        help="run a grid of searches in parallel (skips finished runs)",
        description="Run every optimizer x space x seed. Finished runs are skipped and interrupted ones resume, so "
        "the same command restarts a killed sweep; a failing run is listed at the end without stopping the others.",
    )
    parser.add_argument(
        "--optimizers",
        help="comma-separated names, or 'all'; with --variant, the optimizers its user-named variants configure",
    )
    parser.add_argument(
        "--variant",
        action="append",
        metavar="NAME[:KEY=VALUE,...]",
        help="run this variant instead of the plain optimizers (repeatable): a registered variant (see `list`), "
        "or a name with its own settings, for each optimizer of --optimizers",
    )
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
    add_run_options(parser, "no progress bars or per-epoch lines: the sweep's own lines and summary only")
    parser.set_defaults(handler=_sweep)
