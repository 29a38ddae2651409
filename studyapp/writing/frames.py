"""The writing page's server frames (protocol v1, docs/protocol.md §3 and §9): one builder per
frame type, so that a frame has the same fields wherever it is sent from (a reply's end, a
lost reply's end, a side-by-side pair, a regeneration, a tab's rating or save).

Numbered frames get their ``seq`` and ``epoch`` from the frame store when they are published
(studyapp/realtime/framestore.py); the builders leave them out. Error frames are built by
``protocol.error_frame``.
"""

from __future__ import annotations

from typing import Any

from studyapp.realtime.framestore import Frame


def _extra(**fields: Any) -> dict[str, Any]:
    """The optional fields that are set: not None, not False (a 0 is set)."""
    return {k: v for k, v in fields.items() if v is not None and v is not False}


def turn_start(
    *, turn: int, user_text: str, regenerate: bool = False, replaces: str | None = None
) -> Frame:
    """A reply to user turn ``turn`` begins (its ``generation_id`` is added when it starts)."""
    return {
        "type": "turn_start",
        "turn": turn,
        "user_text": user_text,
        **_extra(regenerate=regenerate, replaces=replaces),
    }


def turn_end(
    *,
    turn: int,
    generation_id: str,
    finish_reason: str,
    text: str,
    regenerate: bool = False,
    candidate: int | None = None,
    regenerations_left: int | None = None,
) -> Frame:
    """The reply ended and is stored; ``text`` is all of it."""
    return {
        "type": "turn_end",
        "turn": turn,
        "generation_id": generation_id,
        **_extra(regenerate=regenerate),
        "finish_reason": finish_reason,
        "text": text,
        **_extra(candidate=candidate, regenerations_left=regenerations_left),
    }


def turn_error(
    *,
    turn: int,
    generation_id: str,
    message: str,
    retry: bool,
    regenerate: bool = False,
    kept: str | None = None,
    regenerations_left: int | None = None,
) -> Frame:
    """The reply failed: ``retry`` offers the turn again; a failed regeneration keeps the
    earlier reply (``kept``)."""
    return {
        "type": "turn_error",
        "turn": turn,
        "generation_id": generation_id,
        **_extra(regenerate=regenerate),
        "message": message,
        "retry": retry,
        **_extra(kept=kept, regenerations_left=regenerations_left),
    }


def turn_withdrawn(*, turn: int, generation_id: str) -> Frame:
    """A reply begun before its message was stored, whose message was not stored as ``turn``."""
    return {"type": "turn_withdrawn", "turn": turn, "generation_id": generation_id}


def rating_due(*, turn: int) -> Frame:
    return {"type": "rating_due", "turn": turn}


def rating_given(*, turn: int) -> Frame:
    return {"type": "rating_given", "turn": turn}


def doc_version(*, version: int) -> Frame:
    return {"type": "doc_version", "version": version}


def pair_start(*, turn: int, user_text: str, candidates: list[dict[str, Any]]) -> Frame:
    return {"type": "pair_start", "turn": turn, "user_text": user_text, "candidates": candidates}


def candidate_end(
    *, turn: int, candidate: int, generation_id: str, finish_reason: str, text: str
) -> Frame:
    return {
        "type": "candidate_end",
        "turn": turn,
        "candidate": candidate,
        "generation_id": generation_id,
        "finish_reason": finish_reason,
        "text": text,
    }


def pair_end(
    *, turn: int, generation_id: str, group: str, candidates: list[dict[str, Any]]
) -> Frame:
    return {
        "type": "pair_end",
        "turn": turn,
        "generation_id": generation_id,
        "group": group,
        "candidates": candidates,
    }


def pair_chosen(
    *, turn: int, group: str, generation_id: str, text: str, finish_reason: str
) -> Frame:
    return {
        "type": "pair_chosen",
        "turn": turn,
        "group": group,
        "generation_id": generation_id,
        "text": text,
        "finish_reason": finish_reason,
    }


def ack(of: str, **fields: Any) -> dict[str, Any]:
    """The answer to the page's frame of type ``of`` (not numbered: only that socket gets it)."""
    return {"type": "ack", "of": of, **fields}
