"""``python -m groundwords.data.fetch``: see :mod:`groundwords.data.fetch.cli`."""

import os
import sys

from groundwords.cli import run_cli
from groundwords.data.fetch.cli import main

if __name__ == "__main__":
    rc = run_cli(main)
    if rc == 130:
        # Ctrl-C / SIGTERM: the journal and the stores are closed (every `with` has exited); the
        # download threads still being cut off by the watchdog need not be waited for at exit
        # (a worker killed mid-write leaves what kill -9 leaves, which a rerun resumes from)
        sys.stderr.flush()
        os._exit(rc)
    sys.exit(rc)
