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

    Nothing outside ``response`` is ever shown: the other fields are the arm's hidden reasoning,
    and showing them would unblind the participant. A reply whose ``response`` has no visible
    text (prose instead of JSON, an object without the field, a reply cut off before it) fails
    at its end with :class:`NoResponse`, a retryable :class:`~collab_models.base.ModelError`:
    the turn records ``finish_reason = "error"`` and ``error = "malformed_json: <why>"``. A
    ``response`` that began but was cut off or followed by broken JSON keeps what was shown and
    succeeds with that warning in ``error`` while ``finish_reason`` keeps the real reason.

The raw reply is always kept in ``TurnRecord.raw_output`` and the shown text in ``TurnRecord.text``.
"""

from __future__ import annotations

import re
from enum import Enum, auto

from collab_models.base import ModelError
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


class NoResponse(ModelError):
    """A JSON reply with no visible ``response`` text: the turn fails and may be retried."""


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


class JsonResponseAdapter:
    """Incremental extractor of one top-level string field from a streamed JSON object."""

    def __init__(self, field: str = "response") -> None:
        self.field = field.lower()
        self._state = _S.SEEK
        self._raw: list[str] = []
        self._pending = ""  # an escape split across deltas
        self._key: list[str] = []
        self._found = False  # the response string has begun
        self._closed = False  # ...and ended
        self._visible = False  # the response has shown some non-blank text
        self._high_surrogate: str | None = None
        self._nest_depth = 0
        self._nest_in_str = False
        self._nest_escape = False
        self._skip_escape = False
        self._problem = ""

    # -- public ----------------------------------------------------------------------------
    def feed(self, delta: str) -> str:
        self._raw.append(delta)
        text = self._pending + delta
        self._pending = ""
        out: list[str] = []
        i = 0
        n = len(text)
        while i < n and self._state not in (_S.DONE, _S.BROKEN):
            i = self._step(text, i, out)
        shown = "".join(out)
        if shown.strip():
            self._visible = True
        return shown

    def finish(self) -> tuple[str, str]:
        """The text still to show and a warning; raises :class:`NoResponse` when the reply
        showed no ``response`` text."""
        tail = ""
        if self._high_surrogate is not None:
            tail = "\ufffd"
            self._high_surrogate = None
        if not self._found or not (self._visible or tail):
            why = self._problem or (
                "no JSON object" if self._state is _S.SEEK else f"no {self.field} field"
            )
            if self._found:
                why = f"empty {self.field}"
            raise NoResponse(f"{MALFORMED}: {why}")
        if not self._closed:
            return tail, f"{MALFORMED}: unterminated {self.field} string"
        if self._state is _S.BROKEN:
            return tail, f"{MALFORMED}: {self._problem}"
        if self._state is not _S.DONE:
            return tail, f"{MALFORMED}: unterminated object"
        return tail, ""

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


def make_adapter(response_format: str) -> ResponseAdapter:
    """A fresh adapter for one turn (``text`` or ``json_response``)."""
    if response_format == "text":
        return TextAdapter()
    if response_format == "json_response":
        return JsonResponseAdapter()
    raise ValueError(
        f"unknown response_format {response_format!r} (expected one of {RESPONSE_FORMATS})"
    )
