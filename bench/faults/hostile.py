"""Hostile frames for the fuzzing clients: each must be refused with a documented error code
(docs/protocol.md §5) on a socket that stays open, storing nothing and disturbing no one else.

Texts carry the sender's marker word, so that one stored and shown to someone else is seen.
"""

from __future__ import annotations

import json
from dataclasses import dataclass


@dataclass(frozen=True)
class Hostile:
    name: str
    payload: str | bytes  # bytes go as a binary frame


def _nested_object(depth: int) -> str:
    return '{"a":' * depth + "1" + "}" * depth


def _nested_list(depth: int) -> str:
    return "[" * depth + "]" * depth


def _frame(**fields: object) -> str:
    return json.dumps(fields)


def corpus(marker: str) -> list[Hostile]:
    """The hostile frames a fuzzer holding the participation of ``marker`` sends."""
    deep_edits = [
        Hostile(
            f"doc with edits nested {depth} deep",
            '{"type":"doc","text":"' + marker + '","version_base":0,"edits":[{"e":'
            + _nested_object(depth) + "}]}",
        )
        for depth in (500, 990)
    ]  # fmt: skip
    return [
        *deep_edits,
        Hostile("send with a 1,000-deep list beside it",
                '{"type":"send","text":"' + marker + '","x":' + _nested_list(1000) + "}"),
        Hostile("100,000 open brackets", "[" * 100_000),
        Hostile("NUL in send text", _frame(type="send", text=f"{marker} a\u0000b")),
        Hostile("NUL in doc text", _frame(type="doc", text=f"{marker}\u0000", version_base=0)),
        Hostile("NUL in an edit", _frame(type="doc", text=marker, version_base=0,
                                         edits=[{"data": "x\u0000y"}])),
        Hostile("NUL in an edit's key", _frame(type="doc", text=marker, version_base=0,
                                               edits=[{"k\u0000": 1}])),
        Hostile("lone surrogate in send text", '{"type":"send","text":"' + marker + ' \\ud800"}'),
        Hostile("lone surrogate in doc text",
                '{"type":"doc","text":"' + marker + '\\udfff","version_base":0}'),
        Hostile("lone surrogate in an edit",
                '{"type":"doc","text":"' + marker + '","version_base":0,'
                '"edits":[{"data":"\\ud83d"}]}'),
        Hostile("frame over the size limit", _frame(type="send", text=marker + "x" * 300_000)),
        Hostile("send text a number", _frame(type="send", text=5)),
        Hostile("send text a list", _frame(type="send", text=[marker])),
        Hostile("type a number", _frame(type=7)),
        Hostile("no type", _frame(text=marker)),
        Hostile("a JSON list", "[1, 2, 3]"),
        Hostile("a JSON string", json.dumps(marker)),
        Hostile("null", "null"),
        Hostile("not JSON", "{" + marker),
        Hostile("unknown type", _frame(type="launch", text=marker)),
        Hostile("binary frame", marker.encode() + b"\x00\xff"),
        Hostile("rate turn a string", _frame(type="rate", turn="3", value=7)),
        Hostile("rate a boolean", _frame(type="rate", turn=1, value=True)),
        Hostile("doc edits an object", _frame(type="doc", text=marker, version_base=0,
                                              edits={"a": 1})),
        Hostile("doc with 2,001 edits", _frame(type="doc", text=marker, version_base=0,
                                               edits=[{}] * 2001)),
        Hostile("doc version_base negative", _frame(type="doc", text=marker, version_base=-1)),
        Hostile("hello with last_seq -1", _frame(type="hello", last_seq=-1)),
        Hostile("heartbeat focused a string", _frame(type="heartbeat", focused="yes")),
        Hostile("client_msg_id with a space", _frame(type="send", text=marker,
                                                     client_msg_id="a b")),
        Hostile("empty send", _frame(type="send", text="   ")),
        Hostile("send over the length limit", _frame(type="send", text=marker + "y" * 4001)),
        Hostile("choose with a forged id", _frame(type="choose", group="x",
                                                  generation_id="../../etc")),
    ]  # fmt: skip
