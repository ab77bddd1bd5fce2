"""Everything that talks to Kafka outside the Faust app: client options (``options``), topic
creation (``admin``), what the connector publishes and how it is sized (``publishing``), the
producer SDK upstream services use (``producer``) and the live view of the trail (``tail``)."""

__all__ = ["admin", "options", "producer", "publishing", "tail"]
