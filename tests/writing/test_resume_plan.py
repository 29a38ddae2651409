"""What a (re)connecting client is replayed, for every order of events around its reads."""

from __future__ import annotations

from studyapp.realtime.framestore import Snapshot
from studyapp.realtime.generations import resume_plan

MARKER = {"generation_id": "g2", "turn": 2, "origin": "p1", "start_seq": 10}
# The previous turn ended at seq 9; turn 2 started at 10 and has streamed three deltas.
STREAMING = [
    {"seq": 10, "type": "turn_start", "turn": 2, "generation_id": "g2"},
    {"seq": 11, "type": "delta", "text": "a"},
    {"seq": 12, "type": "delta", "text": "b"},
    {"seq": 13, "type": "delta", "text": "c"},
]


def test_nothing_pending_replays_nothing_and_sets_last_seq_to_the_buffer_tail():
    ended = [*STREAMING, {"seq": 14, "type": "turn_end", "turn": 2}]
    resume = resume_plan(pending_turn=None, snapshot=Snapshot(None, ended), client_seq=3)
    assert resume.frames == []
    assert resume.last_seq == 14
    assert resume.generation is None
    assert resume.retry_turn is None


def test_a_fresh_page_gets_the_reply_in_flight_from_its_start():
    resume = resume_plan(pending_turn=2, snapshot=Snapshot(MARKER, STREAMING), client_seq=None)
    assert resume.generation == {"generation_id": "g2", "turn": 2}
    assert resume.last_seq == 9
    assert [f["seq"] for f in resume.frames] == [10, 11, 12, 13]


def test_a_client_inside_the_reply_resumes_after_what_it_has():
    resume = resume_plan(pending_turn=2, snapshot=Snapshot(MARKER, STREAMING), client_seq=11)
    assert resume.last_seq == 11
    assert [f["seq"] for f in resume.frames] == [12, 13]


def test_a_client_that_has_everything_gets_nothing_twice():
    resume = resume_plan(pending_turn=2, snapshot=Snapshot(MARKER, STREAMING), client_seq=13)
    assert resume.last_seq == 13
    assert resume.frames == []


def test_a_client_from_before_the_reply_or_from_the_future_restarts_the_reply():
    for stale in (4, 9, 99):
        resume = resume_plan(pending_turn=2, snapshot=Snapshot(MARKER, STREAMING), client_seq=stale)
        assert resume.last_seq == 9, stale
        assert resume.frames[0]["type"] == "turn_start"


def test_a_reply_that_ended_between_the_reads_is_replayed_whole():
    failed = [*STREAMING, {"seq": 14, "type": "turn_error", "turn": 2}]
    resume = resume_plan(pending_turn=2, snapshot=Snapshot(None, failed), client_seq=12)
    assert resume.generation is None
    assert resume.last_seq == 9
    assert [f["seq"] for f in resume.frames] == [10, 11, 12, 13, 14]


def test_an_unanswered_turn_with_nothing_in_flight_offers_retry():
    """The process streaming it died: its marker expired and no end was ever written."""
    resume = resume_plan(pending_turn=2, snapshot=Snapshot(None, STREAMING), client_seq=None)
    assert resume.retry_turn == 2
    assert resume.generation is None
    assert resume.frames == []
    assert resume.last_seq == 13


def test_a_marker_for_another_turn_is_not_replayed_as_the_pending_one():
    earlier = {**MARKER, "turn": 1}
    resume = resume_plan(pending_turn=2, snapshot=Snapshot(earlier, STREAMING), client_seq=None)
    assert resume.generation is None
    assert resume.retry_turn == 2
