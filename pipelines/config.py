"""One settings object for every component, overridable from the environment and a TOML file.

Precedence, highest first: constructor arguments, environment variables (``FEATURESTREAM_`` prefix, ``__``
between nested names, e.g. ``FEATURESTREAM_KAFKA__BOOTSTRAP_SERVERS``), the TOML file named by
``FEATURESTREAM_CONFIG`` (default ``featurestream.toml`` in the working directory, if present), then defaults.

Secrets are :class:`~pydantic.SecretStr` (never shown by ``repr`` or ``status``) and may instead be read from a
file (``*_file`` settings), so they need not sit in the environment at all.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from pipelines.errors import ConfigurationError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
CONFIG_FILE_ENV = "FEATURESTREAM_CONFIG"

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    def __hash__(self) -> int:
        """Settings are hashed (cached lookups key on them); a dict-valued field is hashed by its items."""
        return hash(tuple((name, _hashable(value)) for name, value in self))


def _hashable(value: object) -> object:
    return tuple(sorted(value.items())) if isinstance(value, dict) else value


class KafkaSecurity(_Frozen):
    """How every Kafka client (producer, consumer, admin, Spark source and sink) authenticates."""

    protocol: SecurityProtocol = "PLAINTEXT"
    sasl_mechanism: SaslMechanism | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    sasl_password_file: Path | None = Field(
        default=None, description="File holding the SASL password; read at use, never logged."
    )
    ssl_ca_location: Path | None = Field(default=None, description="PEM file of trusted CA certificates.")
    ssl_certificate_location: Path | None = Field(default=None, description="Client certificate (PEM).")
    ssl_key_location: Path | None = Field(default=None, description="Client private key (PEM).")
    ssl_key_password: SecretStr | None = None
    ssl_endpoint_identification: bool = True

    @property
    def uses_sasl(self) -> bool:
        return self.protocol.startswith("SASL")

    @property
    def uses_ssl(self) -> bool:
        return self.protocol.endswith("SSL")

    @model_validator(mode="after")
    def _sasl_needs_credentials(self) -> KafkaSecurity:
        if self.uses_sasl:
            if self.sasl_mechanism is None:
                raise ValueError(f"security protocol {self.protocol} needs kafka.security.sasl_mechanism")
            if not self.sasl_username:
                raise ValueError(f"security protocol {self.protocol} needs kafka.security.sasl_username")
            if self.sasl_password is None and self.sasl_password_file is None:
                raise ValueError(
                    f"security protocol {self.protocol} needs kafka.security.sasl_password "
                    "or kafka.security.sasl_password_file"
                )
        return self

    def resolved_sasl_password(self) -> str | None:
        """The SASL password, from the setting or its file; read only when a client is configured."""
        if self.sasl_password is not None:
            return self.sasl_password.get_secret_value()
        if self.sasl_password_file is not None:
            try:
                return self.sasl_password_file.read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ConfigurationError(
                    f"cannot read kafka.security.sasl_password_file {self.sasl_password_file}: {exc.strerror}"
                ) from exc
        return None


class TopicNames(_Frozen):
    """Names of the project's topics; change them to share a cluster with other deployments."""

    transactions: str = "transactions"
    labels: str = "labels"
    scores: str = "scores"
    shadow_scores: str = Field(default="scores.shadow", description="Scores of the challenger (shadow) model.")
    dead_letter: str = "transactions.dlq"
    alerts: str = "alerts"

    def all(self) -> list[str]:
        return [self.transactions, self.labels, self.scores, self.shadow_scores, self.dead_letter, self.alerts]


class KafkaSettings(_Frozen):
    bootstrap_servers: str | None = Field(
        default=None,
        description="host:port list of an existing cluster; unset means the embedded broker on stack.broker_port.",
    )
    partitions: int = Field(default=3, ge=1, description="Partitions of each project topic when created.")
    replication_factor: int = Field(
        default=1, ge=1, description="Of each project topic; unset, the embedded stack uses min(3, stack.brokers)."
    )
    min_insync_replicas: int | None = Field(
        default=None, ge=1, description="Of each project topic; unset means replication_factor - 1 (at least 1)."
    )
    topics: TopicNames = TopicNames()
    security: KafkaSecurity = KafkaSecurity()
    client_id: str = "featurestream"
    request_timeout_s: float = Field(default=30.0, gt=0)

    @property
    def min_isr(self) -> int:
        """The min.insync.replicas topics get: with RF 3, a write is acknowledged by 2 replicas, so one broker
        may die without losing an acknowledged write or stopping producers."""
        return self.min_insync_replicas or max(1, self.replication_factor - 1)

    @model_validator(mode="after")
    def _isr_fits(self) -> KafkaSettings:
        if self.min_isr > self.replication_factor:
            raise ValueError(
                f"kafka.min_insync_replicas={self.min_isr} exceeds kafka.replication_factor={self.replication_factor}"
            )
        return self


class StackSettings(_Frozen):
    """Where and how the embedded stack (single-node KRaft broker) runs."""

    state_dir: Path = Field(
        default=PROJECT_ROOT / ".featurestream", description="Broker data, logs, pid files, checkpoints."
    )
    host: str = "127.0.0.1"
    broker_port: int = Field(default=9092, ge=1, le=65535)
    controller_port: int = Field(default=9093, ge=1, le=65535)
    broker_heap: str = Field(default="1g", pattern=r"^\d+[mMgG]$")
    start_timeout_s: float = Field(default=90.0, gt=0)
    jars_dir: Path = Field(default=PROJECT_ROOT / "infra" / "jars", description="Where `make jars` puts jars.")
    brokers: int = Field(
        default=1,
        ge=1,
        le=9,
        description="KRaft nodes of the embedded cluster; node i (from 0) listens on broker_port + 2i and "
        "controller_port + 2i.",
    )
    redis_port: int = Field(
        default=6379, ge=1, le=65535, description="Port of the stack's redis-server (online_store = redis, no URL)."
    )
    spark_workers: int = Field(default=0, ge=0, le=8, description="Spark standalone workers `stack up` starts.")
    spark_master_port: int = Field(default=7077, ge=1, le=65535)
    spark_master_webui_port: int = Field(default=8080, ge=1, le=65535)
    spark_worker_cores: int = Field(default=1, ge=1, description="Cores each standalone worker offers.")
    spark_worker_memory: str = Field(default="2g", pattern=r"^\d+[mMgG]$", description="Memory each worker offers.")

    @model_validator(mode="after")
    def _distinct_ports(self) -> StackSettings:
        if self.broker_port == self.controller_port:
            raise ValueError("stack.broker_port and stack.controller_port must differ")
        ports = [port for node in range(self.brokers) for port in self.node_ports(node)]
        if len(set(ports)) != len(ports) or max(ports) > 65535:
            raise ValueError(
                f"{self.brokers} brokers on broker_port {self.broker_port} / controller_port {self.controller_port} "
                "(+2 per node) need distinct ports below 65536: choose ports an odd distance apart"
            )
        return self

    def node_ports(self, node: int) -> tuple[int, int]:
        """(broker port, controller port) of KRaft node ``node`` (0-based) of the embedded cluster."""
        return self.broker_port + 2 * node, self.controller_port + 2 * node


class SparkSettings(_Frozen):
    master: str = "local[2]"
    app_name: str = "featurestream"
    shuffle_partitions: int = Field(default=4, ge=1)
    driver_memory: str = "2g"
    executor_memory: str = Field(default="1g", description="Heap of each executor on a cluster master (not local).")
    checkpoint_root: Path | None = Field(
        default=None, description="Root of per-query checkpoints; unset means <state_dir>/checkpoints."
    )
    arrow_batch_rows: int = Field(
        default=50_000,
        ge=1,
        description="Rows per Arrow batch between Spark's JVM and its Python workers "
        "(spark.sql.execution.arrow.maxRecordsPerBatch; Spark's own default is 10,000).",
    )
    jvm_options: str | None = Field(
        default=None,
        description="Java options of the driver and executor JVMs (spark.{driver,executor}.extraJavaOptions). Unset "
        "means, on a local master, the parallel collector (one JVM runs every task: ~5% more events/s with scoring "
        "than G1 on 2 cores, README), a 256 MB metaspace threshold and the whole driver_memory heap from the start (no "
        "full collections as Spark's classes load and a stream's promoted objects pile up); on a cluster, the JVM's "
        "default collector (large executor heaps).",
    )
    extra_conf: dict[str, str] = Field(
        default_factory=dict,
        description="Further Spark settings passed through verbatim (e.g. spark.eventLog.enabled); a key that "
        "featurestream sets itself is refused, so a job never runs with a silently different meaning.",
    )
    ui_enabled: bool = False
    log_level: str = "WARN"


class FeastSettings(_Frozen):
    """Where the Feast feature store keeps its definitions and data; unset paths live under <state_dir>/feast."""

    repo_path: Path = Field(
        default=PROJECT_ROOT / "features", description="The Feast feature repository (feature_store.yaml, definitions)."
    )
    online_store: Literal["sqlite", "redis"] = Field(default="sqlite", description="Backend of the online store.")
    online_path: Path | None = Field(
        default=None, description="SQLite online store file; unset means <state_dir>/feast/online.db."
    )
    offline_root: Path | None = Field(
        default=None, description="Parquet offline store, a folder per feature view; unset: <state_dir>/feast/offline."
    )
    registry_path: Path | None = Field(
        default=None, description="Feast registry file; unset means <state_dir>/feast/registry.db."
    )
    redis_connection_string: SecretStr | None = Field(
        default=None,
        description="An existing Redis: a redis:// or rediss:// URL, or Feast's form host:port[,password=...]; "
        "may hold a password, never logged. Unset means the stack's redis-server on stack.host:stack.redis_port.",
    )


class SerdeSettings(_Frozen):
    """How records are framed on Kafka: registry-less Avro single-object encoding, or Confluent's wire format.

    Without a Schema Registry (the embedded default) every record carries its writer schema's fingerprint and
    the writer schemas come from ``schemas/``; with ``schema_registry_url`` set, records use Confluent's
    framing (magic byte + schema id) through confluent-kafka's Avro serializer.
    """

    schema_registry_url: str | None = Field(
        default=None, description="Confluent Schema Registry URL; unset means the registry-less encoding."
    )
    basic_auth_user_info: SecretStr | None = Field(
        default=None, description="'user:password' for the registry's basic auth; never logged."
    )
    compatibility: Literal["BACKWARD", "FORWARD", "FULL", "NONE"] = Field(
        default="BACKWARD", description="What `featurestream schemas check` requires between schema versions."
    )


class StreamSettings(_Frozen):
    """The streaming feature job (jobs/stream.py)."""

    domain: str = Field(default="card_fraud", description="Which declared domain (pipelines/domains) to run.")
    query_name: str = Field(default="features", pattern=r"^[A-Za-z0-9_-]+$")
    starting_offsets: Literal["earliest", "latest"] = Field(
        default="earliest", description="Where a new checkpoint starts; a restart resumes from its checkpoint."
    )
    max_offsets_per_trigger: int | None = Field(
        default=400_000,
        ge=1,
        description="Most records one micro-batch reads (a backlog is worked off in batches of this size). Larger "
        "batches spread each batch's fixed cost over more events (on 2 cores: ~27,000-28,000 events/s at 400,000, "
        "~23,000-27,000 at 200,000); a steady stream's batches are smaller anyway.",
    )
    read_tasks: int | None = Field(
        default=None,
        ge=1,
        description="Spark tasks reading each micro-batch from Kafka, of equal size whatever the topic's partition "
        "count (offset ranges split with Spark's minPartitions, then merged with coalesce). Unset means one per core "
        "of the Spark application: one wave of tasks, and every task has a fixed cost (GX's set-up, ~0.1 s).",
    )
    trigger_interval: str = Field(default="2 seconds", description="Micro-batch trigger for continuous runs.")
    watermark_delay: str = Field(default="10 minutes", description="How late an event may be before it is late.")
    idle_entity_days: float = Field(default=30.0, gt=0, description="Forget an entity idle this long (event time).")
    state_buckets: int = Field(
        default=16,
        ge=1,
        description="State groups per entity type; each holds the histories of many entities. Fewer groups cost "
        "less per micro-batch (pyspark's per-group overhead), more spread the state over more tasks; fixed for a "
        "checkpoint (a changed count is refused).",
    )


class ModelSettings(_Frozen):
    """Training (`featurestream train`) and the model registry (`featurestream models`)."""

    registry_dir: Path | None = Field(default=None, description="Model registry root; unset means <state_dir>/models.")
    model_name: str = Field(default="fraud_xgb", pattern=r"^[A-Za-z0-9_.-]+$")
    feature_service: str = Field(default="fraud_model_v1", description="The Feast feature service the model reads.")
    label_subject: str = Field(default="labels", description="Avro subject of the labels topic.")
    label_column: str = Field(default="is_fraud", description="The label field (boolean) of a label record.")
    alert_threshold: float = Field(
        default=0.5, gt=0, lt=1, description="Score at or above which an event alerts (threshold_policy fixed)."
    )
    threshold_policy: Literal["fixed", "best_f1"] = Field(
        default="fixed",
        description="How training sets a version's alert threshold: fixed, alert_threshold; best_f1, the validation "
        "score at or above which alerting has the highest F1 (precision estimated in traffic when genuine labels "
        "are sampled). The version records the threshold, which scoring then uses.",
    )
    validation_fraction: float = Field(
        default=0.2,
        gt=0,
        lt=1,
        description="Share of labelled events (by event time, just before the test share) held out to validate: "
        "early stopping and the best_f1 threshold are chosen on it.",
    )
    test_fraction: float = Field(
        default=0.2,
        ge=0,
        lt=1,
        description="Latest share of labelled events (by event time) held out to test: touched by no choice "
        "training makes, so its metrics at the chosen threshold are not optimistic. 0: no test split.",
    )
    num_boost_round: int = Field(default=400, ge=1)
    early_stopping_rounds: int = Field(default=30, ge=1)
    learning_rate: float = Field(default=0.1, gt=0, le=1)
    max_depth: int = Field(default=5, ge=1)
    label_read_timeout_s: float = Field(default=60.0, gt=0, description="Bound on reading the labels topic.")
    genuine_label_fraction: float = Field(
        default=1.0,
        gt=0,
        le=1,
        description="Share of genuine (non-fraud) events that get a label. Below 1, labelled genuine rows are "
        "weighted by its inverse, so scores estimate the fraud probability in traffic, not in the labelled set.",
    )

    @model_validator(mode="after")
    def _splits_leave_rows_to_train(self) -> ModelSettings:
        if self.validation_fraction + self.test_fraction >= 1:
            raise ValueError(
                f"models.validation_fraction ({self.validation_fraction:g}) + models.test_fraction "
                f"({self.test_fraction:g}) must be below 1: nothing would be left to train on"
            )
        return self

    @property
    def negative_weight(self) -> float:
        """How many genuine events of the traffic one labelled genuine event stands for (1 / the label fraction):
        the weight training, its metrics and live quality give each labelled negative."""
        return 1.0 / self.genuine_label_fraction


class ObservabilitySettings(_Frozen):
    """Metrics endpoint, drift and live-quality judgement, and where run reports go (`featurestream report`)."""

    metrics_enabled: bool = Field(default=True, description="Serve Prometheus metrics from the streaming job.")
    metrics_host: str = Field(default="127.0.0.1", description="Interface the metrics endpoint listens on.")
    metrics_port: int = Field(default=9108, ge=1, le=65535, description="Port of the /metrics endpoint.")
    psi_threshold: float = Field(default=0.2, gt=0, description="PSI at or above this means a feature drifted.")
    ks_pvalue_threshold: float = Field(
        default=0.001, gt=0, lt=1, description="KS p-value below this (and a large statistic) means drift."
    )
    ks_statistic_threshold: float = Field(
        default=0.1,
        gt=0,
        le=1,
        description="Smallest KS statistic that counts as drift: on big windows tiny shifts are significant.",
    )
    drift_window: int = Field(default=5000, ge=10, description="Latest values per feature the drift test compares.")
    drift_min_samples: int = Field(default=1000, ge=10, description="Values a feature needs before it is judged.")
    drift_bins: int = Field(default=10, ge=2, le=100, description="Quantile bins of the training baseline (PSI).")
    quality_window: int = Field(default=5000, ge=10, description="Latest labelled scores live quality covers.")
    quality_max_pending: int = Field(
        default=200_000, ge=100, description="Scores (and early labels) kept while waiting for their match."
    )
    quality_read_per_s: int = Field(
        default=5_000,
        ge=1,
        description="Most scores and labels per second the live-quality feed reads back (each costs a decode on "
        "the driver, ~7 µs); behind by more than 60 s of reading, it skips to the newest records (a sample).",
    )
    report_dir: Path | None = Field(
        default=None, description="Where `featurestream report` writes; unset means <state_dir>/reports."
    )


class ServingSettings(_Frozen):
    """Online serving on loopback: Feast's own feature server and the request-time scoring endpoint."""

    feature_server_enabled: bool = Field(
        default=True, description="`stack up` starts Feast's feature server (`feast serve`) and `down` stops it."
    )
    feature_server_port: int = Field(default=6566, ge=1, le=65535, description="Port of Feast's feature server.")
    feature_server_workers: int = Field(default=1, ge=1, le=16, description="Gunicorn workers of `feast serve`.")
    score_server_enabled: bool = Field(
        default=True, description="`stack up` starts the scoring endpoint (`featurestream serve`) and `down` stops it."
    )
    score_port: int = Field(default=6570, ge=1, le=65535, description="Port of the POST /score endpoint.")
    registry_refresh_s: int = Field(
        default=30, ge=1, description="How often both servers re-read Feast's registry and the production model."
    )
    start_timeout_s: float = Field(default=90.0, gt=0, description="How long `stack up` waits for each server.")


class Settings(BaseSettings):
    """Everything featurestream can be told; build it once and pass it down."""

    model_config = SettingsConfigDict(
        env_prefix="FEATURESTREAM_",
        env_nested_delimiter="__",
        frozen=True,
        extra="forbid",
    )

    kafka: KafkaSettings = KafkaSettings()
    stack: StackSettings = StackSettings()
    spark: SparkSettings = SparkSettings()
    serde: SerdeSettings = SerdeSettings()
    stream: StreamSettings = StreamSettings()
    feast: FeastSettings = FeastSettings()
    models: ModelSettings = ModelSettings()
    serving: ServingSettings = ServingSettings()
    observability: ObservabilitySettings = ObservabilitySettings()

    @model_validator(mode="before")
    @classmethod
    def _replication_follows_the_embedded_cluster(cls, data: object) -> object:
        """Unless set, topics on an embedded cluster of N brokers get replication factor min(3, N)."""
        if not isinstance(data, dict):
            return data
        stack, kafka = data.get("stack"), data.get("kafka")
        brokers = stack.get("brokers", 1) if isinstance(stack, dict) else getattr(stack, "brokers", 1)
        if isinstance(kafka, KafkaSettings) or int(brokers) <= 1:
            return data
        kafka = dict(kafka or {})
        if "replication_factor" not in kafka and not kafka.get("bootstrap_servers"):
            kafka["replication_factor"] = min(3, int(brokers))
        return {**data, "kafka": kafka}

    @model_validator(mode="after")
    def _replicas_fit_the_embedded_cluster(self) -> Settings:
        if self.kafka.bootstrap_servers is None and self.kafka.replication_factor > self.stack.brokers:
            raise ValueError(
                f"kafka.replication_factor={self.kafka.replication_factor} needs at least that many brokers, but the "
                f"embedded stack has stack.brokers={self.stack.brokers} (`stack up --brokers N`, or lower the factor)"
            )
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        config_file = Path(os.environ.get(CONFIG_FILE_ENV, "featurestream.toml"))
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if CONFIG_FILE_ENV in os.environ and not config_file.is_file():
            raise ConfigurationError(f"{CONFIG_FILE_ENV}={config_file} does not name a readable file")
        if config_file.is_file():
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=config_file))
        return tuple(sources)

    @property
    def bootstrap_servers(self) -> str:
        """The cluster every client talks to: the configured one, else the embedded broker."""
        if self.kafka.bootstrap_servers:
            return self.kafka.bootstrap_servers
        nodes = (self.stack.node_ports(node)[0] for node in range(self.stack.brokers))
        return ",".join(f"{self.stack.host}:{port}" for port in nodes)

    @property
    def checkpoint_root(self) -> Path:
        return self.spark.checkpoint_root or self.stack.state_dir / "checkpoints"


def load_settings(**overrides: object) -> Settings:
    """Build settings, turning pydantic's validation error into a :class:`ConfigurationError`."""
    from pydantic import ValidationError

    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise ConfigurationError(f"invalid configuration:\n{exc}") from exc
