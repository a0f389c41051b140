"""`python -m harness run`: one (optimizer, space, seed) search."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from harness.config import DEFAULT_BENCHMARK, PRESETS, RunConfig, apply_settings, make_config, parse_assignments


def add_run_options(parser: argparse.ArgumentParser) -> None:
    """Options shared by `run` and `sweep` (everything but what picks the runs)."""
    parser.add_argument("--epochs", type=int, help="search epochs (paper: 100)")
    parser.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        default="paper",
        help="paper: SPEC defaults, 100 epochs; quick: a tiny model on 1,000 images, 3 epochs",
    )
    parser.add_argument("--data", help="folder holding cifar-10-batches-py/ (default: data/, downloaded when missing)")
    parser.add_argument(
        "--benchmark", help=f"NAS-Bench-101 .tfrecord or cache, or 'synthetic' (default: {DEFAULT_BENCHMARK})"
    )
    parser.add_argument("--out", help="results folder (default: results/)")
    parser.add_argument("--device", help="cpu, cuda, cuda:N or auto (default)")
    parser.add_argument(
        "--plugin",
        action="append",
        default=[],
        metavar="FILE.py",
        help="a file (or module) that registers an optimizer of your own; repeatable",
    )
    parser.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        dest="settings",
        help="override a run setting or an optimizer Config field, e.g. --set attack_steps=1",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def config_from_args(
    args: argparse.Namespace, optimizer: str, space: int, seed: int, option_classes: Sequence[type] = ()
) -> RunConfig:
    """A RunConfig from the parsed options (plug-ins loaded first). `--set` keys must belong to
    RunConfig, the optimizer's Config, or one of `option_classes` (a sweep's other optimizers)."""
    import optimizers

    for plugin in args.plugin:
        optimizers.load_plugin(plugin)
    config = make_config(
        optimizer,
        space,
        seed,
        args.preset,
        epochs=args.epochs,
        data=args.data,
        benchmark=args.benchmark,
        out=args.out,
        device=args.device,
        plugins=list(args.plugin) or None,
    )
    classes = [optimizers.get(optimizer).Config, *option_classes]
    return apply_settings(config, parse_assignments(args.settings), classes)


def _run(args: argparse.Namespace) -> int:
    from harness.runner import run_search

    run_search(config_from_args(args, args.optimizer, args.space, args.seed), progress=not args.quiet)
    return 0


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "run",
        help="run (or resume) one search: optimizer x space x seed",
        description="Run one search and write <out>/<optimizer>-s<space>-seed<seed>/.",
    )
    parser.add_argument("--optimizer", required=True, help="registered name (see `python -m harness list`)")
    parser.add_argument("--space", type=int, required=True, choices=(1, 2, 3))
    parser.add_argument("--seed", type=int, default=0)
    add_run_options(parser)
    parser.set_defaults(handler=_run)
