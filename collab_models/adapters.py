"""Response adapters: what the participant sees of what the model wrote.

``text``
    The raw reply, unchanged.
``json_response``
    The model answers with a JSON object such as
    ``{"current_problem": ..., "thought": ..., "response": ...}`` (Proactive Base). Only the
    string value of ``response`` is shown, streamed while it arrives: escapes (``\\n``,
    ``\\"``, ``\\uXXXX`` with surrogate pairs) are decoded even when split across deltas, the
    fields may come in any order, and a leading ```` ```json ```` fence or a line of prose before
    the object is skipped.

    When the reply is malformed the turn still succeeds (the paper retried; a streamed reply
    cannot be taken back). The participant sees, in this order of preference: the part of
    ``response`` already streamed; a response-like field of the parsed object; the object's other
    string values without the JSON syntax; or the whole raw reply. A reply with a long stretch of
    prose before any ``{`` is shown as it streams. The record then carries
    ``error = "malformed_json: <why>"`` while ``finish_reason`` keeps the real reason
    (``stop``/``length``): a failed turn is one whose ``finish_reason`` is ``"error"``.

The raw reply is always kept in ``TurnRecord.raw_output`` and the shown text in ``TurnRecord.text``.
"""

from __future__ import annotations

import json
import re
from enum import Enum, auto
from typing import Any

from collab_models.streaming import ResponseAdapter

RESPONSE_FORMATS = ("text", "json_response")
MALFORMED = "malformed_json"

_SIMPLE_ESCAPES = {
    '"': '"',
    "\\": "\\",
    "/": "/",
    "b": "\b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
}
_PLAIN_RUN = re.compile(r'[^"\\]+')
_FENCE = re.compile(r"^\s*```[A-Za-z]*\s*$", re.MULTILINE)
# Keys that hold the model's private reasoning in the proactive schema; never shown as a fallback
# when anything else is available.
_PRIVATE_KEYS = {"current_problem", "thought", "thoughts", "reasoning", "analysis"}
_RESPONSE_LIKE = ("response", "reply", "answer", "message", "content", "text", "output")


class TextAdapter:
    """Shows the reply as it is."""

    def feed(self, delta: str) -> str:
        return delta

    def finish(self) -> tuple[str, str]:
        return "", ""


class _S(Enum):
    SEEK = auto()  # before the opening brace
    KEY = auto()  # expecting a key or the closing brace
    KEY_STR = auto()
    COLON = auto()
    VALUE = auto()
    RESPONSE_STR = auto()  # inside the response string: decode and show
    SKIP_STR = auto()
    SKIP_NESTED = auto()
    SKIP_SCALAR = auto()
    AFTER_VALUE = auto()
    DONE = auto()
    BROKEN = auto()  # unparseable after the object began: keep what was shown
    PASSTHROUGH = auto()  # prose, not JSON: show everything


class JsonResponseAdapter:
    """Incremental extractor of one top-level string field from a streamed JSON object."""

    def __init__(self, field: str = "response", *, prose_limit: int = 400) -> None:
        self.field = field.lower()
        self.prose_limit = prose_limit
        self._state = _S.SEEK
        self._raw: list[str] = []
        self._pending = ""  # an escape split across deltas
        self._key: list[str] = []
        self._found = False  # the response string has begun
        self._closed = False  # ...and ended
        self._shown_any = False
        self._high_surrogate: str | None = None
        self._nest_depth = 0
        self._nest_in_str = False
        self._nest_escape = False
        self._skip_escape = False
        self._seek_len = 0
        self._problem = ""

    # -- public ----------------------------------------------------------------------------
    def feed(self, delta: str) -> str:
        self._raw.append(delta)
        if self._state is _S.PASSTHROUGH:
            return delta
        text = self._pending + delta
        self._pending = ""
        out: list[str] = []
        i = 0
        n = len(text)
        while i < n and self._state not in (_S.DONE, _S.BROKEN, _S.PASSTHROUGH):
            i = self._step(text, i, out)
        if self._state is _S.SEEK and self._seek_len > self.prose_limit:
            self._state = _S.PASSTHROUGH
            self._problem = "reply is not JSON"
            out.append(_strip_fences("".join(self._raw)).lstrip())
        shown = "".join(out)
        if shown:
            self._shown_any = True
        return shown

    def finish(self) -> tuple[str, str]:
        tail = ""
        if self._high_surrogate is not None:
            tail = "\ufffd"
            self._high_surrogate = None
        if self._state is _S.PASSTHROUGH:
            return tail, f"{MALFORMED}: {self._problem}"
        if self._found:
            if not self._closed:
                return tail, f"{MALFORMED}: unterminated {self.field} string"
            if self._state is _S.BROKEN:
                return tail, f"{MALFORMED}: {self._problem}"
            if self._state is not _S.DONE:
                return tail, f"{MALFORMED}: unterminated object"
            return tail, ""
        why = self._problem or (
            "no JSON object" if self._state is _S.SEEK else f"no {self.field} field"
        )
        return _fallback_text("".join(self._raw), self.field), f"{MALFORMED}: {why}"

    # -- the state machine ----------------------------------------------------------------------
    def _step(self, text: str, i: int, out: list[str]) -> int:
        state = self._state
        if state is _S.RESPONSE_STR:
            return self._response_chars(text, i, out)
        if state is _S.SKIP_STR:
            return self._skip_string(text, i)
        if state is _S.SKIP_NESTED:
            return self._skip_nested(text, i)
        if state is _S.KEY_STR:
            return self._key_chars(text, i)
        c = text[i]
        if state is _S.SEEK:
            if c == "{":
                self._state = _S.KEY
            elif not c.isspace():
                self._seek_len += 1
            return i + 1
        if c.isspace():
            return i + 1
        if state is _S.KEY:
            if c == '"':
                self._key = []
                self._state = _S.KEY_STR
            elif c == "}":
                self._state = _S.DONE
            elif c != ",":
                self._break(f"unexpected {c!r} where a key was expected")
        elif state is _S.COLON:
            if c == ":":
                self._state = _S.VALUE
            else:
                self._break(f"unexpected {c!r} after a key")
        elif state is _S.VALUE:
            self._start_value(c)
        elif state is _S.SKIP_SCALAR:
            if c in ",}":
                self._state = _S.AFTER_VALUE
                return i  # let AFTER_VALUE see the separator
        elif state is _S.AFTER_VALUE:
            if c == ",":
                self._state = _S.KEY
            elif c == "}":
                self._state = _S.DONE
            elif c == '"':  # a missing comma: models do this; carry on
                self._key = []
                self._state = _S.KEY_STR
            else:
                self._break(f"unexpected {c!r} after a value")
        return i + 1

    def _start_value(self, c: str) -> None:
        key = "".join(self._key).lower()
        if c == '"':
            if key == self.field and not self._found:
                self._found = True
                self._state = _S.RESPONSE_STR
            else:
                self._skip_escape = False
                self._state = _S.SKIP_STR
        elif c in "{[":
            self._nest_depth = 1
            self._nest_in_str = False
            self._nest_escape = False
            self._state = _S.SKIP_NESTED
        else:
            self._state = _S.SKIP_SCALAR

    def _break(self, problem: str) -> None:
        self._problem = problem
        # Before the response began, a stray brace was probably prose: look for the next object.
        self._state = _S.BROKEN if self._found else _S.SEEK

    def _key_chars(self, text: str, i: int) -> int:
        n = len(text)
        while i < n:
            c = text[i]
            if c == "\\":
                if i + 1 >= n:
                    self._pending = text[i:]
                    return n
                self._key.append(_SIMPLE_ESCAPES.get(text[i + 1], text[i + 1]))
                i += 2
                continue
            if c == '"':
                self._state = _S.COLON
                return i + 1
            self._key.append(c)
            i += 1
        return i

    def _skip_string(self, text: str, i: int) -> int:
        n = len(text)
        while i < n:
            c = text[i]
            i += 1
            if self._skip_escape:
                self._skip_escape = False
            elif c == "\\":
                self._skip_escape = True
            elif c == '"':
                self._state = _S.AFTER_VALUE
                return i
        return i

    def _skip_nested(self, text: str, i: int) -> int:
        n = len(text)
        while i < n:
            c = text[i]
            i += 1
            if self._nest_in_str:
                if self._nest_escape:
                    self._nest_escape = False
                elif c == "\\":
                    self._nest_escape = True
                elif c == '"':
                    self._nest_in_str = False
            elif c == '"':
                self._nest_in_str = True
            elif c in "{[":
                self._nest_depth += 1
            elif c in "}]":
                self._nest_depth -= 1
                if self._nest_depth == 0:
                    self._state = _S.AFTER_VALUE
                    return i
        return i

    def _response_chars(self, text: str, i: int, out: list[str]) -> int:
        n = len(text)
        while i < n:
            run = _PLAIN_RUN.match(text, i)
            if run is not None:
                self._flush_surrogate(out)
                out.append(run.group())
                i = run.end()
                continue
            c = text[i]
            if c == '"':
                self._flush_surrogate(out)
                self._closed = True
                self._state = _S.AFTER_VALUE
                return i + 1
            # A backslash: decode the escape, or keep it for the next delta if incomplete.
            if i + 1 >= n:
                self._pending = text[i:]
                return n
            kind = text[i + 1]
            if kind != "u":
                self._flush_surrogate(out)
                out.append(_SIMPLE_ESCAPES.get(kind, kind))
                i += 2
                continue
            if i + 6 > n:
                self._pending = text[i:]
                return n
            i = self._unicode_escape(text[i + 2 : i + 6], out, i)
        return i

    def _unicode_escape(self, digits: str, out: list[str], i: int) -> int:
        try:
            code = int(digits, 16)
        except ValueError:
            out.append("\\u" + digits)
            return i + 6
        char = chr(code)
        if 0xD800 <= code <= 0xDBFF:
            self._flush_surrogate(out)
            self._high_surrogate = char
        elif 0xDC00 <= code <= 0xDFFF and self._high_surrogate is not None:
            pair = self._high_surrogate + char
            self._high_surrogate = None
            out.append(pair.encode("utf-16", "surrogatepass").decode("utf-16"))
        elif 0xDC00 <= code <= 0xDFFF:
            out.append("\ufffd")
        else:
            self._flush_surrogate(out)
            out.append(char)
        return i + 6

    def _flush_surrogate(self, out: list[str]) -> None:
        if self._high_surrogate is not None:
            out.append("\ufffd")
            self._high_surrogate = None


def _strip_fences(text: str) -> str:
    return _FENCE.sub("", text)


def _fallback_text(raw: str, field: str) -> str:
    """The best plain text for a reply whose ``field`` could not be streamed."""
    cleaned = _strip_fences(raw).strip()
    start, end = cleaned.find("{"), cleaned.rfind("}")
    if start == -1 or end <= start:
        return cleaned
    try:
        obj: Any = json.loads(cleaned[start : end + 1])
    except ValueError:
        return cleaned
    if not isinstance(obj, dict):
        return cleaned
    lowered = {str(k).lower(): v for k, v in obj.items()}
    for key in (field, *_RESPONSE_LIKE):
        value = lowered.get(key)
        if isinstance(value, str) and value.strip():
            return value
    strings = [v for k, v in lowered.items() if isinstance(v, str) and v.strip()]
    public = [v for k, v in lowered.items() if isinstance(v, str) and k not in _PRIVATE_KEYS]
    chosen = [v for v in public if v.strip()] or strings
    return "\n\n".join(chosen) if chosen else cleaned


def make_adapter(response_format: str) -> ResponseAdapter:
    """A fresh adapter for one turn (``text`` or ``json_response``)."""
    if response_format == "text":
        return TextAdapter()
    if response_format == "json_response":
        return JsonResponseAdapter()
    raise ValueError(
        f"unknown response_format {response_format!r} (expected one of {RESPONSE_FORMATS})"
    )
