"""One module per CLI verb. Each defines `add_parser(subparsers)`, which adds its sub-parser and
sets `handler=callable(args) -> int`; `harness.cli` finds the modules here by itself."""
