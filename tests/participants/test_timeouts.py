import threading
from datetime import timedelta

import pytest
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from studyapp.celery import app
from studyapp.feedback.services import writing_finish
from studyapp.participants.assignment import assignment_assign
from studyapp.participants.models import AllocationSlot, Outcome, Participation, Status
from studyapp.participants.tasks import participations_time_out_task
from studyapp.participants.timeouts import (
    participation_time_out_if_overdue,
    participations_time_out,
    time_left,
    timeout_reason,
)
from tests.exports.builders import participation_make
from tests.participants.journey import prolific_params, record_turns, start_writing


def _aged(participation, *, entered_min, seen_min=None):
    now = timezone.now()
    Participation.objects.filter(pk=participation.pk).update(
        entered_at=now - timedelta(minutes=entered_min),
        last_seen_at=None if seen_min is None else now - timedelta(minutes=seen_min),
    )
    return participation


def _make(version, status, **age):
    participation, _ = participation_make(version=version, status=status)
    return _aged(participation, **age)


def test_idle_and_overlong_participations_time_out_with_the_study_code(demo_version):
    # demo limits: idle 30 minutes, session 90 minutes.
    idle = _make(demo_version, Status.WRITING, entered_min=40, seen_min=31)
    silent = _make(demo_version, Status.ENTERED, entered_min=31)
    overlong = _make(demo_version, Status.FINISHED, entered_min=91, seen_min=1)
    active = _make(demo_version, Status.WRITING, entered_min=60, seen_min=2)
    finished = _make(demo_version, Status.COMPLETED, entered_min=500, seen_min=400)

    timed_out = participations_time_out()

    assert sorted(timed_out) == sorted([idle.pk, silent.pk, overlong.pk])
    for participation in (idle, silent, overlong):
        participation.refresh_from_db()
        assert participation.status == Status.TIMED_OUT
        assert participation.outcome == Outcome.TIMED_OUT
        assert participation.completion_code == "TIMEDOUT"
        assert participation.timed_out_at is not None
    active.refresh_from_db()
    finished.refresh_from_db()
    assert active.status == Status.WRITING
    assert finished.status == Status.COMPLETED
    assert participations_time_out() == []


def test_timing_out_frees_the_block_slot(demo_version):
    participation, _ = participation_make(version=demo_version, status=Status.CONSENTED)
    Participation.objects.filter(pk=participation.pk).update(condition=None)
    participation.refresh_from_db()
    with transaction.atomic():
        assignment_assign(participation=participation)
    assert AllocationSlot.objects.filter(participation=participation).exists()
    _aged(participation, entered_min=45, seen_min=35)
    participations_time_out()
    assert not AllocationSlot.objects.filter(participation=participation).exists()
    assert AllocationSlot.objects.filter(participation__isnull=True).exists()


@pytest.mark.django_db(transaction=True)
def test_a_participation_held_by_another_transaction_is_left_for_the_next_run():
    from studyapp.studies.services import study_load
    from tests.conftest import REFERENCE_STUDY

    version = study_load(text=REFERENCE_STUDY.read_text(), slug="held", offline=True).version
    participation = _make(version, Status.FINISHED, entered_min=40, seen_min=35)
    locked, release = threading.Event(), threading.Event()

    def hold():
        with transaction.atomic():
            Participation.objects.select_for_update().get(pk=participation.pk)
            locked.set()
            release.wait(10)
        connection.close()

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert locked.wait(10)
        assert participations_time_out() == []
    finally:
        release.set()
        holder.join(10)
    assert participations_time_out() == [participation.pk]


def test_the_periodic_job_is_scheduled_and_runs_the_service(demo_version):
    entry = next(
        e
        for e in settings.CELERY_BEAT_SCHEDULE.values()
        if e["task"] == "participants.time_out_abandoned"
    )
    assert entry["schedule"] <= 300
    assert "participants.time_out_abandoned" in app.tasks
    idle = _make(demo_version, Status.WRITING, entered_min=40, seen_min=31)
    assert participations_time_out_task.delay().get() == 1
    idle.refresh_from_db()
    assert idle.status == Status.TIMED_OUT


def test_heartbeats_alone_do_not_hold_off_the_idle_limit(demo_version):
    # A page left open and untouched: heartbeats every 15 s, last action 31 minutes ago.
    untouched = _make(demo_version, Status.WRITING, entered_min=40, seen_min=0)
    used = _make(demo_version, Status.WRITING, entered_min=40, seen_min=0)
    now = timezone.now()
    Participation.objects.filter(pk=untouched.pk).update(acted_at=now - timedelta(minutes=31))
    Participation.objects.filter(pk=used.pk).update(acted_at=now - timedelta(minutes=29))
    assert participations_time_out() == [untouched.pk]


def test_time_left_counts_down_to_each_limit(demo_version):
    participation = _make(demo_version, Status.WRITING, entered_min=60, seen_min=0)
    Participation.objects.filter(pk=participation.pk).update(
        acted_at=timezone.now() - timedelta(minutes=20)
    )
    participation.refresh_from_db()
    left = time_left(participation=participation)
    assert 29 * 60 < left.session_s <= 30 * 60  # demo: session 90 minutes
    assert 9 * 60 < left.idle_s <= 10 * 60  # demo: idle 30 minutes
    assert left.public() == {"session_s": round(left.session_s, 1), "idle_s": round(left.idle_s, 1)}


def test_one_overdue_participation_is_timed_out_on_request(demo_version):
    overdue = _make(demo_version, Status.WRITING, entered_min=95, seen_min=0)
    fresh = _make(demo_version, Status.WRITING, entered_min=5, seen_min=0)
    assert participation_time_out_if_overdue(participation_id=fresh.pk) is False
    assert participation_time_out_if_overdue(participation_id=overdue.pk) is True
    overdue.refresh_from_db()
    assert (overdue.status, overdue.completion_code) == (Status.TIMED_OUT, "TIMEDOUT")
    assert timeout_reason(participation=overdue) == "session"
    fresh.refresh_from_db()
    assert fresh.status == Status.WRITING
    idle = _make(demo_version, Status.WRITING, entered_min=40, seen_min=35)
    assert participation_time_out_if_overdue(participation_id=idle.pk) is True
    idle.refresh_from_db()
    assert timeout_reason(participation=idle) == "idle"


def test_consent_prewriting_and_finish_count_as_actions(client, version):
    participation = start_writing(client, "demo", prolific_params("PID9"))
    assert participation.acted_at == participation.writing_at
    record_turns(participation, 8, draft=True)
    # Its last heartbeat was long ago (the survey page sends none), but Finish was just now.
    _aged(participation, entered_min=45, seen_min=31)
    Participation.objects.filter(pk=participation.pk).update(
        acted_at=timezone.now() - timedelta(minutes=31)
    )
    participation.refresh_from_db()
    finished = writing_finish(participation=participation)
    assert finished.acted_at == finished.finished_at
    assert participations_time_out() == []


def test_the_periodic_job_skips_a_run_while_the_database_is_away(monkeypatch, caplog):
    from django.db import OperationalError

    from studyapp.participants import tasks

    def database_away():
        raise OperationalError("couldn't get a connection after 3.00 sec")

    monkeypatch.setattr(tasks, "participations_time_out", database_away)
    assert participations_time_out_task.delay().get() == 0
    assert [r.levelname for r in caplog.records if r.name == tasks.__name__] == ["WARNING"]
