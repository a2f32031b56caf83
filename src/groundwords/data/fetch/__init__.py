"""Fetch stage: download and validate the manifest's images, one shard at a time.

Two sub-commands (see ``python -m groundwords.data.fetch -h``):

``shard``
    :func:`fetch_shard` takes the unique image ids of one shard of the manifest (rows whose
    ``status`` is ``ok``; an id belongs to shard ``int(id, 16) % num_shards``), downloads
    each id once, checks that the bytes decode as an image and stores the *original* bytes
    (or, with ``max_side``, a copy resized to fit ``max_side`` x ``max_side``) content-addressed
    at ``{images_dir}/{sha256[:2]}/{sha256}.{ext}`` (``store: files``), or in one
    webdataset-style tar per shard (``store: tar``, :func:`write_tar_shard`).  It writes one
    row per id to ``data/fetch/shard-{i}-of-{K}.tsv`` (columns :data:`SHARD_COLUMNS`) and the
    shard's stats to ``shard-{i}-of-{K}.stats.json``.  Every setting is a key of the ``fetch``
    config section (:func:`fetch_settings`; defaults in the schema).

``merge``
    :func:`merge` joins the shard files back onto the manifest: one row per manifest row
    (malformed rows included) plus a JSON summary with the alive fraction.

Where the bytes come from
    ``http://`` and ``https://`` URLs are fetched with one shared ``requests.Session``
    (connection pool sized to the number of worker threads), per-request (connect, read)
    timeouts, streamed with a size cap, redirects followed up to a limit.  ``file://`` URLs
    and plain local paths (relative ones are relative to the working directory) are read
    from disk with the same size and decode checks; local images are also copied into the
    content-addressed store so that later stages see one layout.  Any other scheme is
    ``bad_scheme``.

Statuses (the ``status`` column)
    ==================== ===============================================================
    ``ok``               decoded fine; stored at ``path``
    ``http_<code>``      final HTTP error status (e.g. ``http_404``; ``http_500`` or
                         ``http_429`` once the retries are exhausted)
    ``timeout``          connect/read timed out on every attempt, or the whole download
                         (attempts, redirects, retry waits) took longer than ``total_timeout``:
                         a watchdog thread then shuts its connection down, so a server that
                         drips bytes (headers, body, TLS handshake) cannot hold a worker; host
                         names are resolved within that time too, and a redirect to a host
                         whose ``max_per_host`` slots are taken waits for one within it
    ``connection_error`` DNS failure, refused/reset connection, TLS error, ...
    ``too_large``        Content-Length or the streamed body exceeded ``max_bytes``
    ``not_image``        the body is not an image (HTML error page, empty body, ...)
    ``corrupt_image``    recognised as an image but fails to decode (truncated, broken),
                         or unrecognisable bytes served with an ``image/*`` type
    ``unsupported_format`` an image in a format that is not decoded: SVG (vector; not
                         rendered), HEIC/AVIF where Pillow lacks the plugin
    ``too_small``        width or height below ``min_side``
    ``decompression_bomb`` width x height above ``max_pixels``
    ``redirect_loop``    too many redirects (a loop, or a chain longer than the limit)
    ``bad_scheme``       not http(s), ``file://`` or a local path (``ftp://``, ``data:``, ...)
    ``bad_url``          a broken URL (:func:`groundwords.data.urls.classify_url`, which the
                         manifest uses too): empty, no host name, a port outside 0-65535,
                         a ``file://`` URL naming another host or no path, a control
                         character inside
    ``opted_out``        the reply's ``X-Robots-Tag`` says ``noai`` or ``noimageai`` (to every
                         agent or to groundwords); not downloaded (``honour_noai: false``
                         turns this off)
    ``file_not_found``   a local path that does not exist / is not a regular file
    ``error``            an unexpected exception; its message is in the ``error`` column.
                         One bad image never stops the run.
    ==================== ===============================================================

    Retries: 5xx, 408, 429, connection errors and timeouts are retried up to ``retries``
    times with exponential backoff (``backoff * 2**n``, a little jitter), honouring a
    ``Retry-After`` header on 429/503; every wait is capped at ``max_retry_wait``, and no
    retry starts that the ``total_timeout`` of the download leaves no time for.  ``attempts``
    counts the attempts of *all* runs: after ``max_attempts`` of them a transient failure is
    final (kept on resume).

Resume
    Every finished id is appended as one JSON line to ``{out_tsv}.partial`` (flushed per
    line), so a killed run loses at most the downloads in flight.  On start, records found
    in ``.partial`` (and in an existing ``out_tsv``) are reused when they are ``ok`` and
    their image file still exists, or when their status is permanent
    (:data:`PERMANENT_STATUSES`), or when ``max_attempts`` attempts have been made; other
    transient failures (timeouts, connection errors, 5xx, 429, ``error``, ...) are fetched
    again.  Ctrl-C (SIGINT) or SIGTERM stops a run within a second or so: queued ids are
    dropped, the watchdog cuts the connections in flight, the journal keeps every finished
    id, and the command exits with status 130.  ``.partial`` is removed once ``out_tsv`` has
    been written (atomically).  The CLI exits immediately when ``out_tsv`` already
    covers exactly the shard's ids (``--force`` fetches everything again).

Limits
    The decompression-bomb guard sets Pillow's process-global ``Image.MAX_IMAGE_PIXELS``
    (and turns ``DecompressionBombWarning`` into an error) for the duration of
    :func:`fetch_shard`, restoring both afterwards, so do not run two shards with different
    ``max_pixels`` in threads of one process.  Cookies are not kept between requests.
Layout (the reader / downloader / writer split of img2dataset)
    ``shard``           :func:`fetch_shard`: select a shard's ids, run the pool, journal, write
    ``downloader``      :class:`Fetcher`: one id over HTTP (retries) or from a local file
    ``network``         the shared session, per-download deadlines (watchdog), name resolution
    ``validate``        decode checks on the bytes (:func:`decode_image`), the resize
    ``store``           content-addressed files, the tar shard and its staging file
    ``shard_files``     the shard's journal / tar / stats paths; resuming from them
    ``outcomes``        the shard columns, permanent statuses, outcome exceptions
    ``merge_shards``    :func:`merge`
    ``cli``             the command line (``python -m groundwords.data.fetch``)
"""

from __future__ import annotations

from groundwords.data.fetch.cli import build_parser, main
from groundwords.data.fetch.downloader import (
    AI_OPT_OUT,
    DEFAULT_USER_AGENT,
    Fetcher,
    classify_url,
    opts_out_of_ai,
    parse_retry_after,
)
from groundwords.data.fetch.merge_shards import MERGED_COLUMNS, merge
from groundwords.data.fetch.network import make_session
from groundwords.data.fetch.outcomes import PERMANENT_STATUSES, SHARD_COLUMNS
from groundwords.data.fetch.shard import (
    fetch_settings,
    fetch_shard,
    read_manifest,
    select_shard,
)
from groundwords.data.fetch.shard_files import (
    load_previous,
    partial_path,
    shard_is_complete,
    staging_path,
    stats_path,
    tar_path,
)
from groundwords.data.fetch.store import Stager, image_path, write_tar_shard
from groundwords.data.fetch.validate import decode_image, shrink_image
from groundwords.data.manifest import COLUMNS as MANIFEST_COLUMNS

__all__ = [
    "AI_OPT_OUT",
    "DEFAULT_USER_AGENT",
    "MANIFEST_COLUMNS",
    "MERGED_COLUMNS",
    "PERMANENT_STATUSES",
    "SHARD_COLUMNS",
    "Fetcher",
    "Stager",
    "build_parser",
    "classify_url",
    "decode_image",
    "fetch_settings",
    "fetch_shard",
    "image_path",
    "load_previous",
    "main",
    "make_session",
    "merge",
    "opts_out_of_ai",
    "parse_retry_after",
    "partial_path",
    "read_manifest",
    "select_shard",
    "shard_is_complete",
    "shrink_image",
    "staging_path",
    "stats_path",
    "tar_path",
    "write_tar_shard",
]
