"""Kafka over SASL_SSL (SCRAM-SHA-512) and mTLS on real broker listeners, certificates made here."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError, KafkaError
from qdrant_client import models as qm

from connector.dev.broker import KafkaBroker
from connector.dev.spawn import free_port
from connector.kafka.options import client_options
from connector.settings import Settings
from tests.integration.harness import Stack, Worker, all_covered, read_topic
from tests.qdrant_targets import QdrantTarget, only_targets
from tests.security.certs import make_certificates

pytestmark = pytest.mark.integration
PASSWORD = "scram-s3cret-value"


@pytest.fixture(scope="module")
def secure_broker(tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("tls")
    certs = make_certificates(folder / "certs")
    sasl_port, mtls_port = free_port(), free_port()
    pem = lambda p: p.read_text().replace("\n", "\\n")  # noqa: E731
    broker = KafkaBroker(
        data_dir=folder / "kafka",
        extra_listeners={"SASLSSL": ("SASL_SSL", sasl_port), "MTLS": ("SSL", mtls_port)},
        extra_props={
            "sasl.enabled.mechanisms": "SCRAM-SHA-512",
            "listener.name.saslssl.scram-sha-512.sasl.jaas.config":
                'org.apache.kafka.common.security.scram.ScramLoginModule required;',
            "listener.name.mtls.ssl.client.auth": "required",
            "ssl.keystore.type": "PEM",
            "ssl.keystore.certificate.chain": pem(certs["broker.pem"]),
            "ssl.keystore.key": pem(certs["broker.pk8"]),
            "ssl.truststore.type": "PEM",
            "ssl.truststore.certificates": pem(certs["ca.pem"]),
        },
        format_args=["--add-scram", f"SCRAM-SHA-512=[name=connector,password={PASSWORD}]"],
    ).start()
    yield broker, certs, sasl_port, mtls_port
    broker.cleanup()


def _settings(**kwargs: object) -> Settings:
    return Settings(**kwargs)


async def _can_produce(settings: Settings) -> bool:
    producer = AIOKafkaProducer(**client_options(settings), request_timeout_ms=5000)
    try:
        await asyncio.wait_for(producer.start(), timeout=15)
        await asyncio.wait_for(producer.send_and_wait("probe", b"x"), timeout=15)
        return True
    except (KafkaError, KafkaConnectionError, asyncio.TimeoutError, OSError):
        return False
    finally:
        await producer.stop()


async def test_sasl_ssl_and_mtls_listeners_accept_the_right_clients_only(secure_broker) -> None:
    _broker, certs, sasl_port, mtls_port = secure_broker
    sasl = _settings(kafka_bootstrap_servers=f"127.0.0.1:{sasl_port}", kafka_security_protocol="SASL_SSL",
                     kafka_sasl_mechanism="SCRAM-SHA-512", kafka_sasl_username="connector",
                     kafka_sasl_password=PASSWORD, kafka_ssl_cafile=certs["ca.pem"])
    assert await _can_produce(sasl)
    wrong_password = sasl.model_copy(
        update={"kafka_sasl_password": Settings(kafka_sasl_password="nope").kafka_sasl_password}
    )
    assert not await _can_produce(wrong_password)
    mtls = _settings(
        kafka_bootstrap_servers=f"127.0.0.1:{mtls_port}",
        kafka_security_protocol="SSL",
        kafka_ssl_cafile=certs["ca.pem"],
        kafka_ssl_certfile=certs["client.pem"],
        kafka_ssl_keyfile=certs["client.key"],
    )
    assert await _can_produce(mtls)
    no_client_cert = mtls.model_copy(update={"kafka_ssl_certfile": None, "kafka_ssl_keyfile": None})
    assert not await _can_produce(no_client_cert)
    plaintext_on_tls = _settings(kafka_bootstrap_servers=f"127.0.0.1:{sasl_port}")
    assert not await _can_produce(plaintext_on_tls)


# Kafka's listener is the subject; the Qdrant side does not depend on it, so one server transport
@only_targets("local", "rest")
async def test_worker_runs_over_sasl_ssl(secure_broker, model_env, tmp_path: Path, qdrant_target: QdrantTarget) -> None:
    broker, certs, sasl_port, _ = secure_broker
    stack = Stack(f"127.0.0.1:{sasl_port}", tmp_path, model_env, qdrant=qdrant_target, extra_env={
        "QCC_KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "QCC_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "QCC_KAFKA_SASL_USERNAME": "connector", "QCC_KAFKA_SASL_PASSWORD": PASSWORD,
        "QCC_KAFKA_SSL_CAFILE": str(certs["ca.pem"])})
    await stack.create_topics()
    client = qdrant_target.client()
    client.create_collection("docs", vectors_config=qm.VectorParams(size=2, distance=qm.Distance.DOT))
    client.close()
    settings = stack.settings()
    producer = AIOKafkaProducer(**client_options(settings))
    await producer.start()
    try:
        sent = []
        for i in range(20):
            event = {"schema_version": 1, "collection": "docs", "op": "upsert", "points": [{"id": i, "vector": [1, i]}]}
            meta = await producer.send_and_wait(
                settings.patch_topic, json.dumps(event).encode(), key=f"docs/{i}".encode()
            )
            sent.append((meta.partition, meta.offset))
    finally:
        await producer.stop()
    worker = Worker(stack)
    try:
        # read the confirmations over the plaintext listener of the same broker
        await read_topic(broker.bootstrap, settings.verification_topic, until=all_covered(sent), timeout=90)
    finally:
        assert worker.stop() == 0, worker.output()[-3000:]
    assert PASSWORD not in worker.output()
    client = qdrant_target.client()
    try:
        assert client.count("docs").count == 20
    finally:
        client.close()
