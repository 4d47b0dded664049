"""`rlaif` command line: one verb per module in rlaif/commands/.

Each command module defines `HELP` (one line), `add_arguments(parser)` and
`run(args) -> int`; it imports heavy libraries (torch, transformers) inside `run`, so
`rlaif --help` stays fast. `main(argv)` returns the exit code and is testable in-process.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

VERBS = ("demo", "train", "evaluate", "score", "compare", "judges", "export", "label", "dpo",
         "compare-runs", "serve")


def build_parser() -> argparse.ArgumentParser:
    """The argparse tree for every verb."""
    parser = argparse.ArgumentParser(
        prog="rlaif",
        description="Reinforcement learning from AI feedback: judges, PPO, hold-out evaluation.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    for verb in VERBS:
        module = importlib.import_module(f"rlaif.commands.{verb.replace('-', '_')}")
        p = sub.add_parser(verb, help=module.HELP, description=module.HELP)
        module.add_arguments(p)
        p.set_defaults(_module=module)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the process exit code."""
    parser = build_parser()
    args, extra = parser.parse_known_args(list(argv) if argv is not None else None)
    if extra:  # KEY=VALUE overrides given after an option (`--out DIR ppo.steps=4`) still count
        if isinstance(getattr(args, "overrides", None), list) and all(
                "=" in e and not e.startswith("-") for e in extra):
            args.overrides = [*args.overrides, *extra]
        else:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    from rlaif.secrets import install_log_redaction

    install_log_redaction()  # before any SDK logs: keys never reach the terminal or a log file
    if not getattr(args, "_module", None):
        parser.print_help()
        return 2
    from rlaif.judges.base import JudgeError

    try:
        return int(args._module.run(args) or 0)
    except (JudgeError, OSError, ValueError) as exc:  # OSError: unwritable folder, full disk, ...
        if args.verbose:
            logging.getLogger("rlaif").exception("rlaif %s failed", args.verb)
        print(f"rlaif {args.verb}: error: {_what(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as exc:  # TrainingStopped says what was saved
        print(f"rlaif {args.verb}: interrupted" + (f": {exc}" if str(exc) else ""), file=sys.stderr)
        return 130


def _what(exc: BaseException) -> str:
    """The message of an error; an OSError says what failed on which file and the usual fix."""
    if isinstance(exc, OSError) and not isinstance(exc, FileNotFoundError) and exc.strerror:
        where = f" {exc.filename}" if exc.filename else ""
        fix = {13: "choose a folder you can write to", 28: "free disk space (or write elsewhere) and "
               "rerun; checkpoints and answers already written are kept"}.get(exc.errno or 0, "")
        return f"{exc.strerror}:{where}" + (f"; {fix}" if fix else "")
    return str(exc)


if __name__ == "__main__":
    sys.exit(main())
