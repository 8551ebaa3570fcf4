from __future__ import annotations

from pathlib import Path

import pytest

from pipelines.config import Settings, load_settings
from pipelines.errors import ConfigurationError


def test_defaults_point_clients_at_the_embedded_broker(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    settings = Settings()
    assert settings.bootstrap_servers == "127.0.0.1:9092"
    assert settings.kafka.security.protocol == "PLAINTEXT"
    assert settings.checkpoint_root == settings.stack.state_dir / "checkpoints"


def test_nested_environment_variables_override(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FEATURESTREAM_KAFKA__BOOTSTRAP_SERVERS", "b1:9092,b2:9092")
    monkeypatch.setenv("FEATURESTREAM_STACK__BROKER_PORT", "19092")
    monkeypatch.setenv("FEATURESTREAM_KAFKA__TOPICS__SCORES", "fraud-scores")
    settings = Settings()
    assert settings.bootstrap_servers == "b1:9092,b2:9092"
    assert settings.stack.broker_port == 19092
    assert settings.kafka.topics.scores == "fraud-scores"


def test_config_file_is_read_and_environment_wins(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = tmp_path / "fs.toml"
    config.write_text('[kafka]\npartitions = 6\nclient_id = "from-file"\n[stack]\nbroker_port = 29092\n')
    monkeypatch.setenv("FEATURESTREAM_CONFIG", str(config))
    monkeypatch.setenv("FEATURESTREAM_KAFKA__CLIENT_ID", "from-env")
    settings = Settings()
    assert settings.kafka.partitions == 6
    assert settings.stack.broker_port == 29092
    assert settings.kafka.client_id == "from-env"


def test_a_named_config_file_that_does_not_exist_is_an_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("FEATURESTREAM_CONFIG", str(tmp_path / "missing.toml"))
    with pytest.raises(ConfigurationError, match=r"missing\.toml"):
        Settings()


def test_sasl_without_credentials_is_rejected_clearly(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FEATURESTREAM_KAFKA__SECURITY__PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("FEATURESTREAM_KAFKA__SECURITY__SASL_MECHANISM", "PLAIN")
    with pytest.raises(ConfigurationError, match="sasl_username"):
        load_settings()


def test_secrets_never_appear_in_repr(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FEATURESTREAM_KAFKA__SECURITY__PROTOCOL", "SASL_PLAINTEXT")
    monkeypatch.setenv("FEATURESTREAM_KAFKA__SECURITY__SASL_MECHANISM", "SCRAM-SHA-512")
    monkeypatch.setenv("FEATURESTREAM_KAFKA__SECURITY__SASL_USERNAME", "svc")
    monkeypatch.setenv("FEATURESTREAM_KAFKA__SECURITY__SASL_PASSWORD", "hunter2-very-secret")
    settings = Settings()
    assert "hunter2-very-secret" not in repr(settings)
    assert "hunter2-very-secret" not in str(settings.model_dump())
    assert settings.kafka.security.resolved_sasl_password() == "hunter2-very-secret"


def test_password_file_is_read_at_use(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    secret = tmp_path / "sasl.pw"
    secret.write_text("from-a-file\n")
    settings = Settings(
        kafka={  # type: ignore[arg-type]
            "security": {
                "protocol": "SASL_SSL",
                "sasl_mechanism": "PLAIN",
                "sasl_username": "svc",
                "sasl_password_file": secret,
            }
        }
    )
    assert settings.kafka.security.resolved_sasl_password() == "from-a-file"
    secret.unlink()
    with pytest.raises(ConfigurationError, match="sasl_password_file"):
        settings.kafka.security.resolved_sasl_password()


def test_settings_are_frozen(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    settings = Settings()
    with pytest.raises(ValueError, match="frozen"):
        settings.kafka = settings.kafka  # type: ignore[misc]


def test_broker_and_controller_ports_must_differ(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigurationError, match="must differ"):
        load_settings(stack={"broker_port": 9100, "controller_port": 9100})
