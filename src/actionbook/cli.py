"""`python -m actionbook <command>`: the book's command line.

Each command lives in its own module, which provides `add_arguments(parser)` and
`main(args) -> exit code`; the table below is the whole dispatch. Modules are imported
only when their command runs, so `--help` and argument errors answer at once.
"""

from __future__ import annotations

import argparse
import importlib

COMMANDS = {
    "run": ("actionbook.runner", "execute notebooks with papermill in ci or full mode"),
    "build": ("actionbook.build", "build the HTML book from executed notebooks"),
    "generate": ("actionbook.data.generate", "write the generated benchmark as video files"),
    "describe": ("actionbook.data.describe", "list a dataset's classes and split sizes"),
    "extract": ("actionbook.features.extract", "extract backbone features into the feature cache"),
    "cache": ("actionbook.features.cache", "list or remove feature-cache entries"),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m actionbook", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    # Argument definitions are light (argparse only), so every command's parser is built
    # up front; that lets `python -m actionbook run --mode bogus` fail before any import.
    modules = {}
    for name, (module, help_) in COMMANDS.items():
        p = sub.add_parser(name, help=help_, description=help_)
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as e:
            if e.name != module:
                raise
            continue  # a command whose module is not written yet
        mod.add_arguments(p)
        modules[name] = mod
    args = parser.parse_args(argv)
    if args.command not in modules:
        parser.error(f"command {args.command!r} is not available in this version")
    return int(modules[args.command].main(args) or 0)
