"""What a (re)connecting client is replayed for pairs and regenerations, around its two reads."""

from __future__ import annotations

from studyapp.realtime.framestore import Snapshot
from studyapp.writing.alternatives.relay import resume_plan
from studyapp.writing.selectors import ChatState

OLD = {"turn": 2, "role": "assistant", "text": "old", "generation_id": "old"}
CHAT = [{"turn": 1, "role": "user", "text": "a"}, {"turn": 1, "role": "assistant", "text": "b",
        "generation_id": "g1"}, {"turn": 2, "role": "user", "text": "c"}]  # fmt: skip
PAIR = [
    {"seq": 10, "type": "pair_start", "turn": 2, "generation_id": "p",
     "candidates": [{"candidate": 0, "generation_id": "c0"},
                    {"candidate": 1, "generation_id": "c1"}]},
    {"seq": 11, "type": "delta", "candidate": 1, "text": "x"},
    {"seq": 12, "type": "delta", "candidate": 0, "text": "y"},
]  # fmt: skip
PAIR_MARKER = {"generation_id": "p", "turn": 2, "origin": "p1", "start_seq": 10,
               "kind": "pair", "candidates": PAIR[0]["candidates"]}  # fmt: skip
REGEN = [
    {"seq": 20, "type": "turn_start", "turn": 2, "generation_id": "new", "regenerate": True,
     "replaces": "old"},
    {"seq": 21, "type": "delta", "text": "n"},
]  # fmt: skip
REGEN_MARKER = {"generation_id": "new", "turn": 2, "origin": "p1", "start_seq": 20,
                "kind": "regenerate", "replaces": "old"}  # fmt: skip


def _state(messages, pending_turn=None, pair=None) -> ChatState:
    return ChatState(
        status="writing", messages=messages, pending_turn=pending_turn, turns_completed=1,
        rating_due=None, document_text="", document_version=0, spec={}, history=[],
        condition_config={}, pair=pair,
    )  # fmt: skip


def test_a_pair_in_flight_is_replayed_from_its_start_and_described():
    resume = resume_plan(
        state=_state(CHAT, pending_turn=2), snapshot=Snapshot(PAIR_MARKER, PAIR), client_seq=None
    )
    assert resume.last_seq == 9
    assert [f["seq"] for f in resume.frames] == [10, 11, 12]
    assert resume.generation["kind"] == "pair"
    assert resume.generation["candidates"] == PAIR_MARKER["candidates"]


def test_a_pair_that_ended_between_the_reads_is_replayed_whole():
    ended = [*PAIR, {"seq": 13, "type": "pair_end", "turn": 2, "generation_id": "p"}]
    resume = resume_plan(state=_state(CHAT, pending_turn=2), snapshot=Snapshot(None, ended),
                         client_seq=12)  # fmt: skip
    assert resume.generation is None
    assert resume.retry_turn is None
    assert [f["seq"] for f in resume.frames] == [10, 11, 12, 13]


def test_a_pair_waiting_for_its_pick_replays_nothing():
    ended = [*PAIR, {"seq": 13, "type": "pair_end", "turn": 2, "generation_id": "p"}]
    state = _state(CHAT, pair={"turn": 2, "group": "g", "candidates": []})
    resume = resume_plan(state=state, snapshot=Snapshot(None, ended), client_seq=None)
    assert (resume.frames, resume.last_seq, resume.retry_turn) == ([], 13, None)


def test_a_regeneration_in_flight_is_replayed_over_the_old_reply():
    state = _state([*CHAT, OLD])
    resume = resume_plan(state=state, snapshot=Snapshot(REGEN_MARKER, REGEN), client_seq=None)
    assert [f["seq"] for f in resume.frames] == [20, 21]
    assert resume.generation == {"generation_id": "new", "turn": 2, "kind": "regenerate",
                                 "replaces": "old"}  # fmt: skip
    inside = resume_plan(state=state, snapshot=Snapshot(REGEN_MARKER, REGEN), client_seq=20)
    assert [f["seq"] for f in inside.frames] == [21]


def test_a_regeneration_already_stored_is_not_replayed():
    stored = {**OLD, "generation_id": "new", "text": "n"}
    resume = resume_plan(state=_state([*CHAT, stored]), snapshot=Snapshot(REGEN_MARKER, REGEN),
                         client_seq=None)  # fmt: skip
    assert (resume.frames, resume.generation) == ([], None)


def test_a_regeneration_that_replaced_the_reply_between_the_reads_is_replayed_whole():
    ended = [*REGEN, {"seq": 22, "type": "turn_end", "turn": 2, "generation_id": "new"}]
    resume = resume_plan(state=_state([*CHAT, OLD]), snapshot=Snapshot(None, ended),
                         client_seq=None)  # fmt: skip
    assert [f["seq"] for f in resume.frames] == [20, 21, 22]
    # Once the database shows the new reply (or kept the old one), nothing is replayed.
    stored = {**OLD, "generation_id": "new"}
    assert resume_plan(state=_state([*CHAT, stored]), snapshot=Snapshot(None, ended),
                       client_seq=None).frames == []  # fmt: skip
    failed = [*REGEN, {"seq": 22, "type": "turn_error", "turn": 2, "generation_id": "new"}]
    assert resume_plan(state=_state([*CHAT, OLD]), snapshot=Snapshot(None, failed),
                       client_seq=None).frames == []  # fmt: skip


# A reply begun before its user message was stored (relay.EarlyReply): turn 2 is not in the
# database yet when the client reconnects.
ANSWERED = CHAT[:2]
EARLY = [
    {"seq": 30, "type": "turn_start", "turn": 2, "generation_id": "e", "user_text": "c"},
    {"seq": 31, "type": "delta", "text": "d"},
]  # fmt: skip
EARLY_MARKER = {"generation_id": "e", "turn": 2, "origin": "p1", "start_seq": 30}


def test_an_early_reply_whose_message_is_not_stored_yet_is_replayed_from_its_start():
    resume = resume_plan(
        state=_state(ANSWERED), snapshot=Snapshot(EARLY_MARKER, EARLY), client_seq=None
    )
    assert resume.generation == {"generation_id": "e", "turn": 2}
    assert resume.last_seq == 29
    assert [f["seq"] for f in resume.frames] == [30, 31]  # turn_start carries the message


def test_an_early_reply_resumes_after_what_the_client_has():
    resume = resume_plan(
        state=_state(ANSWERED), snapshot=Snapshot(EARLY_MARKER, EARLY), client_seq=31
    )
    assert resume.generation == {"generation_id": "e", "turn": 2}
    assert (resume.last_seq, resume.frames) == (31, [])


def test_an_early_reply_stored_and_ended_between_the_reads_is_replayed_whole():
    ended = [*EARLY, {"seq": 32, "type": "turn_end", "turn": 2, "generation_id": "e",
                      "finish_reason": "stop", "text": "d"}]  # fmt: skip
    resume = resume_plan(state=_state(ANSWERED), snapshot=Snapshot(None, ended), client_seq=None)
    assert resume.generation is None
    assert resume.retry_turn is None
    assert [f["seq"] for f in resume.frames] == [30, 31, 32]


def test_a_withdrawn_early_reply_is_not_replayed():
    withdrawn = [*EARLY, {"seq": 32, "type": "turn_withdrawn", "turn": 2, "generation_id": "e"}]
    resume = resume_plan(
        state=_state(ANSWERED), snapshot=Snapshot(None, withdrawn), client_seq=None
    )
    assert (resume.generation, resume.retry_turn, resume.frames) == (None, None, [])
    assert resume.last_seq == 32


def test_a_marker_for_an_answered_turn_is_no_early_reply():
    # A plain reply's marker whose turn the database already answered (its end is on its way).
    marker = {**EARLY_MARKER, "turn": 1}
    resume = resume_plan(state=_state(ANSWERED), snapshot=Snapshot(marker, EARLY), client_seq=None)
    assert resume.generation is None
    assert resume.frames == []
