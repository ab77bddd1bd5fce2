"""Development tools: a real Kafka broker from Maven Central jars (``broker``), a real Qdrant
server (``qdrant_server``), the process helpers they share (``spawn``) and the demo (``demo``).
Production code never imports this package (tests/unit/test_layout.py). Imported on use: the
demo loads Faust."""

__all__ = ["broker", "demo", "qdrant_server", "spawn"]
