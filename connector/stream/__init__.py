"""The stream: the Faust app and what runs in it.

Modules (imported on use: ``app`` loads Faust): ``app`` (the agents), ``pipeline`` (windows
applied in order while the next is parsed; the commit discipline), ``window`` (a window of
records -> applied batches, by stages), ``patch_watermark`` (re-embeds wait for earlier
patches), ``broker_probe`` (is the broker answering) and ``health`` (liveness and readiness).
"""

__all__ = ["app", "broker_probe", "health", "patch_watermark", "pipeline", "window"]
