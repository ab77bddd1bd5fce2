"""Settings that are legal but do nothing as given: one line each, which the worker logs at start
and ``settings`` prints (settings that cannot work at all are errors, in connector/settings.py).

Pure: the settings and the environment in, the lines out.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping

from connector.settings import Settings

__all__ = ["TOOL_VARIABLES", "ineffective_settings", "setting_warnings", "unknown_variables"]

# QCC_* variables that are not settings: the cache folders and the development tools' own
# (tests/unit/test_setting_checks.py holds every QCC_* variable the project reads to this set
# or to Settings).
TOOL_VARIABLES = frozenset({
    "QCC_CACHE_DIR", "QCC_KAFKA_CACHE", "QCC_QDRANT_SERVER_START", "QCC_POSTGRES_BIN", "QCC_TEST_MODELS",
    "QCC_FUZZ_EXAMPLES", "QCC_ATHERIS_RUNS", "QCC_FAULT_RUNS", "QCC_FAULT_EVENTS", "QCC_FAULT_SEED",
    "QCC_FAULT_HOSTILE_EVENTS", "QCC_PEER_QDRANT_KAFKA", "QCC_IMAGE_PIP_OPTIONS", "QCC_IMAGE_LOCK",
    "QCC_QDRANT_SERVER_VERSIONS", "QCC_PYTHON_3_10", "QCC_PYTHON_3_12", "QCC_PYTHON_3_13", "QCC_BENCH_DOCUMENTS",
})

# Used only with a Qdrant server: in local mode (no QCC_QDRANT_URL) setting them does nothing.
SERVER_ONLY = ("qdrant_prefer_grpc", "qdrant_grpc_port", "qdrant_timeout_seconds", "qdrant_http_compression",
               "qdrant_write_ordering", "qdrant_read_consistency")
SASL_ONLY = ("kafka_sasl_mechanism", "kafka_sasl_username", "kafka_sasl_password")
TLS_ONLY = ("kafka_ssl_cafile", "kafka_ssl_certfile", "kafka_ssl_keyfile")


def setting_warnings(settings: Settings, environ: Mapping[str, str]) -> list[str]:
    """Every warning about these settings: unknown variables first, then ineffective settings."""
    return unknown_variables(environ) + ineffective_settings(settings)


def _variable(field: str) -> str:
    return f"QCC_{field.upper()}"


def unknown_variables(environ: Mapping[str, str]) -> list[str]:
    """A ``QCC_*`` variable that is no setting is ignored: say so, with the nearest name."""
    settings = {_variable(field) for field in Settings.model_fields}
    lines = []
    for name in sorted(environ):
        upper = name.upper()  # settings are read in any case
        if not upper.startswith("QCC_") or upper in settings or upper in TOOL_VARIABLES:
            continue
        nearest = difflib.get_close_matches(upper, sorted(settings), n=1, cutoff=0.8)
        hint = f"did you mean {nearest[0]}?" if nearest else "the README's Settings table lists every setting"
        lines.append(f"{name} is not a setting and is ignored: {hint}")
    return lines


def ineffective_settings(settings: Settings) -> list[str]:
    """Settings given that do nothing with the others as they are, one line each."""
    given = settings.model_fields_set
    lines = []
    if not settings.qdrant_url:
        local = "in local mode (QCC_QDRANT_URL is not set)"
        if settings.qdrant_api_key is not None:
            lines.append(f"QCC_QDRANT_API_KEY is not used {local}: set QCC_QDRANT_URL for a server")
        if settings.qdrant_ca_file is not None:
            lines.append(f"QCC_QDRANT_CA_FILE is not used {local}")
        lines += [f"{_variable(field)} is not used {local}" for field in SERVER_ONLY if field in given]
    else:
        if "qdrant_path" in given:
            lines.append("QCC_QDRANT_PATH is not used: QCC_QDRANT_URL names a server (local mode only without it)")
        if settings.qdrant_ca_file is not None and settings.qdrant_url.startswith("http://"):
            lines.append("QCC_QDRANT_CA_FILE is not used: QCC_QDRANT_URL is http://, without TLS")
        if "qdrant_grpc_port" in given and not settings.qdrant_prefer_grpc:
            lines.append("QCC_QDRANT_GRPC_PORT is not used: the connector talks REST unless "
                         "QCC_QDRANT_PREFER_GRPC=true")
    protocol = settings.kafka_security_protocol
    if not protocol.startswith("SASL_"):
        lines += [f"{_variable(field)} is not used with QCC_KAFKA_SECURITY_PROTOCOL={protocol} (only with "
                  "SASL_PLAINTEXT or SASL_SSL)" for field in SASL_ONLY if getattr(settings, field) is not None]
    if protocol not in ("SSL", "SASL_SSL"):
        lines += [f"{_variable(field)} is not used with QCC_KAFKA_SECURITY_PROTOCOL={protocol} (only with SSL "
                  "or SASL_SSL)" for field in TLS_ONLY if getattr(settings, field) is not None]
    if settings.cdc_mapping is not None and not settings.cdc_topics:
        lines.append("QCC_CDC_MAPPING maps no records: QCC_CDC_TOPICS names no topic of change events (its "
                     "chunked text columns still make their collections chunked)")
    if settings.retry_initial_seconds > settings.retry_max_seconds:
        lines.append(f"QCC_RETRY_INITIAL_SECONDS={settings.retry_initial_seconds:g} is above "
                     f"QCC_RETRY_MAX_SECONDS={settings.retry_max_seconds:g}: backoffs never grow (the first should "
                     "be the smaller)")
    return lines
