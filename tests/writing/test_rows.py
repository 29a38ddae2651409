"""The send path's plain SQL (studyapp/writing/rows.py) against what the ORM would do."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from django.db import IntegrityError, connection, transaction
from django.forms.models import model_to_dict

from studyapp.participants.models import Participation, ParticipationEvent
from studyapp.realtime import fastsql
from studyapp.studies.models import StudyVersion
from studyapp.writing import rows
from studyapp.writing.models import Message, Role
from studyapp.writing.services import message_send
from tests.writing.conftest import make_participation

pytestmark = pytest.mark.django_db


def _stored(message: Message) -> dict:
    row = model_to_dict(Message.objects.get(pk=message.pk))
    return {k: v for k, v in row.items() if k not in ("id", "generation_id")}


def test_insert_stores_what_save_stores(demo_version):
    participation = make_participation(demo_version)
    fields = {
        "participation_id": participation.pk,
        "turn": 1,
        "role": Role.ASSISTANT,
        "text": "Three short words",
        "sampling": {"temperature": 0.7, "top_p": 0.9},
        "prompt_tokens": 12,
        "ttft_ms": 3.5,
        "finish_reason": "stop",
    }
    saved = Message(**fields)
    saved.save()
    inserted = Message(**{**fields, "turn": 2})
    fastsql.insert(inserted)

    assert inserted.pk is not None
    assert not inserted._state.adding
    assert _stored(inserted) == {**_stored(saved), "turn": 2}
    stored = Message.objects.get(pk=inserted.pk)
    assert stored.sampling == {"temperature": 0.7, "top_p": 0.9}  # JSON, not a string
    assert stored.word_count == 3  # the database's generated column
    assert stored.created_at is not None
    assert stored.generation_id == inserted.generation_id  # the model's default, kept


def test_insert_of_a_row_the_constraints_refuse_raises_integrity_error(demo_version):
    participation = make_participation(demo_version)
    first = Message(participation_id=participation.pk, turn=1, role=Role.USER, text="hi")
    fastsql.insert(first)
    copy = Message(
        participation_id=participation.pk, turn=1, role=Role.USER, text="hi",
        generation_id=first.generation_id,
    )  # fmt: skip
    with pytest.raises(IntegrityError), transaction.atomic():
        fastsql.insert(copy)
    assert Message.objects.filter(participation=participation).count() == 1


def test_writing_locked_reads_the_spec_and_the_arm(demo_version):
    participation = make_participation(demo_version)
    with transaction.atomic():
        row = rows.writing_locked(participation.pk)
    assert row.pk == participation.pk
    assert row.public_id == participation.public_id
    assert row.status == participation.status
    assert row.spec == StudyVersion.objects.get(pk=demo_version.pk).spec
    assert row.condition_config == participation.condition.config
    Participation.objects.filter(pk=participation.pk).update(condition=None)
    with transaction.atomic():
        assert rows.writing_locked(participation.pk).condition_config is None
    with pytest.raises(Participation.DoesNotExist), transaction.atomic():
        rows.writing_locked(participation.pk + 10_000)


def test_active_message_rows_are_the_active_messages_in_order(demo_version):
    participation = make_participation(demo_version)
    for turn, role, active in [
        (2, Role.USER, True), (1, Role.ASSISTANT, False), (1, Role.USER, True),
        (1, Role.ASSISTANT, True),
    ]:  # fmt: skip
        Message.objects.create(
            participation=participation, turn=turn, role=role, text=f"{role} {turn}",
            is_active=active, error="" if active else "cut off",
        )  # fmt: skip
    got = [(m.turn, m.role, m.text) for m in rows.active_message_rows(participation.pk)]
    assert got == [(1, "user", "user 1"), (1, "assistant", "assistant 1"), (2, "user", "user 2")]


@pytest.mark.django_db(transaction=True)  # autocommit, as in the database worker
def test_a_message_is_one_transaction_of_three_statements(demo_version, django_assert_num_queries):
    participation = make_participation(demo_version)
    # BEGIN, the row lock, the active messages, the INSERT, COMMIT.
    with django_assert_num_queries(5):
        plan = message_send(participation_id=participation.pk, text="Hello", client_msg_id="a")
    assert plan.turn == 1
    assert plan.history == [{"role": "user", "content": "Hello"}]
    assert plan.condition_config == participation.condition.config
    assert Message.objects.get(participation=participation).client_msg_id == "a"
    assert not ParticipationEvent.objects.filter(participation=participation).exists()


def _prepared() -> dict[tuple[str, str], int]:
    """This connection's prepared statements: (name, text), and how often each has run. One
    text may be prepared more than once, for different parameter types."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT name, statement, generic_plans + custom_plans FROM pg_prepared_statements"
        )
        return {(name, text): runs for name, text, runs in cursor.fetchall()}


@pytest.mark.django_db(transaction=True)
def test_the_send_paths_statements_are_prepared_once_per_connection(demo_version):
    first, second = make_participation(demo_version), make_participation(demo_version)
    message_send(participation_id=first.pk, text="Hello", client_msg_id="a")
    once = _prepared()  # earlier tests on this connection may have prepared some already
    message_send(participation_id=second.pk, text="Hello", client_msg_id="b")
    twice = _prepared()
    ran = [text for (name, text) in once if twice[name, text] == once[name, text] + 1]
    # The row lock, the active messages and the INSERT ran prepared, with server-side
    # parameters, and the second message prepared nothing more.
    assert len(ran) == 3
    assert any("FOR UPDATE" in s for s in ran)
    assert any(s.startswith('INSERT INTO "writing_message"') for s in ran)
    assert all("$1" in statement for statement in ran)
    assert set(twice) == set(once)


@pytest.mark.django_db(transaction=True)
def test_with_prepared_statements_off_nothing_is_prepared(demo_version, monkeypatch):
    connection.ensure_connection()
    # What DB_PREPARED_STATEMENTS=0 gives the connection.
    monkeypatch.setattr(connection.connection, "prepare_threshold", None)
    before = _prepared()
    plan = message_send(
        participation_id=make_participation(demo_version).pk, text="Hi", client_msg_id="c"
    )
    assert plan.turn == 1
    assert _prepared() == before


@pytest.mark.parametrize(("value", "threshold"), [(None, 100), ("0", None), ("1", 100)])
def test_prepared_statements_are_a_setting(value, threshold):
    env = {**os.environ, "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/x"}
    env.pop("DB_PREPARED_STATEMENTS", None)
    if value is not None:
        env["DB_PREPARED_STATEMENTS"] = value
    code = (
        "import django.conf, studyapp.settings as s; "
        "print(s.DATABASES['default']['OPTIONS'].get('prepare_threshold'))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == str(threshold)
