"""Logging: one strict JSON object per line (journald + jq), library records included, and
journald priorities when the stream is the journal."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import sys
import threading
import warnings
from pathlib import Path

import pytest
import structlog

from orchestrator.daemon import LogListener
from orchestrator.logs import configure_logging, is_journal_stream
from orchestrator.orders import OrderIntent, OrderType, Side


@pytest.fixture(autouse=True)
def restore_logging():
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    hooks = sys.excepthook, threading.excepthook
    yield
    sys.excepthook, threading.excepthook = hooks
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)
    logging.captureWarnings(False)
    structlog.reset_defaults()


def json_lines(text: str) -> list[dict]:
    lines = text.splitlines()
    assert lines, "nothing was logged"
    parsed = [json.loads(line) for line in lines]  # strict: NaN or a traceback line would fail here
    assert all(isinstance(entry, dict) for entry in parsed)
    return parsed


def test_every_source_renders_as_one_json_line(monkeypatch):
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    stream = io.StringIO()
    configure_logging("info", "auto", stream)  # a StringIO is not a terminal: JSON
    log = structlog.get_logger("orchestrator.test")
    log.info("plain", count=3, ratio=float("nan"), limits=[1.0, float("inf")])
    log.debug("filtered out")
    try:
        raise ValueError("bad\nthing")
    except ValueError:
        log.exception("failed", trace_id="t-1")
    logging.getLogger("asyncio").warning("library says %s", "hi")
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.warn("old api\nsecond line", DeprecationWarning, stacklevel=1)
    entries = json_lines(stream.getvalue())
    assert [e["event"] for e in entries[:3]] == ["plain", "failed", "library says hi"]
    plain, failed, library, warned = entries
    assert list(plain)[:4] == ["timestamp", "level", "logger", "event"]
    assert plain["logger"] == "orchestrator.test"
    assert plain["ratio"] == "nan"
    assert plain["limits"] == [1.0, "inf"]
    assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z$", plain["timestamp"])
    assert failed["level"] == "error"
    assert failed["trace_id"] == "t-1"
    assert "ValueError: bad\nthing" in failed["exception"]
    assert library["level"] == "warning"
    assert library["logger"] == "asyncio"
    assert warned["logger"] == "py.warnings"
    assert "old api" in warned["event"]


def test_uncaught_exceptions_are_json_lines_too(monkeypatch):
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    stream = io.StringIO()
    configure_logging("info", "json", stream)

    def crash() -> None:
        raise RuntimeError("writer\nbroke")

    worker = threading.Thread(target=crash, name="journal-writer")
    worker.start()
    worker.join()
    try:
        raise KeyError("escaped")
    except KeyError:
        sys.excepthook(*sys.exc_info())  # what the interpreter calls for an exception nobody caught
    in_thread, in_main = json_lines(stream.getvalue())  # strict: a raw traceback line would fail here
    assert in_thread["event"] == in_main["event"] == "uncaught_exception"
    assert in_thread["level"] == "critical"
    assert in_thread["thread"] == "journal-writer"
    assert "RuntimeError: writer\nbroke" in in_thread["exception"]
    assert in_main["thread"] is None
    assert "KeyError: 'escaped'" in in_main["exception"]


def test_a_terminal_keeps_pythons_own_tracebacks(monkeypatch):
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    before = sys.excepthook, threading.excepthook
    configure_logging("info", "console", io.StringIO())
    assert (sys.excepthook, threading.excepthook) == before


def test_order_events_carry_their_trace_id(monkeypatch):
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    stream = io.StringIO()
    configure_logging("info", "json", stream)
    intent = OrderIntent(
        client_order_id="o-1",
        trace_id="tr-42",
        ts=1,
        venue="paper",
        symbol="BTC/USDT",
        side=Side.BUY,
        quantity=0.5,
        order_type=OrderType.MARKET,
    )
    LogListener().on_order_intent(intent)
    (entry,) = json_lines(stream.getvalue())
    assert entry["event"] == "order_intent"
    assert entry["trace_id"] == "tr-42"
    assert entry["client_order_id"] == "o-1"


def test_the_journal_stream_gets_syslog_priorities(tmp_path: Path, monkeypatch):
    path = tmp_path / "journal"
    with path.open("w") as stream:
        stat = os.fstat(stream.fileno())
        monkeypatch.setenv("JOURNAL_STREAM", f"{stat.st_dev}:{stat.st_ino}")
        assert is_journal_stream(stream)
        configure_logging("debug", "auto", stream)
        log = structlog.get_logger("orchestrator.test")
        log.debug("d")
        log.info("i")
        log.warning("w")
        log.error("e")
    lines = path.read_text().splitlines()
    assert [line[:3] for line in lines] == ["<7>", "<6>", "<4>", "<3>"]
    assert [json.loads(line[3:])["event"] for line in lines] == ["d", "i", "w", "e"]


def test_another_stream_under_systemd_is_json_without_priorities(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("JOURNAL_STREAM", "1:2")  # some other file is the journal
    stream = io.StringIO()
    assert not is_journal_stream(stream)
    configure_logging("info", "auto", stream)
    structlog.get_logger("t").info("hello")
    assert json.loads(stream.getvalue())["event"] == "hello"


def test_console_format_is_for_people(monkeypatch):
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    stream = io.StringIO()
    configure_logging("info", "console", stream)
    structlog.get_logger("t").info("hello", symbol="BTC/USDT")
    text = stream.getvalue()
    assert "hello" in text
    assert "symbol" in text
    with pytest.raises(json.JSONDecodeError):
        json.loads(text)


def test_the_console_rounds_floats_and_json_keeps_every_digit(monkeypatch):
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    fields = {"quantity": 1 / 30, "price": 60012.345678912, "sums": {"fee": 0.1 + 0.2}, "marks": [2 / 3], "n": 3}
    console = io.StringIO()
    configure_logging("info", "console", console)
    structlog.get_logger("t").info("fill", ratio=float("nan"), **fields)
    text = console.getvalue()
    assert "quantity=0.033333333 " in text
    assert "price=60012.346 " in text
    assert "{'fee': 0.3}" in text
    assert "[0.66666667]" in text
    assert "n=3" in text
    assert "ratio=nan" in text
    assert "0.0333333333333" not in text
    assert "0.30000000000000004" not in text
    machine = io.StringIO()
    configure_logging("info", "json", machine)
    structlog.get_logger("t").info("fill", **fields)
    (entry,) = json_lines(machine.getvalue())
    assert (entry["quantity"], entry["price"], entry["sums"]["fee"]) == (1 / 30, 60012.345678912, 0.1 + 0.2)


def test_watchfiles_change_notices_stay_out_of_an_info_log(tmp_path: Path, monkeypatch):
    import watchfiles

    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    stream = io.StringIO()
    configure_logging("info", "json", stream)
    stop = threading.Event()
    give_up = threading.Timer(20.0, stop.set)
    edit = threading.Timer(0.3, (tmp_path / "module.py").write_text, args=("x = 1\n",))
    seen: list[set] = []
    give_up.start()
    edit.start()
    try:
        for changes in watchfiles.watch(tmp_path, debounce=50, step=10, stop_event=stop, rust_timeout=1_000):
            seen.append(changes)
            break
    finally:
        edit.cancel()
        give_up.cancel()
    assert seen, "the edit was not seen"
    structlog.get_logger("orchestrator.test").info("after")
    logging.getLogger("watchfiles.main").warning("watch stopped")  # its warnings still get through
    assert [entry["event"] for entry in json_lines(stream.getvalue())] == ["after", "watch stopped"]
