"""Storing a finished reply: one INSERT for most, the event and a savepoint for the others."""

from __future__ import annotations

import uuid

import pytest

from studyapp.participants.models import EventKind, ParticipationEvent
from studyapp.writing.models import Message, Role
from studyapp.writing.services import turn_record
from tests.writing.conftest import make_participation

pytestmark = pytest.mark.django_db(transaction=True)  # autocommit, as in the database worker


def _record(participation, finish_reason: str = "stop", text: str = "A reply", **extra):
    return turn_record(
        participation_id=participation.pk,
        turn=1,
        generation_id=str(uuid.uuid4()),
        record={"text": text, "finish_reason": finish_reason, "backend": "offline", **extra},
        seed=7,
    )


def test_a_finished_reply_is_one_insert(demo_version, django_assert_num_queries):
    participation = make_participation(demo_version)
    with django_assert_num_queries(1):
        message = _record(participation)
    stored = Message.objects.get(pk=message.pk)
    assert (stored.role, stored.turn, stored.is_active, stored.text) == (
        Role.ASSISTANT, 1, True, "A reply"
    )  # fmt: skip
    assert stored.seed == 7
    assert not ParticipationEvent.objects.filter(participation=participation).exists()


@pytest.mark.parametrize("ending", ["stop", "cancelled"])
def test_a_second_reply_to_an_answered_turn_is_kept_aside(demo_version, ending):
    participation = make_participation(demo_version)
    first = _record(participation, text="The first reply")
    second = _record(participation, finish_reason=ending, text="A second reply")
    assert Message.objects.get(pk=first.pk).is_active
    aside = Message.objects.get(pk=second.pk)
    assert not aside.is_active
    assert aside.text == "A second reply"
    assert "superseded: turn already answered" in aside.warning
    events = ParticipationEvent.objects.filter(participation=participation, kind=EventKind.STOP)
    assert events.count() == (1 if ending == "cancelled" else 0)


def test_a_failed_reply_is_stored_inactive_with_its_event(demo_version):
    participation = make_participation(demo_version)
    message = _record(participation, finish_reason="error", text="Half a", error="cut off")
    stored = Message.objects.get(pk=message.pk)
    assert not stored.is_active
    assert stored.error == "cut off"
    event = ParticipationEvent.objects.get(
        participation=participation, kind=EventKind.MODEL_ERROR
    )
    assert event.data["generation_id"] == str(stored.generation_id)
    assert event.data["error"] == "cut off"


@pytest.mark.parametrize("ending", ["stop", "error"])
def test_a_generation_recorded_twice_is_stored_once(demo_version, ending):
    """A write retried after its answer was lost, or a lost reply resolved by two processes."""
    participation = make_participation(demo_version)
    generation_id = str(uuid.uuid4())
    record = {"text": "A reply", "finish_reason": ending, "error": "cut off"}
    first, again = (
        turn_record(
            participation_id=participation.pk,
            turn=1,
            generation_id=generation_id,
            record=record,
            seed=None,
        )
        for _ in range(2)
    )
    assert first.pk == again.pk
    assert Message.objects.filter(participation=participation).count() == 1
    events = ParticipationEvent.objects.filter(participation=participation)
    assert events.count() == (1 if ending == "error" else 0)
