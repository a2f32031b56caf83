"""The command-line layer every stage shares: the user-facing error, logging, and the runner.

:class:`UserError` is raised for bad input or configuration; :func:`run_cli` turns it (and
Ctrl-C) into one clear line and a non-zero exit status instead of a traceback.
"""

from __future__ import annotations

import argparse
import logging
import shlex
import sys

log = logging.getLogger("groundwords")


class UserError(Exception):
    """A problem with the user's input or config: reported as one clear line, no traceback."""


def setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def run_cli(main, argv=None) -> int:
    """Run a stage's ``main``; a UserError becomes one clear line and exit code 2."""
    try:
        main(argv)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: partial progress is kept; rerun to resume", file=sys.stderr)
        return 130
    return 0


def parse_points(parser: argparse.ArgumentParser, argv=None) -> tuple[list[argparse.Namespace], list[str]]:
    """The runs of a command line with repeatable ``--point 'OPTIONS'`` (several runs in one process,
    ``wield.train_jobs: grid``): each point's OPTIONS added to the other options, parsed by
    ``parser`` (all of them first, so a bad point stops the command before any run); without
    ``--point``, the one run of the options. Returns (the parsed runs, the points' strings)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    points = argparse.ArgumentParser(add_help=False)
    points.add_argument("--point", action="append", default=[])
    pts, common = points.parse_known_args(argv)
    return [parser.parse_args(common + shlex.split(extra)) for extra in pts.point or [""]], pts.point
