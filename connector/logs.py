"""Logging: one JSON object per line for machines, readable lines in a terminal; no secrets."""

from __future__ import annotations

import json
import logging
import logging.config
import sys
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


def logging_config(settings: Settings) -> dict[str, Any]:
    """A dictConfig for the worker: JSON unless QCC_LOG_FORMAT=text (or auto and a terminal)."""
    use_json = settings.log_format == "json" or (settings.log_format == "auto" and not sys.stderr.isatty())
    formatter = "connector.logs.JsonFormatter" if use_json else "connector.logs.MaskingFormatter"
    level = settings.log_level.upper()
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"main": {"()": formatter, "secrets": secrets_of(settings)}},
        "handlers": {
            "default": {
                "class": "logging.StreamHandler",
                "formatter": "main",
                "stream": "ext://sys.stderr",
                "level": level,
            }
        },
        "root": {"level": level, "handlers": ["default"]},
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
    return config
