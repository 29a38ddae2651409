"""The dashboard's Prolific buttons and the ``prolific`` command, against the loopback API."""

import pytest
from django.conf import settings
from django.core.management import call_command

from studyapp.participants.models import Status
from studyapp.payments.models import BonusBatch, PayState, ProlificStudy
from studyapp.payments.services import bonus_grant
from studyapp.payments.tasks import prolific_import_task
from studyapp.studies.services import study_load
from tests.conftest import REFERENCE_STUDY
from tests.exports.builders import participation_make

pytestmark = pytest.mark.django_db(transaction=True)


def test_buttons_import_review_and_pay(staff, fake):
    version = study_load(text=REFERENCE_STUDY.read_text(), slug="dash", offline=True).version
    ProlificStudy.objects.create(study=version.study, prolific_study_id="s1")
    done, (pid, *_) = participation_make(version=version)
    fake.add_submission(pid, "AWAITING REVIEW")
    gone, (gone_pid, *_) = participation_make(version=version, status=Status.WRITING)
    fake.add_submission(gone_pid, "RETURNED")
    bonus_grant(participation=done, amount="1.10", reason="quality")

    page = staff.post("/dashboard/dash/prolific/import/", follow=True)
    assert "Imported 2 submissions" in page.content.decode()
    assert "moved in the flow: 1 returned" in page.content.decode()
    page = staff.post("/dashboard/dash/prolific/review/", follow=True)
    assert "Sent 1 approvals and 0 rejections." in page.content.decode()
    page = staff.post("/dashboard/dash/prolific/pay/", follow=True)
    assert "Paid 1 bonus batches." in page.content.decode()
    assert [a for _, a, _ in fake.transitions] == ["APPROVE"]
    assert fake.paid_cents(pid) == 110
    assert BonusBatch.objects.get().pay_state == PayState.PAID
    gone.refresh_from_db()
    assert gone.status == Status.RETURNED
    assert staff.get("/dashboard/dash/prolific/import/").status_code == 405


def test_a_researcher_without_staff_rights_cannot_pay(client, fake):
    version = study_load(text=REFERENCE_STUDY.read_text(), slug="dash", offline=True).version
    ProlificStudy.objects.create(study=version.study, prolific_study_id="s1")
    response = client.post("/dashboard/dash/prolific/pay/")
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]
    assert not fake.setups


def test_command_pays(fake, capsys):
    version = study_load(text=REFERENCE_STUDY.read_text(), slug="cmd", offline=True).version
    ProlificStudy.objects.create(study=version.study, prolific_study_id="s1")
    done, (pid, *_) = participation_make(version=version)
    fake.add_submission(pid, "APPROVED")
    bonus_grant(participation=done, amount="2", reason="quality")
    call_command("prolific", "cmd", "pay")
    call_command("prolific", "cmd", "pay")
    assert "Paid 1 bonus batches." in capsys.readouterr().out
    assert fake.paid_cents(pid) == 200


def test_the_periodic_job_imports_open_linked_studies(fake):
    entry = next(e for e in settings.CELERY_BEAT_SCHEDULE.values()
                 if e["task"] == "payments.prolific_import")
    assert entry["schedule"] <= 900
    version = study_load(text=REFERENCE_STUDY.read_text(), slug="cron", offline=True).version
    ProlificStudy.objects.create(study=version.study, prolific_study_id="s1")
    gone, (pid, *_) = participation_make(version=version, status=Status.WRITING)
    fake.add_submission(pid, "TIMED-OUT")
    assert prolific_import_task.delay().get() == {"cron": 1}
    gone.refresh_from_db()
    assert gone.status == Status.TIMED_OUT


def test_the_periodic_job_does_nothing_without_a_token(settings):
    settings.PROLIFIC_API_TOKEN = ""
    assert prolific_import_task.delay().get() == {}
