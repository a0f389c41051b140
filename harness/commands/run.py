"""`python -m harness run`: one (optimizer, space, seed) search."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from harness.config import (
    DEFAULT_BENCHMARK,
    PRESETS,
    RunConfig,
    SettingError,
    apply_settings,
    make_config,
    near_registered_variant,
    parse_assignments,
)

FLAGGED_SETTINGS = ("epochs", "data", "benchmark", "out", "device")
"""RunConfig fields that both a flag of `add_run_options` and `--set` can give."""


def add_run_options(parser: argparse.ArgumentParser, quiet: str) -> None:
    """Options shared by `run`, `sweep` and `bench` (everything but what picks the runs); `quiet`:
    what --quiet does for this verb."""
    parser.add_argument("--epochs", type=int, help="search epochs (paper: 100)")
    parser.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        default="paper",
        help="paper: SPEC defaults, 100 epochs; quick: a tiny model on 1,000 images, 3 epochs",
    )
    parser.add_argument(
        "--data", help="folder holding cifar-10-batches-py/, or that folder (default: data/, downloaded when missing)"
    )
    parser.add_argument(
        "--benchmark", help=f"NAS-Bench-101 .tfrecord or cache, or 'synthetic' (default: {DEFAULT_BENCHMARK})"
    )
    parser.add_argument("--out", help="results folder (default: results/)")
    parser.add_argument("--device", help="cpu, cuda, cuda:N or auto (default)")
    parser.add_argument(
        "--threads",
        type=int,
        help="PyTorch CPU threads per run (default: the cores free to this process, shared among concurrent runs; "
        "1 on a busy machine)",
    )
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
    parser.add_argument("--quiet", action="store_true", help=quiet)


def parse_variant(text: str) -> tuple[str, dict[str, str]]:
    """`NAME` or `NAME:KEY=VALUE,KEY=VALUE` -> (name, its own settings)."""
    name, _, settings = text.partition(":")
    return name.strip(), parse_assignments([item for item in settings.split(",") if item.strip()])


def optimizer_of_variant(variant: str, optimizer: str | None) -> str:
    """The optimizer of a run: `optimizer` when given (a registered variant must configure it:
    `make_config` checks), else the registered variant's own."""
    import optimizers

    if optimizer is not None:
        return optimizer
    registered = optimizers.registered_variant(variant) if variant else None
    if registered is None:
        near = near_registered_variant(variant) if variant else None
        hint = f"did you mean {near!r}? Else " if near else ""
        raise SettingError(
            f"variant {variant!r} is not registered: {hint}name its optimizer with --optimizer"
            if variant
            else "name an optimizer with --optimizer (or a registered --variant)"
        )
    return registered.optimizer


def config_from_args(
    args: argparse.Namespace,
    optimizer: str,
    space: int,
    seed: int,
    option_classes: Sequence[type] = (),
    variant: str = "",
    variant_settings: dict[str, str] | None = None,
) -> RunConfig:
    """A RunConfig from the parsed options (plug-ins loaded first). A registered `variant` brings
    its settings, then `variant_settings`, then `--set` override them. `--set` keys must belong
    to RunConfig, the optimizer's Config, or one of `option_classes` (a sweep's other optimizers)."""
    import optimizers

    for plugin in args.plugin:
        optimizers.load_plugin(plugin)
    settings = parse_assignments(args.settings)
    twice = [key for key in FLAGGED_SETTINGS if key in settings and getattr(args, key) is not None]
    if twice:
        raise SettingError(
            f"{', '.join(f'--{key} and --set {key}=' for key in twice)} both given: keep one of each pair"
        )
    near = near_registered_variant(variant, optimizer) if variant else None
    if near and not set(optimizers.registered_variant(near).settings) & {*(variant_settings or {}), *settings}:
        raise SettingError(
            f"variant {variant!r} is not registered and sets none of what {near!r} sets, so it would run plain "
            f"{optimizer} under that name: did you mean {near!r}? (To name a variant of your own, give its settings: "
            f"--variant {variant}:KEY=VALUE)"
        )
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
        threads=args.threads,
        plugins=list(args.plugin) or None,
        variant=variant or None,
    )
    classes = [optimizers.get(optimizer).Config, *option_classes]
    return apply_settings(config, {**(variant_settings or {}), **settings}, classes)


def _run(args: argparse.Namespace) -> int:
    from harness.run_log import finished_line, set_threads
    from harness.runner import run_search

    variant, variant_settings = parse_variant(args.variant) if args.variant else ("", {})
    optimizer = optimizer_of_variant(variant, args.optimizer)
    config = config_from_args(args, optimizer, args.space, args.seed, (), variant, variant_settings)
    set_threads(config.threads)  # run_search sets them too (and says how many); this covers what comes first
    if args.quiet:  # every line still goes to the run's run.log; the console gets where the results are
        print(finished_line(run_search(config, progress=False, log=lambda _: None)))
    else:
        run_search(config)
    return 0


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "run",
        help="run (or resume) one search: optimizer x space x seed",
        description="Run one search and write <out>/<optimizer>[-<variant>]-s<space>-seed<seed>/.",
    )
    parser.add_argument(
        "--optimizer", help="registered name (see `python -m harness list`); implied by a registered --variant"
    )
    parser.add_argument(
        "--variant",
        metavar="NAME[:KEY=VALUE,...]",
        help="name this configuration a variant of the optimizer (run directory, table column, legend): a "
        "registered variant (see `list`) brings its settings; another name takes the settings given with it "
        "or by --set",
    )
    parser.add_argument("--space", type=int, required=True, choices=(1, 2, 3))
    parser.add_argument("--seed", type=int, default=0)
    add_run_options(parser, "print only where the results are (no progress bars or per-epoch lines; run.log has them)")
    parser.set_defaults(handler=_run)
