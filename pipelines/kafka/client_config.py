"""Translate :class:`~pipelines.config.Settings` into client configurations.

Two client families speak to Kafka here: librdkafka (confluent-kafka producers, consumers, admin) and the Java
client inside Spark's Kafka source and sink. Both get the same bootstrap servers and the same SASL/SSL
settings from one place, so a secured cluster is configured once. These functions are pure: the returned
dicts hold secrets, so callers pass them to clients and never log them (use :func:`redact`).
"""

from __future__ import annotations

from typing import Any

from pipelines.config import KafkaSecurity, Settings

_SECRET_KEY_PARTS = ("password", "jaas", "secret")

_JAAS_LOGIN_MODULES = {
    "PLAIN": "org.apache.kafka.common.security.plain.PlainLoginModule",
    "SCRAM-SHA-256": "org.apache.kafka.common.security.scram.ScramLoginModule",
    "SCRAM-SHA-512": "org.apache.kafka.common.security.scram.ScramLoginModule",
}


def librdkafka_security(security: KafkaSecurity) -> dict[str, Any]:
    """librdkafka properties for the configured security protocol."""
    conf: dict[str, Any] = {"security.protocol": security.protocol}
    if security.uses_sasl:
        conf["sasl.mechanisms"] = security.sasl_mechanism
        conf["sasl.username"] = security.sasl_username
        conf["sasl.password"] = security.resolved_sasl_password()
    if security.uses_ssl:
        if security.ssl_ca_location:
            conf["ssl.ca.location"] = str(security.ssl_ca_location)
        if security.ssl_certificate_location:
            conf["ssl.certificate.location"] = str(security.ssl_certificate_location)
        if security.ssl_key_location:
            conf["ssl.key.location"] = str(security.ssl_key_location)
        if security.ssl_key_password:
            conf["ssl.key.password"] = security.ssl_key_password.get_secret_value()
        conf["ssl.endpoint.identification.algorithm"] = "https" if security.ssl_endpoint_identification else "none"
    return conf


def base_client_config(settings: Settings) -> dict[str, Any]:
    """What every confluent-kafka client needs: servers, identity, security."""
    return {
        "bootstrap.servers": settings.bootstrap_servers,
        "client.id": settings.kafka.client_id,
        **librdkafka_security(settings.kafka.security),
    }


def admin_config(settings: Settings) -> dict[str, Any]:
    return base_client_config(settings)


def producer_config(settings: Settings, *, transactional_id: str | None = None) -> dict[str, Any]:
    """An idempotent, acks=all producer; transactional when given an id.

    librdkafka leaves idempotence off by default, so a retried send could duplicate a record; it is always on
    here. Batching favours throughput (linger a few ms, large batches, lz4).
    """
    conf = {
        **base_client_config(settings),
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 20,
        "batch.size": 1_000_000,
        "batch.num.messages": 100_000,
        "queue.buffering.max.messages": 1_000_000,
        "queue.buffering.max.kbytes": 1_048_576,
        "compression.type": "lz4",
    }
    if transactional_id is not None:
        conf["transactional.id"] = transactional_id
    return conf


def consumer_config(settings: Settings, group_id: str, *, read_committed: bool = True) -> dict[str, Any]:
    """A consumer that sees only committed transactional data unless told otherwise."""
    return {
        **base_client_config(settings),
        "group.id": group_id,
        "isolation.level": "read_committed" if read_committed else "read_uncommitted",
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
    }


def spark_kafka_options(settings: Settings) -> dict[str, str]:
    """Options for Spark's Kafka source and sink (Java client properties prefixed with ``kafka.``)."""
    security = settings.kafka.security
    options = {
        "kafka.bootstrap.servers": settings.bootstrap_servers,
        "kafka.security.protocol": security.protocol,
    }
    if security.uses_sasl:
        assert security.sasl_mechanism is not None  # enforced by KafkaSecurity's validator
        module = _JAAS_LOGIN_MODULES[security.sasl_mechanism]
        password = (security.resolved_sasl_password() or "").replace('"', '\\"')
        options["kafka.sasl.mechanism"] = security.sasl_mechanism
        options["kafka.sasl.jaas.config"] = (
            f'{module} required username="{security.sasl_username}" password="{password}";'
        )
    if security.uses_ssl:
        if security.ssl_ca_location:
            options["kafka.ssl.truststore.type"] = "PEM"
            options["kafka.ssl.truststore.location"] = str(security.ssl_ca_location)
        if security.ssl_certificate_location and security.ssl_key_location:
            # The Java client reads a PEM keystore from one file holding the key and its certificate chain.
            options["kafka.ssl.keystore.type"] = "PEM"
            options["kafka.ssl.keystore.location"] = str(security.ssl_key_location)
            if security.ssl_key_password:
                options["kafka.ssl.key.password"] = security.ssl_key_password.get_secret_value()
        options["kafka.ssl.endpoint.identification.algorithm"] = "https" if security.ssl_endpoint_identification else ""
    return options


def redact(config: dict[str, Any]) -> dict[str, Any]:
    """A copy safe to print: values of secret-bearing keys are masked."""
    return {
        key: "***" if any(part in key.lower() for part in _SECRET_KEY_PARTS) and value else value
        for key, value in config.items()
    }
