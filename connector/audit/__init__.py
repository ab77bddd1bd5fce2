"""The ``audit`` command: proves from the topics alone that every source offset was applied in
a verified batch or dead-lettered. ``accounting`` is the pure proof, ``reading`` takes what it
needs from Kafka, ``render`` prints it."""

__all__ = ["accounting", "reading", "render"]
