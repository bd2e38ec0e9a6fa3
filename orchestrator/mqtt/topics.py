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
REPLIES = "replies"  # <prefix>/replies/...: where a command's own reply_to may point under the prefix
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
        a command (a reply to ``cmd/halt`` would halt the daemon); this holds
        for any daemon's ``…/cmd/<verb>``, not only ours. Nor on one of our own
        state or stream topics, whose readers expect that topic's payload
        (``orchestrator status`` would take a reply on ``…/online`` for the
        online flag). And it must be a topic the broker accepts: a character
        it refuses (control characters, non-characters) makes Mosquitto drop
        the daemon's connection, and a lone surrogate cannot be encoded."""
        if topic == self.reply:
            return None
        if not topic or len(topic) > MAX_TOPIC_LENGTH:
            return f"reply_to must have 1 to {MAX_TOPIC_LENGTH} characters"
        if "+" in topic or "#" in topic:
            return "reply_to must not contain wildcards"
        bad = topic_character_problem(topic)
        if bad is not None:
            return f"reply_to {bad}"
        if topic.startswith("$"):
            return "reply_to must not be a broker ($) topic"
        levels = topic.split("/")
        if self.verb_of(topic) is not None or (len(levels) > 1 and levels[-2] == "cmd" and levels[-1] != REPLY_VERB):
            return "reply_to must not be a command topic"
        if topic == self.prefix or (topic.startswith(f"{self.prefix}/") and not topic.startswith(self.replies)):
            return f"reply_to must not be one of the daemon's own topics (use {self.replies}…)"
        return None

    @property
    def replies(self) -> str:
        """Head of the topics under the prefix a ``reply_to`` may name."""
        return f"{self.prefix}/{REPLIES}/"


def topic_character_problem(topic: str) -> str | None:
    """What makes ``topic`` unpublishable, character-wise, or None.

    MQTT topics are UTF-8 without U+0000; Mosquitto also refuses control
    characters (U+0001-U+001F, U+007F-U+009F) and Unicode non-characters,
    closing the publisher's connection; a lone surrogate is no UTF-8 at all."""
    for char in topic:
        code = ord(char)
        if code < 0x20 or 0x7F <= code <= 0x9F:
            return f"must not contain control characters (U+{code:04X})"
        if 0xD800 <= code <= 0xDFFF:
            return f"must be valid Unicode (a lone surrogate U+{code:04X})"
        if 0xFDD0 <= code <= 0xFDEF or code & 0xFFFE == 0xFFFE:
            return f"must not contain Unicode non-characters (U+{code:04X})"
    return None
