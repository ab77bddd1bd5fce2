"""Connection options for every Kafka client of the connector, from the one settings object.

The worker (Faust) and the tools (aiokafka producer, consumer and admin clients) connect the
same way: PLAINTEXT, SSL (with an optional client certificate for mTLS), or SASL over either.
"""

from __future__ import annotations

import ssl
from typing import Any

from connector.errors import ConfigurationError
from connector.settings import Settings


def ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """The TLS context of SSL and SASL_SSL; a file it cannot use is a ConfigurationError naming its setting."""
    if settings.kafka_security_protocol not in ("SSL", "SASL_SSL"):
        return None
    try:
        context = ssl.create_default_context(
            cafile=str(settings.kafka_ssl_cafile) if settings.kafka_ssl_cafile else None)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigurationError(f"QCC_KAFKA_SSL_CAFILE={settings.kafka_ssl_cafile}: cannot be used: {exc}") from exc
    if settings.kafka_ssl_certfile:
        try:
            keyfile = str(settings.kafka_ssl_keyfile) if settings.kafka_ssl_keyfile else None
            context.load_cert_chain(str(settings.kafka_ssl_certfile), keyfile)
        except (OSError, ssl.SSLError) as exc:  # not PEM, or a key that is not the certificate's
            raise ConfigurationError(
                f"QCC_KAFKA_SSL_CERTFILE={settings.kafka_ssl_certfile} with QCC_KAFKA_SSL_KEYFILE="
                f"{settings.kafka_ssl_keyfile or '(unset: the key in the certificate file)'}: not a certificate and "
                f"its key in PEM ({exc})") from exc
    return context


def client_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for aiokafka's clients."""
    options: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap_servers,
        "security_protocol": settings.kafka_security_protocol,
    }
    context = ssl_context(settings)
    if context is not None:
        options["ssl_context"] = context
    if settings.kafka_sasl_mechanism:
        options["sasl_mechanism"] = settings.kafka_sasl_mechanism
        options["sasl_plain_username"] = settings.kafka_sasl_username
        options["sasl_plain_password"] = (
            settings.kafka_sasl_password.get_secret_value() if settings.kafka_sasl_password else None
        )
    return options
