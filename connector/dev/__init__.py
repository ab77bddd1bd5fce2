"""Development tools: a real Kafka broker from Maven Central jars (``broker``), a real Qdrant
server (``qdrant_server``), the demo (``demo``), the offline embedding models
(``offline_model``) and the fault-injection points the fault tests switch on (``failpoints``).
Imported on use: the demo loads Faust."""

__all__ = ["broker", "demo", "failpoints", "offline_model", "qdrant_server"]
