"""`python -m harness sweep`: the grid optimizers x spaces x seeds, in parallel."""

from __future__ import annotations

import argparse

from harness.commands.run import add_run_options, config_from_args


def _sweep(args: argparse.Namespace) -> int:
    import optimizers
    from harness.sweep import parse_int_list, run_sweep

    for plugin in args.plugin:
        optimizers.load_plugin(plugin)
    names = optimizers.available() if args.optimizers == "all" else [n.strip() for n in args.optimizers.split(",")]
    configs = [
        config_from_args(args, name, space, seed)
        for space in parse_int_list(args.spaces)
        for name in names
        for seed in parse_int_list(args.seeds)
    ]
    gpus = parse_int_list(args.gpus) if args.gpus else []
    print(
        f"sweep: {len(configs)} runs ({len(names)} optimizers x {args.spaces} spaces x seeds {args.seeds}) "
        f"-> {configs[0].out}"
    )
    outcomes = run_sweep(
        configs, args.jobs, gpus, args.runs_per_gpu, args.backend, args.scheduler, verbose=0 if args.quiet else 5
    )
    failed = [o for o in outcomes if o.state != "completed"]
    print(f"sweep: {len(outcomes) - len(failed)} of {len(outcomes)} runs completed")
    for outcome in failed:
        print(f"  FAILED {outcome.run}: {outcome.detail}")
    return 1 if failed else 0


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("sweep", help="run a grid of searches in parallel (skips finished runs)")
    parser.add_argument("--optimizers", required=True, help="comma-separated names, or 'all'")
    parser.add_argument("--spaces", default="1,2,3", help="e.g. 1,2,3 or 1-3")
    parser.add_argument("--seeds", default="0-5", help="e.g. 0-5 or 0,1")
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
