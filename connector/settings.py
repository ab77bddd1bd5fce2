"""All settings in one pydantic-settings object; every field is an env var ``QCC_<NAME>``."""

from __future__ import annotations

import difflib
import ipaddress
import json
import re
import ssl
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_core import PydanticCustomError
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEFAULT_DENSE_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
DEFAULT_SPARSE_MODEL = "Qdrant/bm25"

# The names QCC_DENIED_OPERATIONS takes (connector/domain/policy.py's operation_name): each operation,
# and ``op:filter`` for the filter-addressed form of those a filter can address. tests/unit/test_policy.py
# holds them equal to the event models.
_FILTERABLE = ("delete", "set_payload", "overwrite_payload", "delete_payload", "clear_payload", "delete_vectors",
               "reembed")
OPERATION_NAMES: tuple[str, ...] = ("upsert", "update_vectors", *_FILTERABLE, *(f"{op}:filter" for op in _FILTERABLE))


class ShardKeyRule(BaseModel):
    """How the shard key of a custom-sharded collection's events is found when they carry none."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    from_key: str | None = Field(
        None, description="A regular expression over the record key: its first group is the shard key (a string)")
    from_payload: str | None = Field(
        None, description="A top-level payload key: its value in the event's payload (in every point of an upsert)")
    fallback: int | str | None = Field(
        None, description="Write to the derived key when it exists, else to this one (Qdrant's target-with-fallback)")

    @model_validator(mode="after")
    def _one_source(self) -> ShardKeyRule:
        if (self.from_key is None) == (self.from_payload is None):
            raise ValueError("a shard key rule takes exactly one of from_key or from_payload")
        if self.from_key is not None:
            try:
                groups = re.compile(self.from_key).groups
            except re.error as exc:
                raise ValueError(f"from_key is not a regular expression: {exc}") from exc
            if groups < 1:
                raise ValueError("from_key needs a group, e.g. '^[^/]+/([^/]+)/': the group is the shard key")
        return self


CHUNK_KEY = "_chunk"  # the reserved payload key of a chunk point's metadata (connector/domain/documents.py)


class ChunkedField(BaseModel):
    """A chunked collection's text field: each document's text is split by the model's tokenizer
    into chunks, each a point of its own (docs/design.md, "Chunked documents")."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    text_field: str = Field(
        pattern=r"^[A-Za-z_][A-Za-z0-9_\-]*$",
        description="The top-level payload key of the document's text (an upsert's inline text takes its place); "
                    "chunks do not keep it: each holds its own part under _chunk.text")
    vector: str = Field("", description="The dense vector the chunks' texts are embedded into; empty: the unnamed one")
    model: str | None = Field(None, description="The embedding model (its tokenizer splits the text); unset: "
                                                "QCC_DENSE_MODEL")
    # 128: all-MiniLM-L6-v2 was trained on 128-token sequences (256 is only where it truncates); on the
    # 596-document corpus 128/16 found the source of a sentence first in 74.5% of queries against 57.5% at
    # 256/32, and an edit cost fewer embeddings (BENCHMARKS.md, "Chunked documents")
    max_tokens: int = Field(128, ge=8, le=8192, description="Most tokens of a chunk, the model's [CLS]/[SEP] "
                                                            "included (at most the model's window)")
    overlap_tokens: int = Field(16, ge=0, description="Tokens a chunk repeats of the one before it")
    # a sparse vector beside the dense one: with both, a fused search found the source of a sentence
    # first in 92% of queries on the 596-document corpus, dense alone in 74.5% (BENCHMARKS.md)
    sparse_vector: str = Field("", pattern=r"^[A-Za-z0-9_\-\.]{0,255}$",
                               description="A sparse vector each chunk's text is embedded into as well (such as "
                                           "'bm25', made with the IDF modifier); empty: none")
    sparse_model: str | None = Field(None, description="The sparse vector's model; unset: QCC_SPARSE_MODEL")

    @model_validator(mode="after")
    def _overlap_below_size(self) -> ChunkedField:
        if self.overlap_tokens >= self.max_tokens // 2:
            raise ValueError("overlap_tokens must be less than half of max_tokens")
        if self.text_field == CHUNK_KEY:
            raise ValueError(f"{CHUNK_KEY!r} is the chunks' own payload key")
        if self.sparse_vector and self.sparse_vector == self.vector:
            raise ValueError(f"sparse_vector {self.sparse_vector!r} is the dense vector's name: give it another")
        if self.sparse_model and not self.sparse_vector:
            raise ValueError("sparse_model without sparse_vector: name the sparse vector it embeds into")
        return self

    @property
    def vector_names(self) -> tuple[str, ...]:
        """The vectors every chunk holds: the dense one, then the sparse one if any."""
        return (self.vector, self.sparse_vector) if self.sparse_vector else (self.vector,)


class Settings(BaseSettings):
    """Connector settings. Secrets are ``SecretStr`` so that dumps and logs never show them."""

    model_config = SettingsConfigDict(env_prefix="QCC_", env_file=None, extra="ignore")

    # Kafka
    kafka_bootstrap_servers: str = Field("127.0.0.1:9092", description="Kafka bootstrap servers, comma separated")
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", description="Kafka security protocol"
    )
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = Field(
        None, description="SASL mechanism, with the two settings below"
    )
    kafka_sasl_username: str | None = Field(None, description="SASL user name")
    kafka_sasl_password: SecretStr | None = Field(None, description="SASL password (secret: never logged)")
    kafka_ssl_cafile: Path | None = Field(None, description="CA bundle for the brokers' certificates")
    kafka_ssl_certfile: Path | None = Field(None, description="Client certificate (mTLS)")
    kafka_ssl_keyfile: Path | None = Field(None, description="Client key (mTLS)")
    consumer_group: str = Field("qdrant-change-connector", description="Kafka consumer group (the Faust app id)")
    patch_topic: str = Field("qdrant.patches", description="Topic of payload-patch events")
    reembed_topic: str = Field("qdrant.reembeds", description="Topic of re-embed events")
    cdc_topics: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Topics of Debezium change events (comma separated), mapped by "
        "QCC_CDC_MAPPING to points (docs/cdc.md); unset: none is read")
    cdc_mapping: Path | None = Field(None, description="The CDC mapping file (YAML): table -> collection, key, "
                                     "payload columns, text columns -> vectors")
    cdc_max_text_chars: int = Field(
        100_000, ge=1, le=100_000, description="A CDC text longer than this is embedded from its first this many "
        "characters (a dense model whose window is shorter makes the same vector), the payload keeps it whole, and "
        "the verification event lists it (texts_cut); the row is written either way. A chunked column's text is "
        "not cut: its chunks cover it whole")
    verification_topic: str = Field("qdrant.verifications", description="Where verification events go")
    dead_letter_topic: str = Field("qdrant.dead-letters", description="Where rejected events go")
    session_timeout_seconds: float = Field(
        10.0, ge=6, description="Consumer session timeout: how soon a dead worker's partitions move on"
    )
    group_instance_id: str | None = Field(
        None, description="Static group membership (Kafka's group.instance.id), unique per worker, e.g. the pod name: "
        "a worker restarted within the session timeout gets its partitions back at once, without a rebalance",
    )
    commit_interval_seconds: float = Field(
        1.0, gt=0, description="How often acknowledged offsets are committed, besides after each window")
    consumer_max_fetch_bytes: int = Field(
        32 * 1024 * 1024, ge=65_536, description="Most bytes one fetch brings per partition (Kafka's "
        "max.partition.fetch.bytes); a fetch request brings at most 50 MiB in all",
    )

    # Windows
    window_max_events: int = Field(500, ge=1, le=100_000, description="A window closes at this many events ...")
    window_max_wait_seconds: float = Field(0.5, gt=0, description="... or after this long, whichever comes first")
    windows_in_flight: int = Field(
        2, ge=1, le=8, description="Windows applied at the same time when they write no common point and "
        "address none by a filter (published and committed in order); 1: one after another",
    )

    event_loop: Literal["uvloop", "asyncio"] = Field(
        "uvloop", description="The worker's event loop: uvloop (libuv; less CPU per event) or Python's own asyncio",
    )

    # Qdrant
    qdrant_url: str | None = Field(
        None, validation_alias=AliasChoices("QCC_QDRANT_URL", "QDRANT_URL", "qdrant_url"),
        description="Qdrant server URL (QDRANT_URL works too); unset means embedded local mode",
    )
    qdrant_api_key: SecretStr | None = Field(
        None, validation_alias=AliasChoices("QCC_QDRANT_API_KEY", "QDRANT_API_KEY", "qdrant_api_key"),
        description="Qdrant API key or JWT (QDRANT_API_KEY works too; secret: never logged)",
    )
    qdrant_ca_file: Path | None = Field(
        None, description="CA bundle for the Qdrant server's HTTPS certificate (REST and gRPC)"
    )
    qdrant_path: Path = Field(Path("./qdrant-data"), description="Local-mode storage folder (when no URL)")
    qdrant_prefer_grpc: bool = Field(False, description="Talk gRPC instead of REST")
    qdrant_grpc_port: int = Field(
        6334, ge=1, le=65535, description="The server's gRPC port (with QCC_QDRANT_PREFER_GRPC)"
    )
    qdrant_timeout_seconds: float = Field(30.0, gt=0, description="Timeout of one Qdrant request")
    qdrant_http_compression: bool = Field(
        False,
        description="Ask the server to gzip REST answers: less traffic on a slow link, but on a LAN it "
        "costs both sides CPU (a read-back of 500 384-d points: 24 -> 44 ms)",
    )
    qdrant_max_request_bytes: int = Field(
        16 * 1024 * 1024, ge=65_536,
        description="Largest batch request body (estimated); larger ones are split. Below the server's "
        "max_request_size_mb (32 MiB by default) and any proxy's body limit",
    )
    qdrant_write_ordering: Literal["weak", "medium", "strong"] = Field(
        "weak", description="Qdrant's write ordering on replicated collections (docs/design.md, \"Distributed mode\"): "
        "weak is enough, as each window is acknowledged before the next is sent; strong goes through the shard's "
        "permanent leader and waits while it is down")
    qdrant_read_consistency: Literal["all", "majority", "quorum"] | Annotated[int, Field(ge=1)] = Field(
        1, description="Replicas that answer each read of a replicated collection (existence, texts, read-back). "
        "1 is exact: Qdrant acknowledges a write once every active replica applied it; majority and all cost "
        "more and fail while replicas are down")
    collections: Annotated[list[str] | None, NoDecode] = Field(
        None, description="Collections events may change (comma list or JSON list); unset: any existing one"
    )
    topic_collections: dict[str, list[str]] = Field(
        default_factory=dict, description="Policy: source topic -> collections it may change (JSON object)"
    )
    denied_operations: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Policy: operations refused, e.g. clear_payload,delete:filter"
    )
    filter_blast_radius: int | None = Field(
        10_000, ge=0, description="Policy: most points a filter-addressed operation may match; none: no limit "
        "(the share of the collection, QCC_FILTER_MAX_SHARE, still holds)"
    )
    filter_max_share: float = Field(
        0.5, gt=0, le=1, description="Policy: largest share of a collection's points (of its shard keys' points, "
        "when custom-sharded) a filter-addressed operation that removes data (delete, clear_payload, "
        "overwrite_payload, delete_payload, delete_vectors, set_payload with a null) may match; one that matches "
        "every point is refused at any share (1: only those)")
    allow_blast_radius_override: bool = Field(
        False, description="Policy: whether an event's blast_radius_override may lift those limits"
    )
    shard_keys: dict[str, ShardKeyRule] = Field(
        default_factory=dict,
        description="Custom-sharded collections: collection -> how to find an event's shard key when it names none "
        '(JSON object, e.g. {"docs": {"from_key": "^docs/([^/]+)/"}}; docs/design.md, "Shard keys")',
    )
    create_shard_keys: bool = Field(
        False, description="Create a shard key an event names that the collection lacks; off: such events are "
        "dead-lettered unknown_shard_key")
    chunked_collections: dict[str, ChunkedField] = Field(
        default_factory=dict,
        description="Collections of chunked documents: collection -> its text field (JSON object, e.g. "
        '{"articles": {"text_field": "body"}}; also max_tokens, overlap_tokens, vector, model): each document\'s '
        "text becomes chunk points, only changed chunks are embedded (docs/design.md, \"Chunked documents\")")
    verify_after_apply: bool = Field(True, description="Read touched points back and compare")
    verify_filter_max_points: int = Field(
        1000, ge=1,
        description="Most points of one filter-addressed event read back and compared; beyond it Qdrant "
        "counts the matching points not as written (delete, set/overwrite of scalars) and the rest is sampled",
    )
    reembed_waits_for_patches: bool = Field(
        True, description="A re-embed reading its text from the payload first waits until every patch published "
        "before it is applied (docs/design.md); off only where no patch ever changes an embedded text",
    )

    # Embedding
    dense_model: str = Field(DEFAULT_DENSE_MODEL, description="Model for dense vectors when an event names none")
    sparse_model: str = Field(DEFAULT_SPARSE_MODEL, description="Model for sparse vectors when an event names none")
    allowed_models: Annotated[list[str] | None, NoDecode] = Field(
        None, description="Models events may name (comma list or JSON list); unset: the two defaults"
    )
    model_paths: dict[str, Path] = Field(
        default_factory=dict,
        description="Model name -> local folder (JSON object), for machines without the model hub",
    )
    model_cache_dir: Path | None = Field(None, description="fastembed's download cache")
    embed_threads: int = Field(1, ge=1, le=64, description="onnxruntime threads per model")

    # Limits and retries
    tombstones: Literal["delete", "dead_letter"] = Field(
        "delete", description="A record without a value (a tombstone) on the patch topic, keyed collection/point-id "
        "(collection/<shard key>/point-id under a from_key rule): delete that point, as compacted topics mean it; "
        "dead_letter keeps it as an empty_record dead letter")
    max_event_bytes: int = Field(1_048_576, ge=256, description="Larger records are dead-lettered")
    publish_max_bytes: int = Field(
        1_000_000, ge=65_536,
        description="Largest record the connector publishes (value and headers); at most the output topics' "
        "max.message.bytes. Larger dead letters carry the original as the record value, or a digest",
    )
    max_ids_per_event: int = Field(10_000, ge=1, description="Events naming more points are dead-lettered")
    max_points_per_filter_reembed: int = Field(
        100_000, ge=1, description="A filter re-embed matching more points is dead-lettered"
    )
    retry_initial_seconds: float = Field(0.2, gt=0, description="First backoff after a transient Qdrant error")
    retry_max_seconds: float = Field(30.0, gt=0, description="Longest backoff (retries never stop)")

    # Process
    http_host: str = Field("0.0.0.0", description="Address of the /metrics, /livez and /readyz endpoints")
    http_port: int = Field(8080, ge=0, le=65535, description="Port of those endpoints; 0 turns them off")
    data_dir: Path = Field(Path("./.connector-state"), description="Faust's local state folder")
    log_level: Literal["debug", "info", "warning", "error"] = Field("info", description="Worker log level")
    log_format: Literal["auto", "json", "text"] = Field("auto", description="json, text, or auto: text in a terminal")
    failpoints_dir: Path | None = Field(None, description="Test-only fault injection folder, see docs/testing.md")

    @field_validator("filter_blast_radius", mode="before")
    @classmethod
    def _none_is_no_limit(cls, value: object) -> object:
        return None if isinstance(value, str) and value.strip().lower() == "none" else value

    @field_validator("collections", "allowed_models", "denied_operations", "cdc_topics", mode="before")
    @classmethod
    def _split_comma_list(cls, value: object) -> object:
        if isinstance(value, str):
            if value.strip().startswith("["):
                return json.loads(value)
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("denied_operations")
    @classmethod
    def _known_operations(cls, names: list[str]) -> list[str]:
        """A name that is no operation would deny nothing: the policy would be off without a word."""
        unknown = [name for name in names if name not in OPERATION_NAMES]
        if unknown:
            def hint(name: str) -> str:
                if name.removesuffix(":filter") in OPERATION_NAMES:
                    return f"{name!r} (a filter never addresses {name.removesuffix(':filter')})"
                nearest = difflib.get_close_matches(name, OPERATION_NAMES, n=1)
                return f"{name!r}" + (f" (did you mean {nearest[0]!r}?)" if nearest else "")

            raise PydanticCustomError("unknown_operation", "unknown operation {unknown}; the names are {names}",
                                      {"unknown": ", ".join(map(hint, unknown)), "names": ", ".join(OPERATION_NAMES)})
        return names

    @model_validator(mode="after")
    def _cdc_needs_mapping(self) -> Settings:
        if self.cdc_topics and self.cdc_mapping is None:
            raise ValueError("QCC_CDC_TOPICS needs QCC_CDC_MAPPING, the file that maps tables to collections "
                             "(docs/cdc.md)")
        return self

    # Settings that cannot work stop at load, one line naming the variable (exit 78), rather than
    # a command failing later as "unexpected error" or a worker's agents crashing in a loop.

    @field_validator("kafka_security_protocol", "kafka_sasl_mechanism", mode="before")
    @classmethod
    def _kafka_names_in_any_case(cls, value: object) -> object:
        """Kafka takes these names in any case (sasl_ssl is SASL_SSL)."""
        return value.upper() if isinstance(value, str) and value.upper() in KAFKA_NAMES else value

    @field_validator("kafka_bootstrap_servers")
    @classmethod
    def _broker_addresses(cls, value: str) -> str:
        _raise_if(bootstrap_problem(value))
        return value

    @field_validator("qdrant_url")
    @classmethod
    def _qdrant_address(cls, value: str | None) -> str | None:
        _raise_if(qdrant_url_problem(value or ""))
        return value

    @field_validator("consumer_group")
    @classmethod
    def _group_named(cls, value: str) -> str:
        _raise_if(None if value.strip() else "empty: the workers of one deployment share a group name "
                  "(default qdrant-change-connector)")
        return value

    @field_validator("patch_topic", "reembed_topic", "verification_topic", "dead_letter_topic", "cdc_topics")
    @classmethod
    def _kafka_topic_names(cls, value: str | list[str]) -> str | list[str]:
        for name in [value] if isinstance(value, str) else value:
            _raise_if(topic_problem(name))
        return value

    @field_validator("data_dir")
    @classmethod
    def _data_dir_can_be_a_folder(cls, value: Path) -> Path:
        for path in (value, *value.parents):  # the first that exists must be a folder
            if path.exists():
                _raise_if(None if path.is_dir() else
                          f"{'' if path == value else f'{path} is '}a file, not a folder: name a folder for the "
                          "worker's state")
                break
        return value

    @model_validator(mode="after")
    def _settings_agree(self) -> Settings:
        """Rules across settings, every broken one said at once."""
        _raise_if("; ".join(kafka_security_problems(self) + topic_conflicts(self) + file_problems(self)) or None)
        return self

    def public_dump(self) -> dict[str, object]:
        """Every setting as JSON values, secrets as stars: safe to log and print."""
        return dict(json.loads(self.model_dump_json()))

    def models_allowed(self) -> set[str]:
        """The embedding models an event may name."""
        if self.allowed_models is not None:
            return set(self.allowed_models)
        return {self.dense_model, self.sparse_model}

    def kafka_broker_url(self) -> str:
        """The bootstrap servers in Faust's URL form."""
        return ";".join(f"kafka://{host.strip()}" for host in self.kafka_bootstrap_servers.split(","))


# What the checks above accept and what they say, as plain functions of the values.

KAFKA_NAMES = {"PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL", "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"}
KAFKA_TOPIC = re.compile(r"[A-Za-z0-9._-]{1,249}")  # Kafka's own rule for a topic name
HOST_NAME = re.compile(r"[A-Za-z0-9._-]+")
BROKER_EXAMPLE = "host:port, comma separated, e.g. kafka-1:9092,kafka-2:9092"


def _raise_if(problem: str | None) -> None:
    if problem:
        raise ValueError(problem)


def bootstrap_problem(servers: str) -> str | None:
    """Why a bootstrap list is not ``host[:port],...`` as the Kafka clients read it, or None."""
    entries = [entry.strip() for entry in servers.split(",")]
    if not any(entries):
        return f"no broker named: give {BROKER_EXAMPLE}"
    for entry in entries:
        if not entry:
            return f"an empty entry between commas: give {BROKER_EXAMPLE}"
        if "://" in entry:
            return f"{entry!r} has a scheme: give only {BROKER_EXAMPLE}"
        if not entry.startswith("[") and _is_ipv6(entry):
            return f"{entry!r}: an IPv6 address goes in brackets, e.g. [{entry}]:9092"
        host, port = _host_and_port(entry)
        if host is None:
            return f"{entry!r} is not a host name or address: give {BROKER_EXAMPLE}"
        if port is not None and not (port.isdigit() and 1 <= int(port) <= 65535):
            return f"{port!r} is not a port (1-65535): give {BROKER_EXAMPLE}"
    return None


def _host_and_port(entry: str) -> tuple[str | None, str | None]:
    """``kafka:9092``, ``kafka`` or ``[::1]:9092`` as the Kafka clients split them (host None: not a host)."""
    if entry.startswith("["):
        address, bracket, rest = entry[1:].partition("]")
        valid = bracket and _is_ipv6(address) and (not rest or rest.startswith(":"))
        return (address if valid else None), (rest[1:] if rest else None)
    if entry.count(":") > 1:
        return None, None
    host, _, port = entry.partition(":")
    return (host if HOST_NAME.fullmatch(host) else None), (port if ":" in entry else None)


def _is_ipv6(text: str) -> bool:
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True


def qdrant_url_problem(url: str) -> str | None:
    """Why a Qdrant URL is not one qdrant-client can use (http or https, a host, a port), or None."""
    if not url:
        return None  # unset: local mode
    parts = urlsplit(f"http://{url}" if url.startswith("localhost") else url)  # as qdrant-client reads it
    example = "e.g. http://qdrant:6333 or https://qdrant.example.com"
    if "://" not in url and not url.startswith("localhost"):
        return f"no scheme: write http://{url} or https://{url}"
    if parts.scheme not in ("http", "https"):
        return f"the scheme must be http or https, not {parts.scheme!r} ({example})"
    if not parts.hostname:
        return f"no host ({example})"
    try:
        port = parts.port
    except ValueError:
        port = 0
    if port == 0:
        return f"the port must be a number from 1 to 65535 ({example})"
    return None


def topic_problem(name: str) -> str | None:
    """Why a name is not a topic name Kafka takes, or None."""
    if not name:
        return "empty: name a topic"
    if not KAFKA_TOPIC.fullmatch(name) or name in (".", ".."):
        return "not a Kafka topic name: letters, digits, '.', '_' and '-', at most 249"
    return None


def kafka_security_problems(settings: Settings) -> list[str]:
    """SASL and TLS settings that cannot make a connection together."""
    problems = []
    protocol = settings.kafka_security_protocol
    if protocol.startswith("SASL_"):
        needed = {"QCC_KAFKA_SASL_MECHANISM": settings.kafka_sasl_mechanism,
                  "QCC_KAFKA_SASL_USERNAME": settings.kafka_sasl_username,
                  "QCC_KAFKA_SASL_PASSWORD": settings.kafka_sasl_password.get_secret_value()
                  if settings.kafka_sasl_password else None}
        missing = [variable for variable, value in needed.items() if not value]
        if missing:
            problems.append(f"QCC_KAFKA_SECURITY_PROTOCOL={protocol} needs {', '.join(missing)} "
                            "(mechanism PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512)")
    if settings.kafka_ssl_keyfile is not None and settings.kafka_ssl_certfile is None:
        problems.append("QCC_KAFKA_SSL_KEYFILE needs QCC_KAFKA_SSL_CERTFILE, the client certificate of that key")
    return problems


def file_problems(settings: Settings) -> list[str]:
    """Files named by settings in use that cannot serve: missing, not files, CA bundles that are not
    PEM. A file a setting names where it is not used is a warning (connector/setting_warnings.py)."""
    used: list[tuple[str, Path | None, bool]] = []
    if settings.kafka_security_protocol in ("SSL", "SASL_SSL"):
        used += [("QCC_KAFKA_SSL_CAFILE", settings.kafka_ssl_cafile, True),
                 ("QCC_KAFKA_SSL_CERTFILE", settings.kafka_ssl_certfile, False),
                 ("QCC_KAFKA_SSL_KEYFILE", settings.kafka_ssl_keyfile, False)]
    if settings.qdrant_url and not settings.qdrant_url.startswith("http://"):
        used.append(("QCC_QDRANT_CA_FILE", settings.qdrant_ca_file, True))
    problems = []
    for variable, path, ca_bundle in used:
        problem = _file_problem(path, ca_bundle) if path is not None else None
        if problem:
            problems.append(f"{variable}={path}: {problem}")
    return problems


def _file_problem(path: Path, ca_bundle: bool) -> str | None:
    if not path.is_file():
        return "not a file" if path.exists() else "no such file"
    if ca_bundle:
        try:
            ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(cafile=str(path))
        except ssl.SSLError as exc:
            return f"not a CA bundle of PEM certificates ({exc.reason or exc})"
        except OSError as exc:
            return f"cannot be read: {exc.strerror or exc}"
    return None


def topic_conflicts(settings: Settings) -> list[str]:
    """Two of the connector's topics with one name: the worker would read what it writes."""
    named = [("QCC_PATCH_TOPIC", settings.patch_topic), ("QCC_REEMBED_TOPIC", settings.reembed_topic),
             ("QCC_VERIFICATION_TOPIC", settings.verification_topic),
             ("QCC_DEAD_LETTER_TOPIC", settings.dead_letter_topic),
             *(("QCC_CDC_TOPICS", topic) for topic in dict.fromkeys(settings.cdc_topics))]
    first: dict[str, str] = {}
    problems = []
    for variable, topic in named:
        if topic in first:
            problems.append(f"{first[topic]} and {variable} both name {topic}: each topic has one job, "
                            "give them different names")
        first.setdefault(topic, variable)
    return problems
