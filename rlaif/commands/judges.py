"""`rlaif judges`: list the built-in judge specs, one line each."""

from __future__ import annotations

import argparse

HELP = "list the built-in judge specs (name, type, description)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """`rlaif judges` takes no arguments."""


def run(args: argparse.Namespace) -> int:
    """Print name, type and description of every built-in spec; a broken spec says why."""
    from rlaif.judges.base import JudgeError
    from rlaif.judges.spec import load_spec
    from rlaif.resources import builtin_names

    names = builtin_names("judges")
    width = max((len(n) for n in names), default=4) + 2
    for name in names:
        try:
            spec = load_spec(name)
        except JudgeError as exc:  # one broken file must not hide the others
            first = str(exc).splitlines()[0]
            print(f"{name:<{width}}{'INVALID':<12}{first}")
            continue
        description = spec.description or getattr(spec, "model", "") or ""
        print(f"{name:<{width}}{spec.type:<12}{description}")
    print("\nuse one with: rlaif score NAME --data FILE, or rlaif label NAME for preference pairs "
          "(pairwise judges only work there); or pass a path to your own spec YAML")
    return 0
