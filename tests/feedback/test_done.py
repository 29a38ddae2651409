from datetime import timedelta

from django.test import Client
from django.urls import reverse
from django.utils import timezone

from studyapp.feedback.services import final_survey_submit, writing_finish
from studyapp.participants.models import Outcome, Participation, Status
from studyapp.studies.models import Study
from tests.participants.journey import (
    enter,
    held_participation,
    mturk_params,
    prolific_params,
    record_turns,
    start_writing,
)

DONE = reverse("feedback:done", args=["demo"])
ANSWERS = {
    "document_quality": 8, "overall": 9, "strengths": "Helpful ideas.",
    "weaknesses": "A bit verbose.", "stop_reason": "Other", "attention": "Somewhat disagree",
}


def _complete(client: Client, params: dict[str, str], **answers) -> Participation:
    participation = start_writing(client, "demo", params)
    record_turns(participation, 8, draft=True)
    participation = writing_finish(participation=participation)
    return final_survey_submit(participation=participation, answers={**ANSWERS, **answers})


def test_prolific_completion_redirects_with_the_code(client, version):
    _complete(client, prolific_params("PID1"))
    response = client.get(DONE)
    assert response.status_code == 302
    assert response["Location"] == "https://app.prolific.com/submissions/complete?cc=C1A2B3CD"


def test_mturk_completion_posts_the_assignment_to_mturk(client, version):
    _complete(client, mturk_params("W1"))
    response = client.get(DONE)
    assert response.status_code == 200
    page = response.content.decode()
    assert 'action="https://workersandbox.mturk.com/mturk/externalSubmit"' in page
    assert 'name="assignmentId" value="A-W1"' in page
    assert 'method="post"' in page
    assert ".submit()" in page


def test_mturk_resubmission_uses_the_current_assignment(client, version):
    # The worker returned the HIT and accepted it again, in the browser that holds it.
    enter(client, "demo", mturk_params("W1"))
    enter(client, "demo", {**mturk_params("W1"), "assignmentId": "A-again"})
    assert held_participation(client, "demo").platform_data["assignmentId"] == "A-again"


def test_a_forged_mturk_submit_host_is_never_used(client, version):
    participation = _complete(client, mturk_params("W1"))
    Participation.objects.filter(pk=participation.pk).update(
        platform_data={**participation.platform_data, "turkSubmitTo": "https://evil.example"}
    )
    page = client.get(DONE).content.decode()
    assert "evil.example" not in page
    assert "externalSubmit" not in page
    assert "C1A2B3CD" in page


def _pilot(label: str) -> dict[str, str]:
    return {"participant_label": label, "pilot_key": Study.objects.get(slug="demo").pilot_key}


def test_a_pilot_completion_never_shows_the_real_code(client, pilot_version):
    _complete(client, _pilot("pilot-7"))
    response = client.get(DONE)
    assert response.status_code == 200
    assert b"test run" in response.content
    assert b"completion-code" not in response.content
    for code in pilot_version.spec["completion_codes"].values():
        assert code.encode() not in response.content


def _outcome_page(client, outcome: Outcome, code: str, **fields) -> str:
    enter(client, "demo", prolific_params("PID8"))
    Participation.objects.update(outcome=outcome, completion_code=code, **fields)
    response = client.get(DONE)
    assert response.status_code == 200  # a page first, not a redirect
    page = response.content.decode()
    link = f'href="https://app.prolific.com/submissions/complete?cc={code}"'
    assert f'id="prolific-link" {link}' in page
    assert 'id="redirect-seconds">10<' in page
    return " ".join(page.split())


def test_a_timed_out_prolific_participant_is_told_why_before_going_back(client, version):
    now = timezone.now()
    page = _outcome_page(
        client, Outcome.TIMED_OUT, "TIMEDOUT", status=Status.TIMED_OUT, timed_out_at=now
    )
    assert "Your session has expired" in page
    assert "not used for 30 minutes" in page  # the demo's idle limit
    assert "return your submission" in page
    assert 'id="kept-text"' in page  # what the writing page kept is shown back

    Participation.objects.update(entered_at=now - timedelta(minutes=95))
    page = " ".join(client.get(DONE).content.decode().split())
    assert "time limit of 90 minutes" in page


def test_a_prolific_participant_who_declined_sees_a_page_before_going_back(client, version):
    page = _outcome_page(client, Outcome.DECLINED, "NOCONSENT", status=Status.DECLINED)
    assert "You chose not to take part" in page


def test_a_failed_attention_check_is_explained_before_going_back(client, version):
    page = _outcome_page(client, Outcome.FAILED_ATTENTION, "FAILATTN", status=Status.COMPLETED)
    assert "not passing the attention check" in page


def test_a_timed_out_pilot_sees_that_it_expired_and_no_code(client, pilot_version):
    enter(client, "demo", _pilot("pilot-8"))
    Participation.objects.update(status=Status.TIMED_OUT, outcome=Outcome.TIMED_OUT)
    response = client.get(DONE)
    assert response.status_code == 200
    assert b"expired" in response.content
    assert b"TIMEDOUT" not in response.content
