"""A socket's view of its chat (``ChatView``) decides whether a message may begin its reply
before the database stores it; a view that missed a stored turn must not guess."""

from __future__ import annotations

from studyapp.writing.chatview import ChatView

HISTORY = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]


def _view(*, streaming: bool) -> ChatView:
    return ChatView(
        config={"model": "m"},
        history=list(HISTORY),
        spec={},
        streaming=streaming,
        unanswered=streaming,
        choosing=False,
        due=None,
    )


def test_a_reply_seen_from_its_start_leaves_the_next_message_free_to_begin_early():
    view = _view(streaming=False)
    view.observe({"type": "turn_start", "turn": 2, "user_text": "Shorter", "generation_id": "g"})
    view.observe({"type": "turn_end", "turn": 2, "generation_id": "g", "text": "Done."})

    assert view.next_call("Thanks", "m3") == [
        *HISTORY,
        {"role": "user", "content": "Shorter"},
        {"role": "assistant", "content": "Done."},
        {"role": "user", "content": "Thanks"},
    ]


def test_a_reply_whose_start_the_view_missed_begins_nothing_early():
    """The socket's hello read the chat before turn 2's message was stored and resumed its
    reply after the turn_start: the page's resend of that message is no new turn, so no reply
    may begin (it would be withdrawn, taking the answered turn off the page)."""
    view = _view(streaming=True)
    view.observe({"type": "turn_end", "turn": 2, "generation_id": "g", "text": "Done."})

    assert view.next_call("Shorter", "m2") is None
    assert view.next_call("Something new", "m3") is None
