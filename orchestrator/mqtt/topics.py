"""The topic tree under one daemon's prefix (default ``orchestrator/<instance>``).

Retained: ``online`` (plain ``online`` / ``offline``, also the last will),
``status`` and ``modules/<name>``. Streams: ``decisions``, ``orders``,
``fills``, ``heartbeat``. Commands arrive on ``cmd/<verb>``; replies go to
``cmd/reply`` unless a command names its own ``reply_to``.
"""

from __future__ import annotations

from dataclasses import dataclass

ONLINE = b"online"
OFFLINE = b"offline"
REPLY_VERB = "reply"
MAX_TOPIC_LENGTH = 256
_UNSAFE_LEVEL = str.maketrans({"/": "_", "+": "_", "#": "_", "\x00": "_"})


@dataclass(frozen=True, slots=True)
class Topics:
    prefix: str
    reply_topic: str | None = None

    @property
    def online(self) -> str:
        return f"{self.prefix}/online"

    @property
    def status(self) -> str:
        return f"{self.prefix}/status"

    @property
    def modules(self) -> str:
        """Filter matching every module health topic."""
        return f"{self.prefix}/modules/#"

    @property
    def heartbeat(self) -> str:
        return f"{self.prefix}/heartbeat"

    @property
    def decisions(self) -> str:
        return f"{self.prefix}/decisions"

    @property
    def orders(self) -> str:
        return f"{self.prefix}/orders"

    @property
    def fills(self) -> str:
        return f"{self.prefix}/fills"

    @property
    def commands(self) -> str:
        """Filter matching every command topic."""
        return f"{self.prefix}/cmd/+"

    @property
    def reply(self) -> str:
        return self.reply_topic or f"{self.prefix}/cmd/{REPLY_VERB}"

    def module(self, name: str, bucket: str, *, single_bucket: bool) -> str:
        """``modules/<name>``; with several buckets ``modules/<bucket>/<name>``,
        since one module name may serve in more than one bucket."""
        leaf = name.translate(_UNSAFE_LEVEL)
        if single_bucket:
            return f"{self.prefix}/modules/{leaf}"
        return f"{self.prefix}/modules/{bucket.translate(_UNSAFE_LEVEL)}/{leaf}"

    def verb_of(self, topic: str) -> str | None:
        """The verb of a command topic, or None for any other topic."""
        head = f"{self.prefix}/cmd/"
        if not topic.startswith(head):
            return None
        verb = topic[len(head) :]
        return verb if verb and "/" not in verb else None

    def reply_problem(self, topic: str) -> str | None:
        """Why ``topic`` may not receive a reply, or None if it may.

        A reply must never land on a command topic: it would be read back as
        a command (a reply to ``cmd/halt`` would halt the daemon)."""
        if not topic or len(topic) > MAX_TOPIC_LENGTH:
            return f"reply_to must have 1 to {MAX_TOPIC_LENGTH} characters"
        if "+" in topic or "#" in topic or "\x00" in topic:
            return "reply_to must not contain wildcards"
        if topic.startswith("$"):
            return "reply_to must not be a broker ($) topic"
        if topic != self.reply and self.verb_of(topic) is not None:
            return "reply_to must not be a command topic"
        return None
