"""The connector's exceptions: one root, and an attribute that says whether to retry.

Callers read ``retriable`` instead of matching on types or messages; the one place that
translates qdrant-client and network errors into these is :func:`connector.sink.classify`.
"""

from __future__ import annotations


class ConnectorError(Exception):
    """Root of every error the connector raises on purpose."""

    retriable: bool = False


class TransientError(ConnectorError):
    """The destination may accept the same request later: timeouts, 5xx, refused connections."""

    retriable = True


class PermanentError(ConnectorError):
    """The destination rejected the request; sending it again will not help."""


class ConfigurationError(ConnectorError):
    """The settings are wrong or something they name is missing."""


class StorageError(ConnectorError):
    """Local mode could not write its storage (disk full, read-only, I/O error).

    Not retried and not blamed on an event: local mode has already changed its in-memory copy
    of the collection, which now differs from disk, so the only safe move is to stop without
    committing and let a restart reload the collection from disk and replay the window.
    """
