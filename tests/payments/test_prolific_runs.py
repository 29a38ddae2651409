"""Dashboard Prolific requests run as Celery tasks with a visible status; a redelivered task
neither repeats a finished run nor pays twice."""

import pytest

from studyapp.payments.models import BonusBatch, PayState, ProlificRun, ProlificStudy, RunState
from studyapp.payments.services import bonus_grant
from studyapp.payments.tasks import prolific_run_task
from studyapp.studies.services import study_load
from tests.conftest import REFERENCE_STUDY
from tests.exports.builders import participation_make

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def owed(fake):
    version = study_load(text=REFERENCE_STUDY.read_text(), slug="runs", offline=True).version
    ProlificStudy.objects.create(study=version.study, prolific_study_id="s1")
    done, (pid, *_) = participation_make(version=version)
    fake.add_submission(pid, "AWAITING REVIEW")
    bonus_grant(participation=done, amount="1.50", reason="quality")
    return {"study": version.study, "pid": pid}


def test_the_button_queues_a_run_that_the_task_carries_out(staff, fake, owed, monkeypatch):
    queued = []
    monkeypatch.setattr(prolific_run_task, "delay", queued.append)
    page = staff.post("/dashboard/runs/prolific/pay/", follow=True)
    run = ProlificRun.objects.get()
    # The request only queued it: nothing went to Prolific during the web request.
    assert queued == [run.pk]
    assert not fake.pay_calls
    assert (run.action, run.state, run.requested_by.username) == ("pay", "queued", "researcher")
    html = page.content.decode()
    assert f'data-prolific-run="{run.pk}"' in html
    assert "<td data-run-state>queued</td>" in html

    assert prolific_run_task(run.pk) == RunState.DONE
    run.refresh_from_db()
    assert run.message == "Paid 1 bonus batches."
    assert run.started_at is not None
    assert run.finished_at is not None
    assert fake.paid_cents(owed["pid"]) == 150
    html = staff.get("/dashboard/runs/").content.decode()
    assert "<td data-run-state>done</td>" in html
    assert "Paid 1 bonus batches." in html


def test_a_redelivered_task_does_not_run_a_finished_run_again(staff, fake, owed):
    staff.post("/dashboard/runs/prolific/review/")  # eager: carried out on commit
    staff.post("/dashboard/runs/prolific/pay/")
    review, pay = ProlificRun.objects.order_by("pk")
    assert (review.state, pay.state) == (RunState.DONE, RunState.DONE)
    calls, transitions = dict(fake.pay_calls), list(fake.transitions)
    assert prolific_run_task(pay.pk) is None
    assert prolific_run_task(review.pk) is None
    assert dict(fake.pay_calls) == calls
    assert sum(calls.values()) == 1
    assert fake.transitions == transitions
    assert fake.paid_cents(owed["pid"]) == 150


def test_a_run_left_running_by_a_lost_worker_runs_again_and_pays_once(fake, owed):
    fake.hang_next_pay = True  # the pay is carried out, its answer never comes
    first = ProlificRun.objects.create(study=owed["study"], action="pay")
    prolific_run_task(first.pk)
    first.refresh_from_db()
    assert first.state == RunState.DONE
    assert "without confirmation" in first.message, first.message
    # The worker is lost after claiming the run: the message is delivered again.
    ProlificRun.objects.filter(pk=first.pk).update(state=RunState.RUNNING)
    assert prolific_run_task(first.pk) == RunState.DONE
    assert sum(fake.pay_calls.values()) == 1
    assert fake.paid_cents(owed["pid"]) == 150
    assert BonusBatch.objects.get().pay_state == PayState.PAID


def test_a_failing_call_leaves_a_failed_run_with_the_reason(staff, fake, owed):
    ProlificStudy.objects.filter(study=owed["study"]).delete()
    staff.post("/dashboard/runs/prolific/import/")
    run = ProlificRun.objects.get()
    assert run.state == RunState.FAILED
    assert "has no Prolific study id" in run.message


def test_an_unknown_action_is_not_queued(staff, owed):
    assert staff.post("/dashboard/runs/prolific/refund/").status_code == 404
    assert not ProlificRun.objects.exists()
