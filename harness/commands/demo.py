"""`python -m harness demo` (what `make demo` runs): a small comparative sweep and its figures.

DARTS, SDARTS-RS and SDARTS-ADV on search space 1, two seeds, the quick preset, then `collect`
and `plot`. It uses NAS-Bench-101 when the file is there or can be downloaded; otherwise it stops
with the commands to fetch it or to opt into the synthetic table.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from benchmarks.errors import HarnessError, MissingFileError

DEMO_OPTIMIZERS = ("darts", "sdarts-rs", "sdarts-adv")
DEMO_SPACE = 1
DEMO_SEEDS = (0, 1)
DEMO_EPOCHS = 4


def resolve_benchmark(benchmark: str) -> str:
    """'nasbench101' -> the default table path (downloaded if missing and reachable)."""
    from benchmarks.nasbench101.convert import default_cache_path
    from harness.config import DEFAULT_BENCHMARK

    if benchmark != "nasbench101":
        return benchmark
    path = Path(DEFAULT_BENCHMARK)
    if path.exists():
        return str(path)
    if default_cache_path(path).exists():
        return str(default_cache_path(path))
    from harness.commands.fetch import ONLY108, URL
    from harness.download import download

    try:
        download(URL + ONLY108, path)
    except HarnessError as err:
        raise HarnessError(
            f"NAS-Bench-101 ({path}, about 499 MB) is not here and could not be downloaded ({err}).\n"
            f"  Fetch it:  python -m harness fetch nasbench101 --dest {path.parent}   (then make demo again)\n"
            "  Or run on made-up accuracies (synthetic benchmark), offline, with DIR holding cifar-10-batches-py/:\n"
            "             make demo BENCHMARK=synthetic DATA=DIR\n"
            "         or  python -m harness demo --benchmark synthetic --data DIR"
        ) from err
    return str(path)


def _demo(args: argparse.Namespace) -> int:
    from harness.commands.collect import collect_to_files
    from harness.commands.plot import make_plots
    from harness.commands.sweep import print_outcomes
    from harness.config import make_config
    from harness.data import ensure_cifar10
    from harness.run_log import free_cores
    from harness.sweep import check_sweep, run_sweep, threads_per_run

    runs = len(DEMO_OPTIMIZERS) * len(DEMO_SEEDS)
    jobs = args.jobs if args.jobs is not None else max(1, min(runs, free_cores()))
    check_sweep(jobs, threads=args.threads)
    benchmark = resolve_benchmark(args.benchmark)
    try:
        ensure_cifar10(args.data)
    except HarnessError as err:
        raise MissingFileError(
            f"CIFAR-10 is not in {Path(args.data) / 'cifar-10-batches-py'} and could not be downloaded: {err}\n"
            "  Offline, put CIFAR-10's 'python version' in DIR/cifar-10-batches-py/ (in the development setup: "
            "python ../shared/tools/prepare_cifar10.py DIR), then: make demo BENCHMARK=synthetic DATA=DIR"
        ) from err
    out = Path(args.out)
    configs = [
        make_config(
            name,
            DEMO_SPACE,
            seed,
            "quick",
            epochs=args.epochs,
            data=args.data,
            benchmark=benchmark,
            out=str(out / "runs"),
            device=args.device,
        )
        for name in DEMO_OPTIMIZERS
        for seed in DEMO_SEEDS
    ]
    threads = threads_per_run(jobs, threads=args.threads)
    print(
        f"demo: {len(configs)} runs ({', '.join(DEMO_OPTIMIZERS)} on space {DEMO_SPACE}, seeds "
        f"{', '.join(map(str, DEMO_SEEDS))}, {args.epochs} epochs, benchmark {benchmark}), {jobs} at a time, "
        f"{threads} CPU thread(s) each; each run prints a line per epoch",
        flush=True,
    )
    outcomes = run_sweep(configs, jobs=jobs, threads=threads, progress=True)
    failed = print_outcomes(outcomes)
    parquet, csv, rows = collect_to_files(out / "runs")
    print(f"demo: {rows} epoch rows in {parquet} and {csv}")
    print("demo: drawing the figures", flush=True)
    for path in make_plots(out / "runs", out / "figures"):
        print(f"  {path}")
    print(f"demo: done. Runs (each with its run.log) in {out / 'runs'}/, figures in {out / 'figures'}/")
    return 1 if failed else 0


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="a small comparative sweep (DARTS, SDARTS-RS, SDARTS-ADV) + figures",
        description=f"What `make demo` runs: {', '.join(DEMO_OPTIMIZERS)} on search space {DEMO_SPACE}, seeds "
        f"{', '.join(map(str, DEMO_SEEDS))}, the quick preset, then collect and plot into OUT/runs and OUT/figures. "
        "A few minutes on a laptop CPU. Finished runs are skipped when it is run again.",
    )
    parser.add_argument(
        "--benchmark",
        default="nasbench101",
        help="nasbench101 (default; downloaded when missing), 'synthetic', or a table path",
    )
    parser.add_argument("--data", default="data", help="folder holding cifar-10-batches-py/ (default: data/)")
    parser.add_argument("--out", default="results/demo", help="output folder (default: results/demo)")
    parser.add_argument("--epochs", type=int, default=DEMO_EPOCHS, help="search epochs (default: %(default)s)")
    parser.add_argument("--jobs", type=int, help="runs at once (default: one per free CPU core, at most 6)")
    parser.add_argument(
        "--threads", type=int, help="PyTorch CPU threads per run (default: the free cores shared among the runs)"
    )
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default)")
    parser.set_defaults(handler=_demo)
