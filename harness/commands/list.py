"""`python -m harness list`: the search spaces, optimizers and presets available."""

from __future__ import annotations

import argparse
import inspect


def _list(args: argparse.Namespace) -> int:
    import optimizers
    from benchmarks.nasbench1shot1.spaces import SEARCH_SPACES
    from harness.config import PRESET_DESCRIPTIONS
    from optimizers.variants import methods

    for plugin in args.plugin:
        optimizers.load_plugin(plugin)
    print("Search spaces (NAS-Bench-1Shot1):")
    for number, space in SEARCH_SPACES.items():
        print(
            f"  {number}: {space.num_choice_nodes} choice nodes, {space.num_alphas} architecture parameters, "
            f"{space.num_models:,} distinct NAS-Bench-101 models, best mean test error in NAS-Bench-101 "
            f"{space.reference_best_test_error:.4f}"
        )
    print("Optimizers:")
    width = max(len(name) for name in optimizers.available())
    for name in optimizers.available():
        summary = " ".join(own_docstring(optimizers.get(name)).split("\n\n")[0].split())
        print(f"  {name:<{width}}  {summary}")
    print("Variants (named settings of an optimizer; `select` picks among a method's):")
    for method, members in [*methods().items(), ("", optimizers.variants(method=""))]:
        if members:
            print(f"  {method or 'no method'}:")
        for variant in members:
            settings = " ".join(f"{key}={value}" for key, value in variant.settings.items())
            print(f"    {variant.name} ({variant.optimizer} {settings})")
    print("Presets (--preset):")
    for name, description in PRESET_DESCRIPTIONS.items():
        print(f"  {name:<6}  {description}")
    return 0


def own_docstring(cls: type) -> str:
    """`cls`'s own docstring (not one inherited from a base class), or a note that it has none."""
    doc = cls.__dict__.get("__doc__")
    if doc:
        return inspect.cleandoc(doc)
    return f"(no docstring; a subclass of {cls.__mro__[1].__name__})"


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "list",
        help="list search spaces (with sizes), optimizers and presets",
        description="Print the NAS-Bench-1Shot1 search spaces with their sizes, every registered optimizer with "
        "the first paragraph of its docstring, the registered variants grouped by method, and the presets.",
    )
    parser.add_argument(
        "--plugin",
        action="append",
        default=[],
        metavar="FILE.py",
        help="also list the optimizers a plug-in file registers",
    )
    parser.set_defaults(handler=_list)
