"""The writing page's WebSocket protocol, v1 (docs/protocol.md): frame parsing and error codes.

Parsing is pure: each client frame type has a parser that returns its validated fields or
raises :class:`ProtocolError`. Rules that need the database (busy, rating due, ...) are
checked by the services and reported with the same error frame.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

from django.conf import settings

PROTOCOL_VERSION = "v1"

# Close codes for connections refused at the door (the error frame before the close says why).
CLOSE_UNAUTHORIZED = 4401  # forged, expired or foreign token, or another study's URL
CLOSE_NOT_WRITING = 4409  # the participation is not on the writing step (any more)
CLOSE_UNAVAILABLE = 1013  # "try again later": the database cannot be reached
CLOSE_RATE_LIMITED = 4429  # too many sockets opened from one address: reconnect after retry_after

ERROR_CODES = {
    "unauthorized": "The link is not valid for this study; reload the page from your platform.",
    "not_writing": "This chat has ended.",
    "unavailable": "The study is briefly unavailable; the page will reconnect.",
    "rate_limited": "Too many connections from your network; the page will reconnect shortly.",
    "bad_json": "Frames must be JSON objects sent as text.",
    "frame_too_large": "The frame is larger than the server accepts.",
    "unknown_type": "Unknown frame type.",
    "bad_field": "A field is missing or has the wrong type.",
    "hello_required": "Send hello first.",
    "message_empty": "The message is empty.",
    "message_too_long": "The message is too long.",
    "busy": "The assistant is still replying.",
    "rating_required": "Please rate the conversation before sending another message.",
    "retry_required": "The last reply did not arrive; retry it before sending.",
    "nothing_to_retry": "There is no failed reply to retry.",
    "not_generating": "No reply is being generated.",
    "bad_rating": "That rating is not accepted.",
    "max_turns": "The chat has reached its maximum number of messages.",
    "doc_too_long": "The document is too long.",
    "choice_required": "Please pick one of the two replies first.",
    "nothing_to_choose": "There are no replies to pick from.",
    "bad_choice": "That reply is not one of the candidates.",
    "nothing_to_regenerate": "There is no reply to regenerate yet.",
    "not_regenerable": "This reply cannot be regenerated.",
    "regenerate_limit": "This reply cannot be regenerated any more.",
    "server_error": "Something went wrong on our side; please try again.",
}

_CLIENT_MSG_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
# Characters PostgreSQL cannot store (NUL) or UTF-8 cannot encode (an unpaired surrogate).
_UNSTORABLE = re.compile(r"[\x00\ud800-\udfff]")
# Their JSON escapes: a frame whose text has none (nor a raw surrogate) needs no string scan.
_UNSTORABLE_ESCAPE = re.compile(r"\\u(?:0000|[dD][89a-fA-F])")
# The largest value of a PostgreSQL integer column (turns, rating values).
DB_INT_MAX = 2**31 - 1
# Editor events of one doc frame, each a flat object (docs/protocol.md, section 3).
MAX_EDIT_EVENTS = 2000
MAX_EDIT_FIELDS = 16
MAX_EDIT_NAME_CHARS = 64
_EDIT_VALUE_TYPES = frozenset({str, int, float, bool, type(None)})
_CONTAINER_TYPES = frozenset({dict, list})


class ProtocolError(Exception):
    def __init__(self, code: str, message: str = "", *, field: str | None = None) -> None:
        super().__init__(message or ERROR_CODES[code])
        self.code = code
        self.message = message or ERROR_CODES[code]
        self.field = field


def error_frame(
    code: str, message: str = "", *, of: str | None = None, field: str | None = None, **extra: Any
) -> dict[str, Any]:
    frame: dict[str, Any] = {"type": "error", "code": code, "message": message or ERROR_CODES[code]}
    if of:
        frame["of"] = of
    if field:
        frame["field"] = field
    return {**frame, **extra}


def decode(text: str | None, data: bytes | None) -> dict[str, Any]:
    """The JSON object in a text frame, within the size and depth limits, with no string (or
    key) that cannot be stored."""
    if text is None:
        raise ProtocolError("bad_json", "Frames must be sent as text, not binary.")
    limit = settings.MAX_WS_FRAME_BYTES
    if len(text) > limit or (
        len(text) * 4 > limit and len(text.encode("utf-8", "surrogatepass")) > limit
    ):
        raise ProtocolError("frame_too_large", f"Frames are limited to {limit} bytes.")
    try:
        frame = json.loads(text, parse_constant=_no_constant, parse_float=_finite)
    except RecursionError as exc:
        raise _too_deep() from exc
    except ValueError as exc:
        raise ProtocolError("bad_json", "The frame is not valid JSON.") from exc
    if not isinstance(frame, dict):
        raise ProtocolError("bad_json", "A frame must be a JSON object.")
    # Every bracket could open one more level: a frame with few of them needs no walk.
    if text.count("[") + text.count("{") > settings.MAX_FRAME_DEPTH:
        _depth_check(frame)
    if _may_hold_unstorable(text):
        _unstorable_check(frame)
    if not isinstance(frame.get("type"), str):
        raise ProtocolError("bad_field", "Every frame needs a string 'type'.", field="type")
    return frame


def _no_constant(name: str) -> float:
    raise ProtocolError("bad_json", f"{name} is not a number a frame may hold.")


def _finite(literal: str) -> float:
    value = float(literal)
    if not math.isfinite(value):  # e.g. 1e400: the database's JSON has no infinity
        raise ProtocolError("bad_json", f"{literal} is too large a number.")
    return value


def _too_deep() -> ProtocolError:
    depth = settings.MAX_FRAME_DEPTH
    return ProtocolError("bad_json", f"Frames may nest objects and lists {depth} levels deep.")


def _depth_check(frame: dict[str, Any]) -> None:
    """Refuse a frame nested deeper than ``MAX_FRAME_DEPTH``, walked level by level (no
    recursion), looking into a container only when it holds containers."""
    level: list[Any] = [frame]
    for _ in range(settings.MAX_FRAME_DEPTH):
        deeper: list[Any] = []
        for value in level:
            items = value.values() if type(value) is dict else value
            if not _CONTAINER_TYPES.isdisjoint(map(type, items)):
                deeper.extend(item for item in items if type(item) in _CONTAINER_TYPES)
        if not deeper:
            return
        level = deeper
    raise _too_deep()


def _may_hold_unstorable(text: str) -> bool:
    """Whether the frame could decode to a NUL or an unpaired surrogate: only through an
    escape (a raw NUL is not valid JSON) or a raw surrogate, which ASCII text cannot hold."""
    if "\\u" in text and _UNSTORABLE_ESCAPE.search(text):
        return True
    if text.isascii():
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _unstorable_check(frame: dict[str, Any]) -> None:
    """Refuse NUL characters and unpaired surrogates anywhere in the frame, keys included,
    naming the top-level field that holds one."""
    for key, value in frame.items():
        if _UNSTORABLE.search(key) or _holds_unstorable(value):
            name = _UNSTORABLE.sub("\ufffd", key)
            raise ProtocolError(
                "bad_field",
                f"'{name}' holds a character that is not accepted (NUL or an unpaired surrogate).",
                field=name,
            )


def _holds_unstorable(value: Any) -> bool:
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if _UNSTORABLE.search(item):
                return True
        elif isinstance(item, dict):
            pending.extend(item)
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return False


def _int(
    frame: dict[str, Any], name: str, *, minimum: int | None = None, maximum: int = DB_INT_MAX
) -> int:
    value = frame.get(name)
    if not isinstance(value, int) or isinstance(value, bool):
        raise ProtocolError("bad_field", f"'{name}' must be a whole number.", field=name)
    if minimum is not None and value < minimum:
        raise ProtocolError("bad_field", f"'{name}' must be at least {minimum}.", field=name)
    if value > maximum:
        raise ProtocolError("bad_field", f"'{name}' must be at most {maximum}.", field=name)
    return value


def _optional_bool(frame: dict[str, Any], name: str, default: bool | None) -> bool | None:
    value = frame.get(name, default)
    if value is not None and not isinstance(value, bool):
        raise ProtocolError("bad_field", f"'{name}' must be true or false.", field=name)
    return value


@dataclass(frozen=True)
class Hello:
    last_seq: int | None
    focused: bool
    epoch: str | None = None  # of ``last_seq``, as the page last heard it


EPOCH_MAX_CHARS = 64


def parse_hello(frame: dict[str, Any]) -> Hello:
    last_seq = None
    if frame.get("last_seq") is not None:
        last_seq = _int(frame, "last_seq", minimum=0, maximum=2**63 - 1)  # a Redis counter
    epoch = frame.get("epoch")
    if epoch is not None and not (isinstance(epoch, str) and len(epoch) <= EPOCH_MAX_CHARS):
        raise ProtocolError("bad_field", "'epoch' must be a short string or null.", field="epoch")
    focused = bool(_optional_bool(frame, "focused", True))
    return Hello(last_seq=last_seq, focused=focused, epoch=epoch)


@dataclass(frozen=True)
class Send:
    text: str
    client_msg_id: str


def parse_send(frame: dict[str, Any]) -> Send:
    text = frame.get("text")
    if not isinstance(text, str):
        raise ProtocolError("bad_field", "'text' must be a string.", field="text")
    if not text.strip():
        raise ProtocolError("message_empty", field="text")
    if len(text) > settings.MAX_MESSAGE_CHARS:
        raise ProtocolError(
            "message_too_long",
            f"Messages are limited to {settings.MAX_MESSAGE_CHARS} characters.",
            field="text",
        )
    client_msg_id = frame.get("client_msg_id", "")
    if client_msg_id != "" and (
        not isinstance(client_msg_id, str) or not _CLIENT_MSG_ID.fullmatch(client_msg_id)
    ):
        raise ProtocolError(
            "bad_field",
            "'client_msg_id' must be 1-64 letters, digits, - or _.",
            field="client_msg_id",
        )
    return Send(text=text, client_msg_id=client_msg_id)


@dataclass(frozen=True)
class Rate:
    turn: int
    value: int


def parse_rate(frame: dict[str, Any]) -> Rate:
    return Rate(turn=_int(frame, "turn", minimum=1), value=_int(frame, "value"))


@dataclass(frozen=True)
class Doc:
    text: str
    version_base: int
    edits: list[dict[str, Any]]


def parse_doc(frame: dict[str, Any]) -> Doc:
    text = frame.get("text")
    if not isinstance(text, str):
        raise ProtocolError("bad_field", "'text' must be a string.", field="text")
    if len(text) > settings.MAX_DOCUMENT_CHARS:
        raise ProtocolError(
            "doc_too_long",
            f"The document is limited to {settings.MAX_DOCUMENT_CHARS} characters.",
            field="text",
        )
    return Doc(text=text, version_base=_int(frame, "version_base", minimum=0), edits=_edits(frame))


def _edits(frame: dict[str, Any]) -> list[dict[str, Any]]:
    """The editor events, each a flat object, so that nothing else is stored with them."""
    edits = frame.get("edits", [])
    if not isinstance(edits, list) or not all(isinstance(e, dict) for e in edits):
        raise ProtocolError("bad_field", "'edits' must be a list of objects.", field="edits")
    if len(edits) > MAX_EDIT_EVENTS:
        raise ProtocolError(
            "bad_field", f"At most {MAX_EDIT_EVENTS} edit events per save.", field="edits"
        )
    if not _flat_events(edits):
        raise ProtocolError(
            "bad_field",
            f"Each edit must be an object of at most {MAX_EDIT_FIELDS} fields, named in at most "
            f"{MAX_EDIT_NAME_CHARS} characters, whose values are text, numbers, true, false or "
            "null.",
            field="edits",
        )
    return edits


def _flat_events(edits: list[dict[str, Any]]) -> bool:
    """Whether every event has a few short-named fields with plain values (checked over all
    events at once: a frame may hold thousands)."""
    if any(len(event) > MAX_EDIT_FIELDS for event in edits):
        return False
    names = {name for event in edits for name in event}
    types = {type(value) for event in edits for value in event.values()}
    return types <= _EDIT_VALUE_TYPES and all(len(name) <= MAX_EDIT_NAME_CHARS for name in names)


def parse_heartbeat(frame: dict[str, Any]) -> bool | None:
    """The page's focus at the heartbeat, when it says."""
    return _optional_bool(frame, "focused", None)


def heartbeat_active(frame: dict[str, Any]) -> bool:
    """Whether the participant used the page (typed, clicked, scrolled) since the last one."""
    return bool(_optional_bool(frame, "active", False))


@dataclass(frozen=True)
class Choose:
    group: str
    generation_id: str


def _id(frame: dict[str, Any], name: str) -> str:
    value = frame.get(name)
    if not isinstance(value, str) or not _CLIENT_MSG_ID.fullmatch(value):
        raise ProtocolError("bad_field", f"'{name}' must be an id from the server.", field=name)
    return value


def parse_choose(frame: dict[str, Any]) -> Choose:
    return Choose(group=_id(frame, "group"), generation_id=_id(frame, "generation_id"))


def parse_regenerate(frame: dict[str, Any]) -> int:
    """The turn whose reply is to be regenerated (the latest)."""
    return _int(frame, "turn", minimum=1)
