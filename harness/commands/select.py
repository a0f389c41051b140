"""`python -m harness select`: per space and seed, the best variant of a method (the R-DARTS
protocol: best search-valid accuracy of the reported architecture), as one table under the
method's name (`plots.selection`)."""

from __future__ import annotations

import argparse
from pathlib import Path

TABLE_SUFFIXES = (".csv", ".parquet")


def _select(args: argparse.Namespace) -> int:
    import optimizers
    import plots
    from benchmarks.errors import DataFileError, HarnessError, UnknownNameError
    from harness.commands.collect import collect_with_warnings
    from harness.results import read_table, write_table
    from optimizers.variants import methods
    from plots.selection import picks, select_variants

    out = Path(args.out)
    if out.suffix.lower() not in TABLE_SUFFIXES:
        raise HarnessError(f"--out {out}: the selected table is written as .csv or .parquet; name it so")
    for plugin in args.plugin:
        optimizers.load_plugin(plugin)
    names = [n.strip() for n in args.variants.split(",") if n.strip()] if args.variants else []
    if not names:
        names = [v.name for v in optimizers.variants(method=args.method)]
    if not names:
        raise UnknownNameError(
            f"no registered variants of method {args.method!r} (methods: {', '.join(methods()) or 'none'}); "
            "name the variants to choose from with --variants a,b,c"
        )
    source = Path(args.source)
    table = collect_with_warnings(source) if source.is_dir() else read_table(source)
    try:
        chosen = picks(table, names)
        selected = select_variants(table, args.method, names)
    except plots.PlotsError as err:
        raise DataFileError(f"{source}: {err}") from err
    out.parent.mkdir(parents=True, exist_ok=True)
    write_table(out, selected)
    for pick in chosen.itertuples(index=False):
        print(
            f"space {pick.space} seed {pick.seed}: {pick.variant} (search-valid accuracy {pick.score:.4f} "
            f"at epoch {pick.epoch}; {pick.candidates} of {len(names)} variants ran)"
        )
    print(f"{out}: {len(selected)} rows of {args.method}")
    return 0


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "select",
        help="pick, per space and seed, the variant of a method with the best search-valid accuracy",
        description="The R-DARTS selection protocol (Zela et al., 2020; SDARTS §5.5): among the runs of a "
        "method's variants (e.g. R-DARTS(L2) at four weight decays), keep per space and seed the variant whose "
        "reported architecture (the row flagged `selected`, else the last epoch) has the best supernet "
        "search-valid accuracy, and write all its rows with `method` set to the method's name.",
    )
    parser.add_argument("source", help="a results folder of runs, or a tidy table (.parquet or .csv)")
    parser.add_argument("--method", required=True, help='the method\'s name, e.g. "R-DARTS(L2)" (see `list`)')
    parser.add_argument(
        "--variants", help="comma-separated variant names to choose among (default: the method's registered ones)"
    )
    parser.add_argument("--out", required=True, help="the table to write (.csv or .parquet)")
    parser.add_argument(
        "--plugin", action="append", default=[], metavar="FILE.py", help="load a plug-in that registers variants"
    )
    parser.set_defaults(handler=_select)
