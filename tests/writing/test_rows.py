"""The send path's reads as plain rows (studyapp/writing/rows.py)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from django.db import connection, transaction

from studyapp.participants.models import Participation, ParticipationEvent
from studyapp.studies.models import StudyVersion
from studyapp.writing import rows
from studyapp.writing.models import Message, Role
from studyapp.writing.services import message_send
from tests.writing.conftest import make_participation

pytestmark = pytest.mark.django_db


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
