"""Texts to vectors, for the stream and the bulk tools alike: fastembed models loaded once and
run off the event loop (``embedder``), and the default models assembled from PyPI wheels where
no model hub can be reached (``offline_model``)."""

__all__ = ["embedder", "offline_model"]
