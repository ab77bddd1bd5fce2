"""The stream: the Faust app and what runs in it.

Modules (imported on use: ``app`` loads Faust): ``app`` (the agents), ``pipeline`` (windows
applied in order while the next is parsed; the commit discipline), ``window`` (a window of
records -> applied batches, by stages), ``patch_watermark`` (re-embeds wait for earlier
patches), ``broker_probe`` (is the broker answering), ``health`` (liveness and readiness) and
``lag`` (the consumer-lag gauge from the broker, from the first assignment on).
"""

__all__ = ["app", "broker_probe", "health", "lag", "patch_watermark", "pipeline", "window"]
