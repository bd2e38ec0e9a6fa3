"""Payloads of a daemon that has not traded yet: "not yet" is null, never a number that looks measured."""

from __future__ import annotations

import dataclasses
import json

from orchestrator.config.loader import load_config
from orchestrator.control import status_payload
from orchestrator.daemon import Daemon
from orchestrator.mqtt import payloads


def test_a_fresh_daemon_reports_no_times_and_no_latencies(kit):
    daemon = Daemon(load_config(kit.config(None), env={}))
    status = json.loads(payloads.encode(payloads.status_message(status_payload(daemon), {"connected": False})))
    assert status["last_event_ts"] is None
    assert status["last_decision_ts"] is None
    assert status["order_latency_us"] == {"p50": None, "p99": None}
    assert status["counters"]["events"] == 0
    (snapshot,) = daemon.engine.module_health()
    fresh = payloads.module_message(snapshot)
    assert snapshot.calls == 0
    assert (fresh["latency_us"]["p50"], fresh["latency_us"]["p99"]) == (None, None)
    assert fresh["latency_us"]["budget"] > 0
    called = payloads.module_message(dataclasses.replace(snapshot, calls=3, latency_p50_us=4.123, latency_p99_us=9.0))
    assert (called["latency_us"]["p50"], called["latency_us"]["p99"]) == (4.12, 9.0)
