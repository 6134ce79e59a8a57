"""deploy/ cannot be started here (no Docker engine, no cluster): validate it against the code instead."""

from __future__ import annotations

from pathlib import Path

import yaml

from abuse_stream.cli import cli
from abuse_stream.config import build_config

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"
ENV_SETTINGS = {
    "KAFKA_BOOTSTRAP_SERVERS",
    "DATABASE_URL",
}  # what config.build_config reads from the environment


def k8s() -> dict[str, dict]:
    docs = {}
    for f in sorted((DEPLOY / "k8s").glob("*.yaml")):
        for d in yaml.safe_load_all(f.read_text()):
            assert {"apiVersion", "kind", "metadata"} <= set(d), f
            docs[d["kind"]] = d
    return docs


def test_kubernetes_manifests_are_complete_and_consistent():
    docs = k8s()
    assert {"Deployment", "ConfigMap", "Secret", "Job", "PodDisruptionBudget", "Service"} <= set(docs)
    cfg = build_config(
        yaml.safe_load(docs["ConfigMap"]["data"]["abuse.yaml"])
    )  # the shipped config validates
    assert set(docs["Secret"]["stringData"]) == ENV_SETTINGS
    dep = docs["Deployment"]["spec"]["template"]["spec"]
    (c,) = dep["containers"]
    assert c["args"][0] in cli.commands and c["args"][0] == "run"
    assert docs["Job"]["spec"]["template"]["spec"]["containers"][0]["args"][0] == "migrate"
    assert c["ports"][0]["containerPort"] == cfg.metrics.port == docs["Service"]["spec"]["ports"][0]["port"]
    assert dep["terminationGracePeriodSeconds"] >= 30
    images = {c["image"], docs["Job"]["spec"]["template"]["spec"]["containers"][0]["image"]}
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    assert images == {compose["services"]["analyzer"]["image"]}
    sel = docs["Deployment"]["spec"]["selector"]["matchLabels"]
    assert (
        docs["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"]
        == sel
        == docs["Service"]["spec"]["selector"]
    )


def test_compose_file_runs_kafka_postgres_a_migration_and_three_analyzers():
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    s = compose["services"]
    assert {"kafka", "postgres", "migrate", "analyzer"} <= set(s)
    assert s["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"  # KRaft, no ZooKeeper
    assert s["analyzer"]["deploy"]["replicas"] == 3
    assert ENV_SETTINGS <= set(s["analyzer"]["environment"]) and "DATABASE_URL" in s["migrate"]["environment"]
    assert s["migrate"]["command"] == ["migrate"] and s["analyzer"]["command"][0] == "run"
    assert s["analyzer"]["stop_signal"] == "SIGTERM"
    build_config(yaml.safe_load((DEPLOY / "abuse.yaml").read_text()))


def test_dockerfile_installs_the_package_and_runs_the_service():
    text = (DEPLOY / "Dockerfile").read_text()
    assert "COPY migrations" in text and 'ENTRYPOINT ["abuse-stream"]' in text and '"run"' in text
    assert "USER" in text  # not root
