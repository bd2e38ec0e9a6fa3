"""Commands arriving on ``<prefix>/cmd/<verb>``: parse, refuse, dedupe, execute.

Each verb has a strict body model (unknown keys are an error); every body
carries an ``id`` and may name a ``reply_to`` topic. Bodies are strict JSON:
no repeated keys (which one would win is the parser's choice, not the
sender's), no ``NaN`` / ``Infinity`` or numbers beyond a float's range, no
lone surrogates (``"\\ud800"`` is no Unicode text), at most ``MAX_DEPTH``
levels deep. The handler never raises: a bad verb or body gets an error
reply, a retained message is ignored (it would otherwise run again on every
reconnect), and an id seen before (or still running) is not executed again
(QoS 1 may deliver twice) but gets the first reply, marked ``duplicate``.
Execution goes through ``DaemonControl``, so MQTT commands mean exactly what
the other command channels mean, and its ``CommandResult`` (ok, message,
data) is passed on in the reply unchanged.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import structlog
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from orchestrator.control import CommandResult, DaemonControl, is_text
from orchestrator.mqtt import payloads
from orchestrator.mqtt.topics import Topics
from orchestrator.strict_json import MAX_DEPTH, RepeatedKeys, decode_strict_json

log = structlog.get_logger("orchestrator.mqtt")

_ID = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$"
_NAME = r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$"
_KEY = r"^[A-Za-z_][A-Za-z0-9_]{0,127}$"
MAX_ID_LENGTH = 128
INTERRUPTED = "cut off before it finished (a stop or a lost connection): its outcome is unknown, check the status"


class CommandBody(BaseModel):
    """What every command carries."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=_ID, description="unique per command; a repeated id is not executed again")
    reply_to: str | None = Field(None, description="topic for the reply (default: <prefix>/cmd/reply)")


class ReasonBody(CommandBody):
    reason: str | None = Field(None, max_length=200, description="recorded in the daemon's log")


class ModuleBody(CommandBody):
    action: Literal["enable", "disable", "reload"]
    name: str | None = Field(None, pattern=_NAME, description="module instance; reload without one: every module")

    @model_validator(mode="after")
    def _name_needed(self) -> ModuleBody:
        if self.name is None and self.action != "reload":
            raise ValueError(f"'{self.action}' needs the module's name")
        return self


class SetParamBody(CommandBody):
    module: str = Field(pattern=_NAME)
    key: str = Field(pattern=_KEY)
    value: Any = Field(description="any JSON value; the module's parameter schema validates it")

    @model_validator(mode="before")
    @classmethod
    def _value_present(cls, data: Any) -> Any:
        if isinstance(data, dict) and "value" not in data:
            raise ValueError("'value' is required (it may be null)")
        return data


VERBS: Mapping[str, type[CommandBody]] = {
    "status": CommandBody,
    "pause": ReasonBody,
    "resume": ReasonBody,
    "reduce": ReasonBody,
    "halt": ReasonBody,
    "module": ModuleBody,
    "set-param": SetParamBody,
}


@dataclass(frozen=True, slots=True)
class CommandReply:
    """The answer to one command, published to its reply topic."""

    topic: str
    id: str | None
    verb: str
    ok: bool
    message: str
    data: Mapping[str, Any] = field(default_factory=dict)
    duplicate: bool = False

    def payload(self, instance: str) -> bytes:
        return payloads.encode(
            payloads.stamped(
                "reply",
                {
                    "instance": instance,
                    "id": self.id,
                    "verb": self.verb,
                    "ok": self.ok,
                    "message": self.message,
                    "data": self.data,
                    "duplicate": self.duplicate,
                },
            )
        )


def _problems(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error["loc"])
        parts.append(f"{where}: {error['msg']}" if where else str(error["msg"]))
    return "; ".join(parts)


class CommandHandler:
    """Turns command messages into ``DaemonControl`` calls and replies."""

    def __init__(self, control: DaemonControl, topics: Topics, *, max_payload_bytes: int, remember_ids: int) -> None:
        self.control = control
        self.topics = topics
        self.max_payload_bytes = max_payload_bytes
        self.remember_ids = remember_ids
        self._seen: OrderedDict[str, CommandReply] = OrderedDict()
        self._running: dict[str, asyncio.Future[CommandReply]] = {}  # ids being executed now
        self.executed = 0
        self.refused = 0

    async def handle(self, verb: str, payload: bytes, *, retained: bool) -> CommandReply | None:
        """The reply to send, or None when the message is to be ignored."""
        if retained:
            log.warning("mqtt_command_retained_ignored", verb=verb, hint="clear it: publish an empty retained message")
            return None
        body = self._parse(verb, payload)
        if isinstance(body, CommandReply):
            self.refused += 1
            log.warning("mqtt_command_refused", verb=verb, id=body.id, error=body.message)
            return body
        topic = body.reply_to or self.topics.reply
        earlier = self._seen.get(body.id)
        running = self._running.get(body.id)
        if earlier is None and running is not None:
            # The same id again while the first is still executing (a module
            # change takes a while): it waits for the first's reply.
            await asyncio.wait([running])
            earlier = running.result()
        if earlier is not None:
            log.info("mqtt_command_duplicate", verb=verb, id=body.id, first_verb=earlier.verb)
            return dataclasses.replace(earlier, topic=topic, duplicate=True)
        done: asyncio.Future[CommandReply] = asyncio.get_running_loop().create_future()
        self._running[body.id] = done
        # Cancelled midway (the daemon stops, the connection drops), the command
        # may have changed something: the id must not run again either.
        reply = CommandReply(topic, body.id, verb, False, INTERRUPTED)
        try:
            try:
                result = await self._execute(verb, body)
            except Exception as exc:  # a failing command must answer, never kill the channel
                log.exception("mqtt_command_failed", verb=verb, id=body.id)
                result = CommandResult(False, f"internal error: {type(exc).__name__}: {exc}")
            reply = CommandReply(topic, body.id, verb, result.ok, result.message, payloads.jsonable(result.data))
        finally:
            self._remember(reply)
            del self._running[body.id]
            done.set_result(reply)
        self.executed += 1
        log.info("mqtt_command", verb=verb, id=body.id, ok=result.ok, message=result.message)
        return reply

    def _parse(self, verb: str, payload: bytes) -> CommandBody | CommandReply:
        """The validated body, or the error reply that refuses it."""

        def refuse(message: str, raw: object = None) -> CommandReply:
            echo_id, topic = self._salvage(raw)
            return CommandReply(topic, echo_id, verb, False, message)

        if len(payload) > self.max_payload_bytes:
            return refuse(f"body of {len(payload)} bytes exceeds the limit of {self.max_payload_bytes}")
        try:
            raw, problems = decode_strict_json(payload)
        except UnicodeDecodeError as exc:
            return refuse(f"body is not JSON (not UTF-8): {exc}")
        except RecursionError:
            return refuse(f"body is not acceptable JSON: nested more than {MAX_DEPTH} levels deep")
        except ValueError as exc:
            return refuse(f"body is not JSON: {exc}")
        if not isinstance(raw, dict):
            return refuse("body must be a JSON object with at least an 'id'")
        if problems:
            return refuse("body is not acceptable JSON: " + "; ".join(problems), raw)
        model = VERBS.get(verb)
        if model is None:
            return refuse(f"unknown verb {verb!r} (known: {', '.join(VERBS)})", raw)
        try:
            body = model.model_validate(raw)
        except ValidationError as exc:
            return refuse(f"invalid body: {_problems(exc)}", raw)
        if body.reply_to is not None:
            problem = self.topics.reply_problem(body.reply_to)
            if problem is not None:
                return refuse(problem, {"id": body.id})
        return body

    def _salvage(self, raw: object) -> tuple[str | None, str]:
        """The id and reply topic of a refused body, when they are usable."""
        if not isinstance(raw, dict):
            return None, self.topics.reply
        raw_id = raw.get("id")
        echo_id: str | None = None
        if isinstance(raw_id, str) and len(raw_id) <= MAX_ID_LENGTH and is_text(raw_id):
            # Not when the body named two ids: which one it meant is unknown.
            echo_id = None if isinstance(raw, RepeatedKeys) and "id" in raw.repeated else raw_id
        reply_to = raw.get("reply_to")
        if isinstance(reply_to, str) and self.topics.reply_problem(reply_to) is None:
            return echo_id, reply_to
        return echo_id, self.topics.reply

    def _remember(self, reply: CommandReply) -> None:
        assert reply.id is not None
        self._seen[reply.id] = reply
        while len(self._seen) > self.remember_ids:
            self._seen.popitem(last=False)

    async def _execute(self, verb: str, body: CommandBody) -> CommandResult:
        control = self.control
        if isinstance(body, ReasonBody):
            reason = f"mqtt {body.id}: {body.reason or 'operator'}"
            if verb == "pause":
                return control.pause(reason)
            if verb == "resume":
                return control.resume(reason)
            if verb == "reduce":
                return control.reduce(reason)
            return control.halt(reason)
        if isinstance(body, ModuleBody):
            if body.action == "reload":
                return await control.module_reload(body.name)
            assert body.name is not None
            if body.action == "enable":
                return await control.module_enable(body.name)
            return await control.module_disable(body.name)
        if isinstance(body, SetParamBody):
            return await control.set_param(body.module, body.key, body.value)
        return control.status()
