"""``condflow configs [NAME]``: list the installed configurations, or print one."""

from __future__ import annotations

import argparse

from condflow.configs import config_names, describe_config, resolve_config

__all__ = ["register", "run"]


def run(args: argparse.Namespace) -> int:
    if args.name:
        print(resolve_config(args.name).read_text(), end="")
        return 0
    names = config_names()
    width = max(map(len, names))
    for name in names:
        print(f"{name:<{width}}  {describe_config(name)}")
    print("\nuse a name in place of a file: condflow train NAME; condflow configs NAME prints it")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("configs", help="list the installed configurations (or print one)")
    p.add_argument("name", nargs="?", help="print this configuration's YAML")
    p.set_defaults(func=run)
