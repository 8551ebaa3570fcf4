"""infra/k8s: the Strimzi Kafka cluster and the Spark-on-Kubernetes submit config parse and say what the
scale-out promises (KRaft node pools, RF 3 / min ISR 2 everywhere, the project's topics, a pod template that the
submit config really references, the same connector jars and settings as a local run)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped]  # PyYAML ships with Feast, its stubs do not

from pipelines.config import PROJECT_ROOT, Settings
from pipelines.stack.jars import pyspark_jars_dir, spark_connector_jars

K8S = PROJECT_ROOT / "infra" / "k8s"


def _documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def _by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [doc for doc in docs if doc["kind"] == kind]


def _submit_properties() -> dict[str, str]:
    entries = {}
    for line in (K8S / "spark" / "stream.conf").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, value = line.split(None, 1)
            entries[key] = value.strip()
    return entries


def test_strimzi_cluster_is_kraft_with_replication_three_and_min_isr_two() -> None:
    docs = _documents(K8S / "kafka" / "kafka-cluster.yaml")
    (kafka,) = _by_kind(docs, "Kafka")
    assert kafka["apiVersion"] == "kafka.strimzi.io/v1beta2"
    assert kafka["metadata"]["annotations"] == {"strimzi.io/node-pools": "enabled", "strimzi.io/kraft": "enabled"}
    config = kafka["spec"]["kafka"]["config"]
    assert config["default.replication.factor"] == 3 and config["min.insync.replicas"] == 2
    assert config["transaction.state.log.replication.factor"] == 3 and config["transaction.state.log.min.isr"] == 2
    assert config["offsets.topic.replication.factor"] == 3 and config["auto.create.topics.enable"] is False
    pools = {pool["metadata"]["name"]: pool for pool in _by_kind(docs, "KafkaNodePool")}
    assert pools["controller"]["spec"]["roles"] == ["controller"] and pools["controller"]["spec"]["replicas"] == 3
    assert pools["broker"]["spec"]["roles"] == ["broker"] and pools["broker"]["spec"]["replicas"] >= 3
    for pool in pools.values():
        assert pool["metadata"]["labels"]["strimzi.io/cluster"] == kafka["metadata"]["name"]
    # The broker version is the one the embedded stack pins.
    pom = (PROJECT_ROOT / "infra" / "jvm" / "kafka-broker" / "pom.xml").read_text()
    assert f"<kafka.version>{kafka['spec']['kafka']['version']}</kafka.version>" in pom


def test_every_project_topic_has_a_kafkatopic_with_rf_three_and_min_isr_two() -> None:
    topics = _by_kind(_documents(K8S / "kafka" / "topics.yaml"), "KafkaTopic")
    names = {topic["spec"].get("topicName", topic["metadata"]["name"]) for topic in topics}
    assert set(Settings().kafka.topics.all()) <= names
    for topic in topics:
        assert topic["spec"]["replicas"] == 3, topic["metadata"]["name"]
        assert topic["spec"]["config"]["min.insync.replicas"] == 2, topic["metadata"]["name"]
        assert topic["metadata"]["labels"]["strimzi.io/cluster"] == "featurestream"


def test_submit_config_references_the_pod_template_and_the_pinned_jars() -> None:
    conf = _submit_properties()
    assert conf["spark.submit.deployMode"] == "cluster"
    assert conf["spark.kubernetes.container.image"]
    for role in ("driver", "executor"):
        template = PROJECT_ROOT / conf[f"spark.kubernetes.{role}.podTemplateFile"]
        assert template.is_file(), template
        (pod,) = _documents(template)
        container_names = [c["name"] for c in pod["spec"]["containers"]]
        assert conf[f"spark.kubernetes.{role}.podTemplateContainerName"] in container_names
    shipped = [Path(jar.removeprefix("local://")).name for jar in conf["spark.jars"].split(",")]
    expected = [jar.name for jar in spark_connector_jars(PROJECT_ROOT / "infra" / "jars", pyspark_jars_dir())]
    assert shipped == expected  # the same connector jars as a local run, at the image's path


def test_pod_template_configures_shared_storage_redis_and_secrets_as_files() -> None:
    (pod,) = _documents(K8S / "spark" / "pod-template.yaml")
    (container,) = pod["spec"]["containers"]
    env = {item["name"]: item for item in container["env"]}
    state = env["FEATURESTREAM_STACK__STATE_DIR"]["value"]
    mounts = {mount["name"]: mount["mountPath"] for mount in container["volumeMounts"]}
    assert mounts["shared"] == state
    for name in ("SPARK__CHECKPOINT_ROOT", "FEAST__OFFLINE_ROOT", "FEAST__REGISTRY_PATH", "MODELS__REGISTRY_DIR"):
        assert env[f"FEATURESTREAM_{name}"]["value"].startswith(state + "/"), name
    assert env["FEATURESTREAM_FEAST__ONLINE_STORE"]["value"] == "redis"
    assert "secretKeyRef" in env["FEATURESTREAM_FEAST__REDIS_CONNECTION_STRING"]["valueFrom"]
    assert env["FEATURESTREAM_KAFKA__SECURITY__SASL_PASSWORD_FILE"]["value"].startswith(mounts["kafka-user"])
    assert not any("PASSWORD" in name and "value" in item and "FILE" not in name for name, item in env.items())
    volumes = {volume["name"]: volume for volume in pod["spec"]["volumes"]}
    claim = volumes["shared"]["persistentVolumeClaim"]["claimName"]
    (pvc,) = _documents(K8S / "spark" / "shared-storage.yaml")
    assert pvc["metadata"]["name"] == claim and pvc["spec"]["accessModes"] == ["ReadWriteMany"]
    # Every setting the template sets is one featurestream knows (a typo would be silently ignored otherwise).
    settings_env = {
        name: item["value"] for name, item in env.items() if name.startswith("FEATURESTREAM_") and "value" in item
    }
    overrides: dict[str, Any] = {}
    for name, value in settings_env.items():
        section, _, rest = name.removeprefix("FEATURESTREAM_").lower().partition("__")
        target = overrides.setdefault(section, {})
        *parents, leaf = rest.split("__")
        for parent in parents:
            target = target.setdefault(parent, {})
        target[leaf] = value
    Settings(**overrides)


def test_the_driver_may_manage_its_executor_pods() -> None:
    docs = _documents(K8S / "spark" / "rbac.yaml")
    (account,) = _by_kind(docs, "ServiceAccount")
    assert (
        _submit_properties()["spark.kubernetes.authenticate.driver.serviceAccountName"] == account["metadata"]["name"]
    )
    (pod,) = _documents(K8S / "spark" / "pod-template.yaml")
    assert pod["spec"]["serviceAccountName"] == account["metadata"]["name"]
    (role,) = _by_kind(docs, "Role")
    pods = next(rule for rule in role["rules"] if "pods" in rule["resources"])
    assert {"create", "delete", "watch"} <= set(pods["verbs"])
