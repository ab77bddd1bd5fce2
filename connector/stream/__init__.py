"""The stream: the Faust app and what runs in it.

Modules (imported on use: ``app`` loads Faust): ``app`` (the agents), ``quiet_monitor`` (Faust's
monitor without its per-event statistics), ``pipeline`` (windows applied, independent ones at
the same time, and confirmed in order while the next is parsed; the commit discipline),
``window`` (a window of records -> applied batches, by stages), ``patch_watermark`` (re-embeds
wait for earlier patches), ``cdc_mapping_file`` (the CDC mapping read), ``broker_probe`` (is the
broker answering), ``health`` (liveness and readiness) and ``lag`` (the consumer-lag gauge from
the broker, from the first assignment on).
"""

__all__ = ["app", "broker_probe", "health", "lag", "patch_watermark", "pipeline", "window"]
