"""qdrant-change-connector: Kafka change events to windowed, verified Qdrant batches."""

__version__ = "0.1.0"
