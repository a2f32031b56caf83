"""What fetching one id ends as: the shard record's columns, the statuses kept on resume, and the
exceptions that classify an outcome (see the package docstring for the statuses).
"""

from __future__ import annotations

SHARD_COLUMNS = [
    "id", "url", "status", "http_status", "attempts", "bytes", "sha256", "path",
    "width", "height", "format", "error", "elapsed_s",
]

#: Statuses kept on resume (fetching again would give the same answer).  ``ok`` is kept
#: only while its image file exists; every other status is fetched again.
PERMANENT_STATUSES = frozenset({
    "http_404", "http_403", "http_410", "not_image", "corrupt_image", "too_small",
    "too_large", "bad_scheme", "bad_url", "decompression_bomb", "file_not_found", "unsupported_format",
    "opted_out",
})


class _Fail(Exception):
    """A final, classified outcome for one id: ``status`` plus optional record fields."""

    def __init__(self, status: str, error: str = "", **fields):
        super().__init__(status)
        self.status, self.error, self.fields = status, error, fields


class _Retry(_Fail):
    """A transient outcome: retried while attempts are left, else final like :class:`_Fail`."""

    def __init__(self, status: str, error: str = "", retry_after: float | None = None, **fields):
        super().__init__(status, error, **fields)
        self.retry_after = retry_after


class _Cancelled(Exception):
    """The run is being stopped (Ctrl-C or an error in the main thread)."""


def _one_line(msg: str, limit: int = 300) -> str:
    msg = " ".join(str(msg).split())
    return msg if len(msg) <= limit else msg[: limit - 3] + "..."


def _exc_message(e: BaseException) -> str:
    return _one_line(f"{type(e).__name__}: {e}")
