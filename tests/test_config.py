from __future__ import annotations

import pytest

from abuse_stream.config import ConfigError, build_config, load_config


def test_defaults_load_and_are_frozen():
    cfg = build_config({})
    assert cfg.kafka.input_topic == "access-logs" and cfg.kafka.dlq_topic == "access-logs.dlq"
    assert cfg.kafka.verdicts_topic == "abuse.verdicts" and cfg.kafka.ip_lists_topic == "abuse.ip-lists"
    assert set(cfg.detection.bot_types) == {
        "account_takeover",
        "scraping",
        "security_crawlers",
        "resource_consumption",
        "api_abuse",
    }
    with pytest.raises(Exception):  # noqa: B017 - pydantic's frozen error type
        cfg.window.step_s = 1  # type: ignore[misc]


def test_env_overrides_connections_only():
    cfg = build_config(
        {"kafka": {"group_id": "g"}}, env={"KAFKA_BOOTSTRAP_SERVERS": "k:1", "DATABASE_URL": "sqlite://"}
    )
    assert (
        cfg.kafka.bootstrap_servers == "k:1" and cfg.kafka.group_id == "g" and cfg.database.url == "sqlite://"
    )


def test_user_detection_settings_merge_over_the_shipped_defaults():
    cfg = build_config({"detection": {"detectors": {"request_rate": {"factor": 9}}}})
    assert cfg.detection.detectors["request_rate"]["factor"] == 9
    assert cfg.detection.detectors["request_rate"]["floor_rps"] == 2.0


@pytest.mark.parametrize(
    ("data", "key"),
    [
        ({"window": {"step_s": 0}}, "window.step_s"),
        ({"window": {"length_s": 25, "step_s": 10}}, "window"),
        ({"kafka": {"batch_sizee": 3}}, "kafka.batch_sizee"),
        ({"input": {"format": "xml"}}, "input.format"),
        ({"profiles": [{"name": "p", "tolerance": "paranoid"}]}, "profiles.0.tolerance"),
        ({"detection": {"tolerance_levels": {"low": 2}}}, "detection"),
        ({"detection": {"bot_types": {"scraping": {"votes": {"nope": 1}}}}}, "detection"),
    ],
)
def test_bad_config_names_the_key(data, key):
    with pytest.raises(ConfigError, match=f"config key '{key}'"):
        build_config(data)


def test_load_config_reports_unreadable_and_invalid_files(tmp_path):
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(tmp_path / "missing.yaml", env={})
    bad = tmp_path / "bad.yaml"
    bad.write_text("window: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad, env={})
    ok = tmp_path / "ok.yaml"
    ok.write_text("window:\n  step_s: 5\n  length_s: 60\n")
    assert load_config(ok, env={}).window.step_s == 5
    assert load_config(None, env={"ABUSE_STREAM_CONFIG": str(ok)}).window.length_s == 60
