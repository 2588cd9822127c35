"""The ``tpsep`` command line: ``tpsep COMMAND --help`` explains each command.

Each command lives beside the code it drives (``tpsep data`` in
:mod:`tpsep.data.commands`, ``tpsep train`` in :mod:`tpsep.train`, ...) and
registers itself through an ``add_<name>_command(subparsers)`` function; this
module only gathers them. Every command ends with one line of key figures,
and ``--json PATH`` writes them to a file.
"""

from __future__ import annotations

import argparse
import importlib
import sys

COMMANDS = [
    ("tpsep.course", "add_build_command"),
    ("tpsep.course", "add_grade_command"),
    ("tpsep.data.commands", "add_data_command"),
    ("tpsep.train", "add_train_command"),
    ("tpsep.separate", "add_separate_command"),
    ("tpsep.evaluation", "add_evaluate_command"),
]


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tpsep",
        description="Audio source separation lab course: build the notebooks, inspect the data, "
                    "train, separate and evaluate models.")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name, function_name in COMMANDS:
        getattr(importlib.import_module(module_name), function_name)(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = make_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
