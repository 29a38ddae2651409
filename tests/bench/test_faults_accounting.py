"""bench/faults/accounting.py: recorded frames and database rows counted into lost, duplicated,
stranded and wrong-participant replies, on hand-made logs."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bench.faults.accounting import (
    MARKER,
    Answer,
    Entry,
    Row,
    bad_answers,
    marker_word,
    participant_tally,
)

ME = marker_word("abcd", 1)
OTHER = marker_word("abcd", 2)
G1 = "11111111-1111-4111-8111-111111111111"
G2 = "22222222-2222-4222-8222-222222222222"
G_OTHER = "99999999-9999-4999-8999-999999999999"
TEXT = f"{ME} message 1: help me write about a cheap trip."
REPLY = f"For {ME}: Here is a draft"
OWNERS = {G1: ME, G2: ME, G_OTHER: OTHER}


def recv(**frame: Any) -> Entry:
    return Entry("recv", json.dumps(frame))


def send(**frame: Any) -> Entry:
    return Entry("send", json.dumps(frame))


def state(
    last_seq: int, messages: list[dict] | None = None, generation: dict | None = None,
    retry_turn: int | None = None,
) -> Entry:  # fmt: skip
    document = {"text": "", "version": 0}
    return recv(type="state", messages=messages or [], generation=generation, last_seq=last_seq,
                rating_due=None, retry_turn=retry_turn, document=document)  # fmt: skip


def opening() -> list[Entry]:
    return [Entry("open", "8000"), send(type="hello", last_seq=None), state(0)]


def asked(msg_id: str = "c1", text: str = TEXT) -> list[Entry]:
    return [
        send(type="send", text=text, client_msg_id=msg_id),
        recv(type="turn_start", seq=1, turn=1, generation_id=G1, user_text=text),
        recv(type="ack", of="send", turn=1, client_msg_id=msg_id, duplicate=False),
    ]


def streamed(*parts: str, first_seq: int = 2, end: bool = True) -> list[Entry]:
    entries = [recv(type="delta", seq=first_seq + i, text=part) for i, part in enumerate(parts)]
    if end:
        seq = first_seq + len(parts)
        entries.append(recv(type="turn_end", seq=seq, turn=1, generation_id=G1,
                            finish_reason="stop", text=REPLY))  # fmt: skip
    return entries


STORED = [
    Row(1, "user", TEXT, "aaaaaaaa-0000-4000-8000-000000000001", client_msg_id="c1"),
    Row(1, "assistant", REPLY, G1),
]


def tally(entries: list[Entry], rows: list[Row] = STORED):
    return participant_tally(entries, rows, me=ME, owners=OWNERS)


def counts(entries: list[Entry], rows: list[Row] = STORED) -> tuple[int, int, int, int]:
    t = tally(entries, rows)
    return t.lost, t.duplicated, t.stranded, t.wrong


def test_a_clean_turn_counts_nothing():
    t = tally([*opening(), *asked(), *streamed(f"For {ME}:", " Here is", " a draft")])
    assert (t.lost, t.duplicated, t.stranded, t.wrong) == (0, 0, 0, 0)
    assert (t.replies, t.reloads, t.resends) == (1, 0, 0)


def test_a_dropped_socket_that_resumes_after_its_last_seq_counts_nothing():
    entries = [
        *opening(), *asked(), *streamed(f"For {ME}:", end=False), Entry("drop"),
        Entry("open", "8001"), send(type="hello", last_seq=2),
        state(2, [{"turn": 1, "role": "user", "text": TEXT, "client_msg_id": "c1"}],
              {"generation_id": G1, "turn": 1}),
        # A frame the socket already had, replayed: the page ignores it.
        recv(type="delta", seq=2, text=f"For {ME}:"),
        *streamed(" Here is", " a draft", first_seq=3),
    ]  # fmt: skip
    assert counts(entries) == (0, 0, 0, 0)


def test_a_reconnect_that_replays_the_reply_from_its_start_counts_nothing():
    entries = [
        *opening(), *asked(), *streamed(f"For {ME}:", end=False), Entry("drop"),
        Entry("open", "8001"), send(type="hello", last_seq=None),
        state(0, [{"turn": 1, "role": "user", "text": TEXT, "client_msg_id": "c1"}],
              {"generation_id": G1, "turn": 1}),
        recv(type="turn_start", seq=1, turn=1, generation_id=G1, user_text=TEXT),
        *streamed(f"For {ME}:", " Here is", " a draft"),
    ]  # fmt: skip
    assert counts(entries) == (0, 0, 0, 0)


def test_text_sent_twice_under_new_seqs_is_a_duplicated_reply():
    entries = [*opening(), *asked(), *streamed(f"For {ME}:", " Here is", " Here is", " a draft")]
    assert counts(entries) == (0, 1, 0, 0)


def test_a_missing_delta_is_a_lost_reply():
    entries = [*opening(), *asked(), *streamed(f"For {ME}:", " a draft")]
    assert counts(entries) == (1, 0, 0, 0)


def test_a_reply_shown_as_ended_but_stored_nowhere_is_lost():
    entries = [*opening(), *asked(), *streamed(f"For {ME}:", " Here is", " a draft")]
    assert counts(entries, rows=STORED[:1]) == (1, 0, 0, 0)


def test_a_reply_stored_but_never_delivered_is_lost_and_strands_the_page():
    # After a Redis restart the socket drops the reply's frames: only the ack arrives.
    entries = [
        *opening(),
        send(type="send", text=TEXT, client_msg_id="c1"),
        recv(type="ack", of="send", turn=1, client_msg_id="c1", duplicate=False),
    ]
    t = tally(entries)
    assert (t.lost, t.duplicated, t.stranded, t.wrong) == (1, 0, 1, 0)
    assert any("no reply began" in p for p in t.problems)


def test_a_reply_cut_by_a_dead_process_strands_the_page_until_a_reload():
    entries = [
        *opening(), *asked(), *streamed(f"For {ME}:", end=False),
        Entry("reload", "waited for the server"), Entry("open", "8001"),
        send(type="hello", last_seq=None),
        state(5, [{"turn": 1, "role": "user", "text": TEXT, "client_msg_id": "c1"}],
              retry_turn=1),
    ]  # fmt: skip
    t = tally(entries, rows=STORED[:1])  # the reply left no row, not even a failed one
    assert (t.lost, t.duplicated, t.stranded, t.wrong) == (1, 0, 1, 0)
    assert t.reloads == 1
    assert any("began, left no row" in p for p in t.problems)


def test_a_failed_reply_with_turn_error_and_a_retry_counts_nothing():
    rows = [*STORED[:1], Row(1, "assistant", "", G2, active=False, failed=True), STORED[1]]
    entries = [
        *opening(),
        send(type="send", text=TEXT, client_msg_id="c1"),
        recv(type="turn_start", seq=1, turn=1, generation_id=G2, user_text=TEXT),
        recv(type="ack", of="send", turn=1, client_msg_id="c1", duplicate=False),
        recv(type="turn_error", seq=2, turn=1, generation_id=G2, retry=True, message="Sorry"),
        Entry("retry"), send(type="retry"), recv(type="ack", of="retry", turn=1),
        recv(type="turn_start", seq=3, turn=1, generation_id=G1, user_text=TEXT),
        *streamed(f"For {ME}:", " Here is", " a draft", first_seq=4),
    ]  # fmt: skip
    t = tally(entries, rows)
    assert (t.lost, t.duplicated, t.stranded, t.wrong, t.reloads) == (0, 0, 0, 0, 0)


def test_a_reload_after_retry_kept_being_refused_is_a_stranded_page():
    rows = [*STORED[:1], Row(1, "assistant", "", G2, active=False, failed=True), STORED[1]]
    refused = recv(type="error", code="nothing_to_retry", of="retry", message="No")
    entries = [
        *opening(),
        send(type="send", text=TEXT, client_msg_id="c1"),
        recv(type="turn_start", seq=1, turn=1, generation_id=G2, user_text=TEXT),
        recv(type="ack", of="send", turn=1, client_msg_id="c1", duplicate=False),
        recv(type="turn_error", seq=2, turn=1, generation_id=G2, retry=True, message="Sorry"),
        Entry("retry"), send(type="retry"), refused, Entry("retry"), send(type="retry"), refused,
        Entry("reload", "waited"), Entry("open", "8000"), send(type="hello", last_seq=None),
        state(9, [{"turn": 1, "role": "user", "text": TEXT, "client_msg_id": "c1"},
                  {"turn": 1, "role": "assistant", "text": REPLY, "generation_id": G1}]),
    ]  # fmt: skip
    t = tally(entries, rows)
    assert (t.lost, t.duplicated, t.stranded, t.wrong, t.reloads) == (0, 0, 1, 0, 1)


def test_another_participants_conversation_in_a_state_frame_is_shown_to_the_wrong_one():
    stranger = {"turn": 1, "role": "user", "text": f"{OTHER} message 1: secrets"}
    entries = [Entry("open", "8000"), send(type="hello", last_seq=None), state(0, [stranger])]
    t = tally(entries, rows=[])
    assert t.wrong == 1
    assert any(OTHER in problem for problem in t.problems)


def test_a_frame_naming_another_participants_generation_is_wrong():
    entries = [
        *opening(), *asked(),
        recv(type="turn_error", seq=2, turn=1, generation_id=G_OTHER, retry=True, message="x"),
    ]  # fmt: skip
    assert tally(entries).wrong == 1


def test_another_participants_reply_is_wrongly_shown_not_lost():
    stranger = f"For {OTHER}: their draft"
    entries = [
        *opening(), *asked(), *streamed(f"For {ME}:", " Here is", " a draft"),
        recv(type="turn_start", seq=5, turn=2, generation_id=G_OTHER, user_text=f"{OTHER} hi"),
        recv(type="delta", seq=6, text=stranger),
        recv(type="turn_end", seq=7, turn=2, generation_id=G_OTHER, finish_reason="stop",
             text=stranger),
    ]  # fmt: skip
    assert counts(entries) == (0, 0, 0, 3)


def test_an_ack_carrying_another_calls_turn_is_wrong():
    entries = [
        *opening(),
        send(type="send", text=TEXT, client_msg_id="c1"),
        recv(type="turn_start", seq=1, turn=1, generation_id=G1, user_text=TEXT),
        recv(type="ack", of="send", turn=7, client_msg_id="c1", duplicate=False),
        *streamed(f"For {ME}:", " Here is", " a draft"),
    ]
    assert tally(entries).wrong == 1


def test_a_message_stored_twice_after_a_resend_is_duplicated_and_a_human_act():
    entries = [
        *opening(),
        send(type="send", text=TEXT, client_msg_id="c0"),
        recv(type="error", code="server_error", of="send", message="Something went wrong"),
        Entry("resend"), *asked(),
        *streamed(f"For {ME}:", " Here is", " a draft"),
    ]  # fmt: skip
    rows = [*STORED, Row(2, "user", TEXT, "aaaaaaaa-0000-4000-8000-000000000002",
                         client_msg_id="c0")]  # fmt: skip
    t = tally(entries, rows)
    assert (t.duplicated, t.resends) == (1, 1)


def test_an_acknowledged_message_the_database_lacks_is_lost():
    entries = [*opening(), *asked(), *streamed(f"For {ME}:", " Here is", " a draft")]
    assert counts(entries, rows=STORED[1:])[0] == 1


def test_hostile_frames_must_be_refused_with_a_documented_code_on_an_open_socket():
    documented = {"bad_json", "bad_field", "frame_too_large"}
    answers = [
        Answer("deep edits", "bad_field"),
        Answer("NUL", "server_error"),
        Answer("surrogate", None),
        Answer("binary", None, closed=True),
        Answer("wrong type", ""),
        Answer("oversize", "frame_too_large"),
    ]
    assert [b.split(":")[0] for b in bad_answers(answers, documented)] == [
        "NUL", "surrogate", "binary", "wrong type",
    ]  # fmt: skip


def test_marker_words_are_told_apart_and_not_found_in_ordinary_text():
    assert MARKER.findall(f"{ME} and {OTHER} and zqabcd12x") == [ME, OTHER]
    assert not MARKER.findall("Here is a short draft that you can shape further together")


def test_a_marker_word_the_pattern_would_miss_is_refused():
    # The soak's load steps once tagged their words "<tag>l<count>": never found, so their
    # replies were neither echoed with the marker nor counted per model replica.
    with pytest.raises(ValueError, match="does not match"):
        marker_word("abcdl100", 0)
    with pytest.raises(ValueError, match="does not match"):
        marker_word("abcd", 10_000)
    assert MARKER.fullmatch(marker_word("abcd", 9_999))


def test_the_scripted_page_resends_a_send_refused_for_now_by_itself_under_its_id():
    from bench.faults.page import Page

    page = Page()
    page.apply({"type": "state", "messages": [], "last_seq": 0, "epoch": "e", "document": {}})
    page.sent({"type": "send", "text": "Hello", "client_msg_id": "m1"})
    page.apply({"type": "error", "code": "unavailable", "of": "send", "retry_after": 1})
    assert page.unsent is None  # nothing for the participant to press
    assert page.resend_due(now=0.0) is None  # not before retry_after
    at = page.resend_at
    assert at is not None
    assert page.resend_due(now=at) == ("m1", "Hello")
    assert page.resend_due(now=at) is None  # once per refusal

    page.apply({"type": "error", "code": "busy", "of": "send"})  # no retry_after: a human's
    assert page.unsent == "Hello"
    assert page.pending_send is None
