"""The embedded stack's lifecycle, through the same code as `featurestream stack up|down|status`."""

from __future__ import annotations

from pathlib import Path

import psutil
import pytest
from typer.testing import CliRunner

from pipelines.cli.main import app
from pipelines.config import Settings
from pipelines.kafka.topics import admin_client, describe_topics
from pipelines.stack.kafka_broker import BrokerStartError, KafkaBroker
from pipelines.testing import isolated_settings


def test_up_twice_is_harmless(kafka: Settings) -> None:
    broker = KafkaBroker(kafka)
    pid = broker.status().pid
    assert broker.up() is False
    assert broker.status().pid == pid


def test_project_topics_are_created_with_the_configured_partitions(kafka: Settings) -> None:
    KafkaBroker(kafka).create_project_topics()
    topics = {info.name: info for info in describe_topics(admin_client(kafka), kafka.kafka.topics.all())}
    assert set(topics) == set(kafka.kafka.topics.all())
    assert {info.partitions for info in topics.values()} == {kafka.kafka.partitions}


def test_a_port_in_use_fails_with_a_clear_message(kafka: Settings, tmp_path: Path) -> None:
    clashing = isolated_settings(tmp_path).model_copy(
        update={"stack": kafka.stack.model_copy(update={"state_dir": tmp_path, "controller_port": 1})}
    )
    with pytest.raises(BrokerStartError, match=f"port {kafka.stack.broker_port} .* already in use"):
        KafkaBroker(clashing).up()


def test_down_leaves_no_process_behind(tmp_path: Path) -> None:
    settings = isolated_settings(tmp_path)
    broker = KafkaBroker(settings)
    assert broker.up() is True
    pid = broker.status().pid
    assert pid is not None and psutil.pid_exists(pid)
    assert broker.down() is True
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert broker.status().running is False
    assert broker.down() is False


def test_status_cli_reports_the_broker_and_topics(kafka: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FEATURESTREAM_STACK__STATE_DIR", str(kafka.stack.state_dir))
    monkeypatch.setenv("FEATURESTREAM_STACK__BROKER_PORT", str(kafka.stack.broker_port))
    monkeypatch.setenv("FEATURESTREAM_STACK__CONTROLLER_PORT", str(kafka.stack.controller_port))
    KafkaBroker(kafka).create_project_topics()
    result = CliRunner().invoke(app, ["stack", "status"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "running" in result.output
    assert kafka.bootstrap_servers in result.output
    assert "transactions.dlq" in result.output
