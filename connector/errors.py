"""The connector's exceptions: one root, and an attribute that says whether to retry.

Callers read ``retriable`` instead of matching on types or messages; the one place that
translates qdrant-client and network errors into these is :func:`connector.qdrant.errors.classify`.
"""

from __future__ import annotations


class ConnectorError(Exception):
    """Root of every error the connector raises on purpose."""

    retriable: bool = False


class TransientError(ConnectorError):
    """The destination may accept the same request later: timeouts, 5xx, refused connections.

    ``retry_after`` is the wait the destination asked for (seconds), when it said one.
    """

    retriable = True

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class RateLimited(TransientError):
    """Qdrant's strict mode refused the request for now (429 / RESOURCE_EXHAUSTED): wait as told."""


class UpdateNotApplied(TransientError):
    """Qdrant answered a batch with ``wait_timeout`` or ``acknowledged``: queued, not applied yet.
    Sent again until it is (connector/qdrant/updates.py); never counted as applied."""


class AccessDenied(TransientError):
    """A missing, wrong or read-only API key (401/403). Never an event's fault: the worker
    retries with backoff and reports not-ready until the key is fixed; nothing is committed
    or dead-lettered meanwhile (docs/design.md, "What a server refuses")."""


class RequestTooLarge(ConnectorError):
    """The request as a whole is too large for the server, a proxy, a strict-mode limit or
    the rate limiter's capacity. Not an event's fault and not worth the same retry: the
    sender splits the request and sends the parts in order."""


class PermanentError(ConnectorError):
    """The destination rejected the request; sending it again will not help."""


class CollectionMissing(ConnectorError):
    """The collection was deleted after the catalog saw it: its events are for an unknown
    collection, found out late. Not a :class:`PermanentError`, so that no window is bisected
    for it: every event of it fails the same way."""


class ConfigurationError(ConnectorError):
    """The settings are wrong or something they name is missing."""


class InvalidOption(ConnectorError, ValueError):
    """A command's option or argument the command cannot use (exit 64): the message starts with
    the option as given and says what it takes. Found before anything is written."""

    def __init__(self, option: str, problem: str) -> None:
        super().__init__(f"{option}: {problem}")
        self.option = option


class InvalidInput(ConnectorError, ValueError):
    """An input file that is not valid (exit 65): a dump that does not match its manifest, an
    event file with a bad line. The message names the file and the first bad line."""


class CannotCreateOutput(ConnectorError):
    """A command cannot create its output file or folder where it was asked to (exit 73)."""


class StorageInUse(ConnectorError):
    """Another process holds the local-mode storage folder (exit 69): local mode lets one
    process at a time open it."""


class StorageError(ConnectorError):
    """Local mode could not write its storage (disk full, read-only, I/O error).

    Not retried and not blamed on an event: local mode has already changed its in-memory copy
    of the collection, which now differs from disk, so the only safe move is to stop without
    committing and let a restart reload the collection from disk and replay the window.
    """


class WindowAbandoned(ConnectorError):
    """The worker is stopping while a window waits (Qdrant retries, the patch watermark): the
    window gives up, nothing of it is committed, and the next owner replays it."""
