"""`python -m harness reproduce`: rerun the paper's NAS-Bench-1Shot1 grid at a scale and check
its claims."""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path

from harness.config import DEFAULT_BENCHMARK


def _reproduce(args: argparse.Namespace) -> int:
    from benchmarks.cache import atomic_write
    from harness.commands.collect import collect_to_files
    from harness.commands.plot import make_plots
    from harness.reproduce import SCALES, grid_configs, grid_rows, report_markdown
    from harness.results import read_table, write_table
    from harness.sweep import parse_int_list, run_sweep
    from plots.claims import check_claims, claims_markdown

    scale = SCALES[args.scale]
    out = Path(args.out or f"results/reproduce-{scale.name}")
    methods = [m.strip() for m in args.methods.split(",") if m.strip()] if args.methods else None
    configs = grid_configs(
        scale,
        str(out / "runs"),
        spaces=parse_int_list(args.spaces) if args.spaces else None,
        seeds=parse_int_list(args.seeds) if args.seeds else None,
        methods=methods,
        data=args.data,
        benchmark=args.benchmark,
        device=args.device,
    )
    print(f"reproduce ({scale.name}): {len(configs)} runs -> {out / 'runs'}")
    outcomes = run_sweep(configs, args.jobs, verbose=0 if args.quiet else 1, progress=not args.quiet)
    failed = [f"{o.run}: {o.detail}" for o in outcomes if not o.ok]
    collected, _, _ = collect_to_files(out / "runs")
    rows, left_out = grid_rows(read_table(collected), configs)
    if left_out:
        print(f"left out {len(left_out)} other run(s) in {out / 'runs'}, not in this grid: {', '.join(left_out)}")
    parquet = out / "grid_epochs.parquet"
    write_table(parquet, rows)
    figures = make_plots(parquet, out, figure="all", report=print)
    verdicts = check_claims(rows)
    command = shlex.join(["python", "-m", "harness", "reproduce", *_options(args)])
    report = report_markdown(scale, command, configs, failed, figures, claims_markdown(verdicts), left_out)
    atomic_write(out / "report.md", lambda tmp: tmp.write_text(report))
    for verdict in verdicts:
        print(f"  {verdict.claim}: {verdict.status} ({verdict.detail})")
    print(f"report: {out / 'report.md'}")
    return 1 if failed else 0


def _options(args: argparse.Namespace) -> list[str]:
    """The command-line options that reproduce this call."""
    names = ("scale", "spaces", "seeds", "methods", "out", "data", "benchmark", "device", "jobs")
    return [item for name in names if getattr(args, name) for item in (f"--{name}", str(getattr(args, name)))]


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "reproduce",
        help="rerun the SDARTS paper's NAS-Bench-1Shot1 experiments at a scale and check its claims",
        description="Run the grid of the paper's Figures 3-5 (ENAS, DARTS, GDAS, NASP, PC-DARTS, SDARTS-RS, "
        "SDARTS-ADV and explicit Hessian regularisation x spaces x seeds) as a resumable sweep into OUT/runs, then "
        "collect, plot (OUT/*.png, .pdf) and check the paper's claims, written with the figures to OUT/report.md. "
        "Run the same command again to resume. Test-error claims need the real NAS-Bench-101 table.",
    )
    parser.add_argument(
        "--scale",
        choices=("paper", "small", "tiny"),
        default="small",
        help="paper: the paper's setting (GPU); small: a reduced grid for 2 CPU cores (default); tiny: a smoke test",
    )
    parser.add_argument("--spaces", help="search spaces, e.g. 1,2,3 (default: the scale's)")
    parser.add_argument("--seeds", help="seeds, e.g. 0-5 (default: the scale's)")
    parser.add_argument("--methods", help="comma-separated optimizers (default: the scale's)")
    parser.add_argument("--out", help="output folder (default: results/reproduce-SCALE)")
    parser.add_argument("--data", help="folder holding cifar-10-batches-py/ (default: data/)")
    parser.add_argument(
        "--benchmark", help=f"NAS-Bench-101 .tfrecord or cache, or 'synthetic' (default: {DEFAULT_BENCHMARK})"
    )
    parser.add_argument("--device", help="cpu, cuda, cuda:N or auto (default)")
    parser.add_argument("--jobs", type=int, default=1, help="runs at once (default 1)")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    parser.set_defaults(handler=_reproduce)
