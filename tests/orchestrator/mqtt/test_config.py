"""The ``mqtt:`` configuration section: URLs, secrets, the embedded broker, env overrides."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from pydantic import ValidationError

from orchestrator.config.loader import load_config
from orchestrator.errors import ConfigError
from orchestrator.mqtt.config import EMBEDDED_DEFAULT_PORT, MqttConfig, parse_broker_url
from orchestrator.mqtt.connection import Backoff, password_from

DEFAULT_PROFILE = Path(__file__).resolve().parents[3] / "config" / "default.yaml"


@pytest.mark.parametrize(
    ("url", "host", "port", "tls", "user"),
    [
        ("mqtt://broker", "broker", 1883, False, None),
        ("mqtt://127.0.0.1:1884", "127.0.0.1", 1884, False, None),
        ("mqtts://daemon@broker.example", "broker.example", 8883, True, "daemon"),
        ("mqtts://da%40emon@broker.example:9999/", "broker.example", 9999, True, "da@emon"),
    ],
)
def test_broker_urls(url, host, port, tls, user):
    address = parse_broker_url(url)
    assert (address.host, address.port, address.tls, address.username) == (host, port, tls, user)


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://broker", "mqtt:// or mqtts://"),
        ("mqtt://user:secret@broker", "password does not belong in the URL"),
        ("mqtt://", "no host"),
        ("mqtt://broker:99999", "out of range"),
        ("mqtt://broker/topic", "only scheme, user, host and port"),
    ],
)
def test_bad_broker_urls_are_refused_with_the_reason(url, problem):
    with pytest.raises(ValidationError, match=problem):
        MqttConfig(url=url)


def test_no_url_means_the_embedded_broker_and_it_must_be_enabled():
    with pytest.raises(ValidationError, match=r"set mqtt\.url, or enable mqtt\.embedded_broker"):
        MqttConfig()
    config = MqttConfig(embedded_broker={"enabled": True})
    assert config.uses_embedded_broker
    assert config.broker().url == f"mqtt://127.0.0.1:{EMBEDDED_DEFAULT_PORT}"
    assert config.mqtt_protocol() == "3.1.1"
    external = MqttConfig(url="mqtt://h", embedded_broker={"enabled": True})
    assert not external.uses_embedded_broker
    assert external.mqtt_protocol() == "5"


def test_the_embedded_broker_stays_on_loopback_and_speaks_3_1_1():
    with pytest.raises(ValidationError, match="loopback"):
        MqttConfig(embedded_broker={"enabled": True, "host": "0.0.0.0"})
    assert MqttConfig(embedded_broker={"enabled": True, "host": "::1"}).broker().host == "::1"
    with pytest.raises(ValidationError, match=r"3\.1\.1 only"):
        MqttConfig(embedded_broker={"enabled": True}, protocol="5")


def test_tls_settings_need_mqtts_and_a_key_with_a_certificate(tmp_path):
    with pytest.raises(ValidationError, match="need an mqtts:// URL"):
        MqttConfig(url="mqtt://h", tls={"ca_file": tmp_path / "ca.pem"})
    with pytest.raises(ValidationError, match="cert_file and key_file go together"):
        MqttConfig(url="mqtts://h", tls={"cert_file": tmp_path / "c.pem"})


def test_unknown_keys_and_wildcard_prefixes_are_refused():
    with pytest.raises(ValidationError, match="extra"):
        MqttConfig(url="mqtt://h", hostname="x")
    with pytest.raises(ValidationError, match="wildcards"):
        MqttConfig(url="mqtt://h", topic_prefix="a/#")
    assert MqttConfig(url="mqtt://h").prefix_for("box") == "orchestrator/box"
    assert MqttConfig(url="mqtt://h").client_id_for("box") == "orchestrator-box"


def test_the_password_comes_from_the_environment_only(tmp_path):
    config = MqttConfig(url="mqtt://daemon@h")
    assert password_from(config, {"ORCHESTRATOR_MQTT_PASSWORD": "s3cret"}) == "s3cret"
    assert password_from(config, {}) is None
    profile = tmp_path / "p.yaml"
    profile.write_text("symbols: [X]\nmqtt:\n  url: mqtt://h\n  password: s3cret\n")
    with pytest.raises(ConfigError, match="secrets come from the environment only"):
        load_config(profile, env={})


def test_the_default_profile_hosts_a_broker_and_an_env_url_replaces_it():
    default = load_config(DEFAULT_PROFILE, env={}).config.mqtt
    assert default is not None
    assert default.uses_embedded_broker
    assert default.broker().port == EMBEDDED_DEFAULT_PORT != 1883
    env = {"ORCHESTRATOR__MQTT__URL": "mqtt://127.0.0.1:1884"}
    overridden = load_config(DEFAULT_PROFILE, env=env).config.mqtt
    assert overridden is not None
    assert not overridden.uses_embedded_broker
    assert overridden.broker().port == 1884


def test_a_profile_without_mqtt_has_none(tmp_path):
    profile = tmp_path / "p.yaml"
    profile.write_text("symbols: [X]\n")
    assert load_config(profile, env={}).config.mqtt is None


def test_backoff_grows_to_its_cap_with_jitter_and_resets():
    backoff = Backoff(0.5, 8.0, random.Random(1))
    delays = [backoff.next_delay() for _ in range(12)]
    assert all(0.25 <= d <= 8.0 for d in delays)
    assert max(delays[6:]) > 2.0  # it grew
    assert len(set(delays)) == len(delays)  # jittered
    backoff.reset()
    assert backoff.next_delay() <= 0.5
