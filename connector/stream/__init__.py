"""The stream: the Faust app and what runs in it.

Modules (imported on use: ``app`` loads Faust): ``app`` (the agents), ``pipeline`` (windows
applied in order while the next is parsed; the commit discipline), ``window`` (a window of
records -> applied batches, by stages), ``embedder``,
``patch_watermark`` (re-embeds wait for earlier patches), ``publishing`` (what is published
fits), ``health`` (liveness and readiness), ``kafka_admin`` and ``kafka_options``.
"""

__all__ = ["app", "embedder", "health", "kafka_admin", "kafka_options", "patch_watermark", "pipeline", "publishing",
           "window"]
