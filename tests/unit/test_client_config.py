from __future__ import annotations

from pathlib import Path

from pipelines.config import Settings
from pipelines.kafka.client_config import (
    consumer_config,
    producer_config,
    redact,
    spark_kafka_options,
)


def _sasl_ssl_settings(tmp_path: Path) -> Settings:
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    return Settings(
        kafka={  # type: ignore[arg-type]
            "bootstrap_servers": "k1:9093,k2:9093",
            "security": {
                "protocol": "SASL_SSL",
                "sasl_mechanism": "SCRAM-SHA-256",
                "sasl_username": "svc",
                "sasl_password": 'p"w',
                "ssl_ca_location": ca,
            },
        }
    )


def test_plaintext_producer_is_idempotent_and_acks_all() -> None:
    conf = producer_config(Settings(), transactional_id="tx-1")
    assert conf["enable.idempotence"] is True
    assert conf["acks"] == "all"
    assert conf["transactional.id"] == "tx-1"
    assert conf["security.protocol"] == "PLAINTEXT"
    assert "sasl.username" not in conf


def test_consumer_reads_committed_by_default() -> None:
    assert consumer_config(Settings(), "g")["isolation.level"] == "read_committed"
    assert consumer_config(Settings(), "g", read_committed=False)["isolation.level"] == "read_uncommitted"


def test_sasl_ssl_reaches_librdkafka(tmp_path: Path) -> None:
    conf = producer_config(_sasl_ssl_settings(tmp_path))
    assert conf["bootstrap.servers"] == "k1:9093,k2:9093"
    assert conf["security.protocol"] == "SASL_SSL"
    assert conf["sasl.mechanisms"] == "SCRAM-SHA-256"
    assert conf["sasl.username"] == "svc"
    assert conf["sasl.password"] == 'p"w'
    assert conf["ssl.ca.location"].endswith("ca.pem")


def test_sasl_ssl_reaches_spark_as_jaas(tmp_path: Path) -> None:
    options = spark_kafka_options(_sasl_ssl_settings(tmp_path))
    assert options["kafka.bootstrap.servers"] == "k1:9093,k2:9093"
    assert options["kafka.security.protocol"] == "SASL_SSL"
    assert options["kafka.sasl.mechanism"] == "SCRAM-SHA-256"
    assert options["kafka.sasl.jaas.config"] == (
        'org.apache.kafka.common.security.scram.ScramLoginModule required username="svc" password="p\\"w";'
    )
    assert options["kafka.ssl.truststore.type"] == "PEM"


def test_redact_masks_every_secret(tmp_path: Path) -> None:
    settings = _sasl_ssl_settings(tmp_path)
    shown = str(redact(producer_config(settings))) + str(redact(spark_kafka_options(settings)))
    assert 'p"w' not in shown
    assert "***" in shown
