"""What went wrong for a participant: its recorded frames checked against the database.

Pure functions over plain data, so that tests/bench/test_faults_accounting.py can hand them
made-up logs. A participant's log is the list of :class:`Entry` it recorded (frames received
and sent, sockets opened and lost, reloads and other human actions); its rows are its chat
messages as the database holds them at the end. Each reply is counted at most once per column.

- lost: a reply or message that the participant was shown but the database does not hold as
  shown (stored nowhere, stored with another text), one the database holds but the page never
  showed, a reply that began and left no row at all (neither a reply nor a stored failure), an
  acknowledged message that was not stored, or a reply whose deltas did not add up to its text;
- duplicated: a reply whose text (or part of it) was shown twice, a message stored twice, a
  reply the page was told had ended that the database then replaced by another one;
- stranded: each time the page could not go on by itself, so that its participant reloaded
  it, and a page in that state when the scenario ended: waiting for a reply or an answer that
  never came (no ``turn_end`` or ``turn_error``, nothing streaming any more), or offering only
  a Retry or Send that the server kept refusing;
- wrong participant: frames that contain another participant's marker word or name another
  participant's generation, and acknowledgements that carry another call's turn.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from bench.faults.page import Page

# Every participant's messages carry its own marker word; the model server echoes the marker of
# the message it answers, so replies carry it too.
MARKER = re.compile(r"zq[a-z]{4}\d{4}x")
DETAILS_KEPT = 5  # problems described per participant, beside the counts


def marker_word(tag: str, index: int) -> str:
    """The marker of participant ``index`` in a run tagged ``tag`` (four lowercase letters);
    ValueError for a tag or index that ``MARKER`` would not find."""
    word = f"zq{tag}{index:04d}x"
    # A word MARKER misses is neither echoed by the model server nor checked for strangers.
    if not MARKER.fullmatch(word):
        raise ValueError(f"marker word {word!r} does not match {MARKER.pattern}")
    return word


@dataclass
class Entry:
    """One thing a participant did or received, in order.

    kind: ``recv`` and ``send`` (data: the frame's text), ``open`` (data: the server),
    ``lost`` (the socket closed; data: the close code), ``drop`` (the participant cut the
    socket on purpose), ``reload`` (a human reloaded the page; data: why), ``resend`` (a human
    pressed Send again after a refusal), ``retry`` (Retry, as the page offered), ``done``.
    """

    kind: str
    data: str = ""
    at: float = 0.0


@dataclass(frozen=True)
class Row:
    """A chat message as the database holds it."""

    turn: int
    role: str
    text: str
    generation_id: str  # as frames carry it
    active: bool = True
    failed: bool = False
    client_msg_id: str = ""


@dataclass
class Tally:
    lost: int = 0
    duplicated: int = 0
    stranded: int = 0
    wrong: int = 0
    reloads: int = 0
    resends: int = 0
    replies: int = 0  # replies stored for the participant (active, not failed)
    problems: list[str] = field(default_factory=list)

    def add(self, other: Tally) -> None:
        for name in ("lost", "duplicated", "stranded", "wrong", "reloads", "resends", "replies"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.problems.extend(other.problems)


@dataclass
class Seen:
    """A participant's log replayed through the page."""

    page: Page
    frames: list[str] = field(default_factory=list)  # every frame received, as text
    turn_ends: list[dict[str, Any]] = field(default_factory=list)
    acks: list[dict[str, Any]] = field(default_factory=list)
    begun: dict[str, int] = field(default_factory=dict)  # generation id -> turn
    withdrawn: set[str] = field(default_factory=set)
    stranded: list[str] = field(default_factory=list)  # how the page was stuck, each time
    anomalies: list[tuple[str, str, int]] = field(default_factory=list)


def _stuck(page: Page) -> str:
    """Why the page can not go on by itself, or "" when it can."""
    if page.streaming is not None:
        return f"turn {page.streaming.turn}: reply began, never ended"
    if page.pending_send is not None:
        return "message sent, never answered"
    if page.rating_sending:
        return "rating sent, never answered"
    if page.unanswered() is not None:
        return f"turn {page.unanswered()}: message shown, no reply began"
    if not page.got_state and not page.closed_for_good:
        return "no state after hello"
    return ""


def replay(entries: Iterable[Entry]) -> Seen:
    """Apply the received frames to a page as the browser would, noting what the checks need."""
    seen = Seen(page=Page())
    for entry in entries:
        if entry.kind == "recv":
            seen.frames.append(entry.data)
            _note(seen, json.loads(entry.data))
        elif entry.kind == "send":
            seen.page.sent(json.loads(entry.data))
        elif entry.kind in ("lost", "drop"):
            seen.page.connection_lost()
        elif entry.kind == "reload":  # the participant reloads only a page that can not go on
            seen.stranded.append(_stuck(seen.page) or "Retry or Send refused, nothing else to do")
            _keep_anomalies(seen)
            seen.page = Page()
    why = _stuck(seen.page)
    if why:
        seen.stranded.append(f"{why} (at the end)")
    _keep_anomalies(seen)
    return seen


def _keep_anomalies(seen: Seen) -> None:
    seen.anomalies.extend((a.kind, a.generation_id, a.turn) for a in seen.page.anomalies)
    seen.page.anomalies.clear()


def _note(seen: Seen, frame: dict[str, Any]) -> None:
    kind = frame.get("type")
    if kind == "turn_start":
        seen.begun[str(frame["generation_id"])] = int(frame["turn"])
    elif kind == "state" and frame.get("generation"):
        generation = frame["generation"]
        seen.begun[str(generation["generation_id"])] = int(generation.get("turn", 0))
    elif kind == "turn_end":
        seen.turn_ends.append(frame)
    elif kind == "turn_withdrawn":
        seen.withdrawn.add(str(frame["generation_id"]))
    elif kind == "ack" and frame.get("of") == "send":
        seen.acks.append(frame)
    seen.page.apply(frame)


# -- the columns ----------------------------------------------------------------------------
def wrong_frames(frames: Iterable[str], *, me: str, owners: Mapping[str, str]) -> list[str]:
    """Frames that carry another participant's marker or name its generation."""
    found = []
    for text in frames:
        strangers = {m for m in MARKER.findall(text) if m != me}
        strangers |= {owners[g] for g in _generation_ids(text) if owners.get(g, me) != me}
        if strangers:
            found.append(f"a frame showed {', '.join(sorted(strangers))}'s text: {text[:120]}")
    return found


def _generation_ids(text: str) -> set[str]:
    frame = json.loads(text)
    ids = {frame.get("generation_id")}
    ids |= {(frame.get("generation") or {}).get("generation_id")}
    ids |= {m.get("generation_id") for m in frame.get("messages") or [] if isinstance(m, dict)}
    return {str(g) for g in ids if g}


def lost_replies(seen: Seen, rows: list[Row], foreign: Collection[str] = ()) -> dict[str, str]:
    """Replies and messages lost, keyed by the generation or message they concern; another
    participant's generations (``foreign``) are no loss of this one's, but wrongly shown."""
    by_generation = {r.generation_id: r for r in rows if r.role == "assistant"}
    lost: dict[str, str] = {}
    for end in seen.turn_ends:
        if end["generation_id"] in foreign:
            continue
        row = by_generation.get(str(end["generation_id"]))
        if row is None or row.failed:
            lost.setdefault(end["generation_id"], f"turn {end['turn']}: shown, stored nowhere")
        elif row.text != end["text"]:
            lost.setdefault(end["generation_id"], f"turn {end['turn']}: stored text differs")
    accounted = by_generation.keys() | seen.withdrawn | set(foreign)
    for generation_id, turn in seen.begun.items():
        if generation_id not in accounted:
            lost.setdefault(generation_id, f"turn {turn}: began, left no row")
    stored_ids = {r.client_msg_id for r in rows if r.role == "user" and r.client_msg_id}
    for ack in seen.acks:
        if ack.get("client_msg_id") and ack["client_msg_id"] not in stored_ids:
            lost.setdefault(f"msg:{ack['client_msg_id']}", f"turn {ack['turn']}: acked, not stored")
    for kind, generation_id, turn in seen.anomalies:
        if kind == "garbled" and generation_id not in foreign:
            lost.setdefault(generation_id, f"turn {turn}: deltas unlike the reply's text")
    lost.update(_never_shown(seen.page, rows, lost))
    return lost


def _never_shown(page: Page, rows: list[Row], already: Mapping[str, str]) -> dict[str, str]:
    """The active conversation in the database against what the page shows at the end."""
    missing = {}
    for row in rows:
        if not row.active or row.failed:
            continue
        shown = page.messages.get((row.turn, row.role))
        key = row.generation_id if row.role == "assistant" else f"msg:{row.client_msg_id}"
        on_page = shown is not None and shown.text == row.text and shown.status != "streaming"
        if not on_page and key not in already:
            missing[key] = f"turn {row.turn}: stored {row.role} message not on the page"
    return missing


def duplicated_replies(seen: Seen, rows: list[Row]) -> dict[str, str]:
    duplicated: dict[str, str] = {}
    for kind, generation_id, turn in seen.anomalies:
        if kind == "duplicated":
            duplicated[generation_id] = f"turn {turn}: reply text shown twice"
    by_generation = {r.generation_id: r for r in rows if r.role == "assistant"}
    for end in seen.turn_ends:
        row = by_generation.get(str(end["generation_id"]))
        if row is not None and not row.active and not row.failed:
            duplicated[end["generation_id"]] = f"turn {end['turn']}: ended, then replaced"
    texts = Counter(r.text for r in rows if r.role == "user")
    for text, count in texts.items():
        if count > 1:
            duplicated[f"text:{text}"] = f"message stored {count} times: {text[:60]}"
    return duplicated


def acks_for_other_turns(seen: Seen, rows: list[Row]) -> list[str]:
    """Acknowledgements whose turn is not the one the database stored their message as."""
    turn_of = {r.client_msg_id: r.turn for r in rows if r.role == "user" and r.client_msg_id}
    return [
        f"ack for turn {a['turn']}, message stored as turn {turn_of[a['client_msg_id']]}"
        for a in seen.acks
        if a.get("client_msg_id") in turn_of and turn_of[a["client_msg_id"]] != a.get("turn")
    ]


def participant_tally(
    entries: list[Entry], rows: list[Row], *, me: str, owners: Mapping[str, str]
) -> Tally:
    """The four columns (and the human actions) for one participant.

    ``me`` is its marker; ``owners`` maps every generation id in the database to the marker
    of the participant it belongs to.
    """
    seen = replay(entries)
    lost = lost_replies(seen, rows, {g for g, owner in owners.items() if owner != me})
    duplicated = duplicated_replies(seen, rows)
    wrong = wrong_frames(seen.frames, me=me, owners=owners) + acks_for_other_turns(seen, rows)
    problems = [*wrong, *lost.values(), *duplicated.values(), *seen.stranded]
    return Tally(
        lost=len(lost),
        duplicated=len(duplicated),
        stranded=len(seen.stranded),
        wrong=len(wrong),
        reloads=sum(e.kind == "reload" for e in entries),
        resends=sum(e.kind == "resend" for e in entries),
        replies=sum(r.role == "assistant" and r.active and not r.failed for r in rows),
        problems=[f"{me}: {p}" for p in problems[:DETAILS_KEPT]],
    )


# -- hostile frames -------------------------------------------------------------------------
@dataclass
class Answer:
    """What the server answered to one hostile frame."""

    sent: str  # a short description of the frame
    code: str | None  # the error code, "" for an answer that is no error, None for none
    closed: bool = False  # the socket closed instead


def bad_answers(answers: Iterable[Answer], documented: set[str]) -> list[str]:
    """Hostile frames not refused with a documented error code (other than ``server_error``)
    on a socket that stays open."""
    bad = []
    for answer in answers:
        if answer.closed:
            bad.append(f"{answer.sent}: socket closed")
        elif answer.code is None:
            bad.append(f"{answer.sent}: no answer")
        elif answer.code == "server_error" or answer.code not in documented:
            bad.append(f"{answer.sent}: answered {answer.code or 'without an error'}")
    return bad
