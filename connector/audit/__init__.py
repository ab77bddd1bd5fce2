"""The ``audit`` command: proves from the topics alone that every source offset was applied in
a verified batch or dead-lettered, or says why it cannot. ``accounting`` is the pure proof,
``scope`` (pure) the range to prove on each partition and why not more, ``reading`` takes what
it needs from Kafka, ``render`` prints it; ``documents`` (pure) answers which batches wrote a
chunked document's chunk sets (``audit --document``)."""

__all__ = ["accounting", "documents", "reading", "render", "scope"]
