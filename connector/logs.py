"""Logging: one JSON object per line for machines, readable lines in a terminal; no secrets."""

from __future__ import annotations

import json
import logging
import logging.config
import re
import sys
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from connector.settings import Settings

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """``{"ts", "level", "logger", "message", ...extra}``; known secret values are masked."""

    def __init__(self, secrets: list[str] | None = None) -> None:
        super().__init__()
        self._secrets = [s for s in (secrets or []) if s]

    def format(self, record: logging.LogRecord) -> str:
        body: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        body.update({k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")})
        if record.exc_info:
            body["exception"] = self.formatException(record.exc_info)
        return mask(json.dumps(body, default=str), self._secrets)


class MaskingFormatter(logging.Formatter):
    """The readable format, with known secret values masked."""

    def __init__(self, secrets: list[str] | None = None) -> None:
        super().__init__("[%(asctime)s] %(levelname)s %(name)s: %(message)s")
        self._secrets = [s for s in (secrets or []) if s]

    def format(self, record: logging.LogRecord) -> str:
        return mask(super().format(record), self._secrets)


def mask(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, "**********")
    return text


def secrets_of(settings: Settings) -> list[str]:
    return [s.get_secret_value() for s in (settings.qdrant_api_key, settings.kafka_sasl_password) if s is not None]


class OutageTracker:
    """One service's outage in a few log lines: a warning when it begins, a summary at most
    every ``summary_every`` seconds while it lasts (how long, how many connection failures), one
    info line when it ends. Failures come from the service's probe and from the client
    libraries' own connection-failure lines (:class:`ConnectionNoiseFilter`), which it counts
    instead of writing them (one failed attempt may be reported by both)."""

    def __init__(self, service: str, logger: logging.Logger, *, summary_every: float = 30.0,
                 clock: Callable[[], float] = time.monotonic, wall: Callable[[], float] = time.time) -> None:
        self.service = service
        self._log = logger
        self._summary_every = summary_every
        self._clock = clock
        self._wall = wall
        self.since: float | None = None  # monotonic start of the outage, None when up
        self.since_wall: float | None = None
        self.failures = 0
        self.last_error = ""
        self._last_line = 0.0

    @property
    def down(self) -> bool:
        return self.since is not None

    def failed(self, error: str) -> None:
        """An attempt to reach the service failed (the outage begins if it is not on)."""
        now = self._clock()
        self.last_error = error
        if self.since is None:
            self.since, self.since_wall, self.failures, self._last_line = now, self._wall(), 1, now
            self._log.warning("%s unreachable: %s; waiting for it (summary every %.0f s)",
                              self.service, error, self._summary_every, extra={"outage": self.service})
            return
        self.failures += 1
        self.tick()

    def tick(self) -> None:
        """Write the summary line if one is due (the probe calls it while the service is down)."""
        now = self._clock()
        if self.since is not None and now - self._last_line >= self._summary_every:
            self._last_line = now
            self._log.warning("%s still unreachable after %.0f s, %d connection failures; last: %s",
                              self.service, now - self.since, self.failures, self.last_error,
                              extra={"outage": self.service, "down_seconds": round(now - self.since, 1),
                                     "failures": self.failures})

    def recovered(self) -> None:
        """The service answered: the outage, if one is on, ends."""
        if self.since is None:
            return
        down = self._clock() - self.since
        self._log.info("%s answers again after %.1f s unreachable, %d connection failures", self.service, down,
                       self.failures, extra={"outage": self.service, "down_seconds": round(down, 1),
                                             "failures": self.failures})
        self.since = self.since_wall = None
        self.failures = 0

    def reason(self) -> str | None:
        """Why the service is not usable (for /readyz), or None when it is."""
        if self.since_wall is None:
            return None
        since = datetime.fromtimestamp(self.since_wall, timezone.utc).isoformat(timespec="seconds")
        return f"{self.service} unreachable since {since} ({self.failures} connection failures): {self.last_error}"


# The Kafka client libraries: aiokafka (the connection, the consumer's coordinator and fetcher),
# Faust and mode (Faust's services) log every failed attempt of every connection during a broker
# outage, ~100 lines a second at error level. Not a heartbeat refused by a broker that answers
# ("local member_id was not recognized" after a restart): that is the group, not the connection.
KAFKA_LIBRARIES = ("aiokafka", "kafka", "faust", "mode")
CONNECTION_FAILURES = re.compile(
    "|".join([
        r"Unable connect to", r"Unable to connect to", r"Unable to update metadata", r"Unable to request metadata",
        r"Connect call failed", r"Connection (?:reset|refused|lost|closed)", r"KafkaConnectionError",
        r"NodeNotReadyError", r"RequestTimedOutError", r"NotCoordinator", r"CoordinatorNotAvailable",
        r"GroupCoordinatorNotAvailable", r"coordinator (?:dead|unknown|not available)", r"Marking the coordinator",
        r"Failed fetch messages", r"Error sending",
        r"Unable to bootstrap", r"Got error produce response", r"Unknown error fetching data for topic",
        r"Failed to fetch", r"OffsetCommit failed", r"KafkaTimeoutError",
    ]),
    re.IGNORECASE,
)


class ConnectionNoiseFilter(logging.Filter):
    """Turns the Kafka libraries' connection-failure lines into the broker tracker's state.

    A warning or error from :data:`KAFKA_LIBRARIES` that reads as a failed connection (or any
    of theirs while the broker is known unreachable, when they are all symptoms of it) is
    counted as a connection failure and not written; every other line goes through."""

    def __init__(self, tracker: OutageTracker) -> None:
        super().__init__()
        self.tracker = tracker

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING or not record.name.startswith(KAFKA_LIBRARIES):
            return True
        message = record.getMessage()
        if self.tracker.down or CONNECTION_FAILURES.search(message) or _exception_reads_as_failure(record):
            self.tracker.failed(message.splitlines()[0][:300])
            return False
        return True


def _exception_reads_as_failure(record: logging.LogRecord) -> bool:
    return bool(record.exc_info and record.exc_info[1] is not None
                and CONNECTION_FAILURES.search(f"{type(record.exc_info[1]).__name__}: {record.exc_info[1]}"))


BROKER_OUTAGE = OutageTracker("Kafka broker", logging.getLogger("connector.outage"))
"""The process's one broker tracker: fed by the logging filter and the broker probe."""


def broker_outage_filter() -> ConnectionNoiseFilter:
    """The dictConfig factory of the filter on the worker's handler."""
    return ConnectionNoiseFilter(BROKER_OUTAGE)


def logging_config(settings: Settings) -> dict[str, Any]:
    """A dictConfig for the worker: JSON unless QCC_LOG_FORMAT=text (or auto and a terminal)."""
    use_json = settings.log_format == "json" or (settings.log_format == "auto" and not sys.stderr.isatty())
    formatter = "connector.logs.JsonFormatter" if use_json else "connector.logs.MaskingFormatter"
    level = settings.log_level.upper()
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"main": {"()": formatter, "secrets": secrets_of(settings)}},
        "filters": {"broker_outage": {"()": "connector.logs.broker_outage_filter"}},
        "handlers": {
            "default": {
                "class": "logging.StreamHandler",
                "formatter": "main",
                "stream": "ext://sys.stderr",
                "level": level,
                "filters": ["broker_outage"],
            }
        },
        "root": {"level": level, "handlers": ["default"]},
        # httpx logs every request at info (the REST client's each call); kept for debug
        "loggers": {name: {"level": "DEBUG" if level == "DEBUG" else "WARNING"} for name in ("httpx", "httpcore")},
    }


# fastembed reports through loguru each model source it tries and misses before it loads from
# the next one or gives up; the connector reports the outcome (embedder.py), so these are detail
_LOGURU_DETAIL = ("fastembed.common.model_management",)


class _LoguruToLogging(logging.Handler):
    """A loguru sink: each loguru record goes on through the standard logger of its module, so
    that it gets the worker's format (loguru's own writes plain text to stderr)."""

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith(_LOGURU_DETAIL) and record.levelno > logging.DEBUG:
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        logger = logging.getLogger(record.name)
        if logger.isEnabledFor(record.levelno):
            logger.handle(record)


def route_loguru() -> None:
    """Send loguru's records (fastembed logs through loguru) to the standard logging tree."""
    from loguru import logger

    logger.remove()
    logger.add(_LoguruToLogging(), format="{message}", level=0)


def configure(settings: Settings) -> dict[str, Any]:
    """Configure the process's logging for the worker now; returns the dictConfig, which the
    Faust worker applies again when it starts."""
    config = logging_config(settings)
    logging.config.dictConfig(config)
    route_loguru()
    logging.captureWarnings(True)  # Python warnings of the libraries, else plain text on stderr
    _quiet_onnxruntime()
    sys.excepthook = _log_uncaught
    return config


def _quiet_onnxruntime() -> None:
    """onnxruntime (fastembed's engine) writes its C++ log to stderr in its own format, past
    Python's logging; only its errors, which end the model load with an exception anyway."""
    import onnxruntime

    onnxruntime.set_default_logger_severity(3)  # 3: ERROR


def _log_uncaught(kind: type[BaseException], value: BaseException, trace: Any) -> None:
    """An exception nothing caught: one log line (JSON in JSON mode), not a bare traceback."""
    if issubclass(kind, KeyboardInterrupt):
        sys.__excepthook__(kind, value, trace)
        return
    logging.getLogger("connector").critical("uncaught %s: %s", kind.__name__, value, exc_info=(kind, value, trace))
