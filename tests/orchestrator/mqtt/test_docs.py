"""The README's MQTT section against the real thing: every payload example has
the fields a running daemon publishes, and the ACL shown is the one the tests run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[3]
README = REPO / "README.md"
SECTION = "## Status and control over MQTT"
PREFIX = "orchestrator/t1"
DATA_MAPS = frozenset({"positions", "contributions", "data"})  # keyed by symbols, modules, results


def mqtt_section() -> str:
    """The README's MQTT section: from its heading to the next top-level one."""
    text = README.read_text()
    start = text.index(SECTION)
    end = text.find("\n## ", start + len(SECTION))
    return text[start : end if end >= 0 else len(text)]


def code_blocks(language: str) -> list[str]:
    """The fenced blocks of the MQTT section marked ``language`` ('' for unmarked ones)."""
    blocks: list[str] = []
    current: list[str] | None = None
    wanted = False
    for line in mqtt_section().splitlines():
        if line.startswith("```"):
            if current is None:
                current, wanted = [], line[3:].strip() == language
            else:
                if wanted:
                    blocks.append("\n".join(current))
                current = None
        elif current is not None:
            current.append(line)
    assert current is None, "an unclosed code block"
    return blocks


def documented_payloads() -> dict[str, dict[str, Any]]:
    """Every JSON object in the document's json blocks, by kind (orders by kind/event)."""
    decoder = json.JSONDecoder()
    found: dict[str, dict[str, Any]] = {}
    for block in code_blocks("json"):
        position = 0
        while block[position:].strip():
            position += len(block[position:]) - len(block[position:].lstrip())
            body, position = decoder.raw_decode(block, position)
            kind = body["kind"] if body["kind"] != "order" else f"order/{body['event']}"
            found[kind] = body
    return found


def fields(value: Any) -> Any:
    """The nested key structure of a payload, values left out."""
    if not isinstance(value, dict):
        return None
    return {key: {} if key in DATA_MAPS else fields(inner) for key, inner in value.items()}


async def test_every_documented_payload_has_the_fields_the_daemon_publishes(mosquitto, kit, subscribe):
    documented = documented_payloads()
    assert set(documented) == {"status", "module", "decision", "order/intent", "fill", "heartbeat", "reply"}
    published: dict[str, Any] = {}
    async with (
        kit.run(kit.config(kit.mqtt(mosquitto))),
        subscribe(mosquitto.port, f"{PREFIX}/#") as watcher,
    ):
        for kind in ("status", "module", "decision", "order/intent", "fill", "heartbeat"):
            message = await watcher.wait_for(lambda m, kind=kind: kind == kind_of(m))
            published[kind] = message.json()
        published["reply"] = await watcher.command(PREFIX, "pause", {"id": "doc-1"})
    for kind, body in documented.items():
        assert body["schema"] == published[kind]["schema"] == 1, kind
        assert fields(body) == fields(published[kind]), kind


def kind_of(message: Any) -> str | None:
    if not message.payload.startswith(b"{"):
        return None
    body = message.json()
    return body["kind"] if body["kind"] != "order" else f"order/{body['event']}"


def test_the_documented_acl_is_the_one_the_tests_run():
    acl = REPO / "config" / "mosquitto" / "acl"
    rules = [line for line in acl.read_text().splitlines() if line.strip() and not line.startswith("#")]
    shown = [b.splitlines() for b in code_blocks("") if b.startswith("user ")]
    assert len(shown) == 1
    assert [line for line in shown[0] if line.strip()] == rules
