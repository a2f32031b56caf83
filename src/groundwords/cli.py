"""The command-line layer every stage shares: the user-facing error, logging, and the runner.

:class:`UserError` is raised for bad input or configuration; :func:`run_cli` turns it (and
Ctrl-C) into one clear line and a non-zero exit status instead of a traceback.
"""

from __future__ import annotations

import logging
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
