from django.test import Client
from django.urls import reverse
from django.utils.html import escape

from studyapp.feedback.models import SurveyResponse
from studyapp.participants.models import Outcome, Participation, Status
from tests.participants.journey import (
    consent_data,
    describedby_without_target,
    enter,
    held_participation,
    load_reference,
    prolific_params,
    prolific_pid,
)

CONSENT = reverse("participants:consent", args=["demo"])


def test_consent_page_shows_the_information_and_every_checkbox(client, version):
    enter(client, "demo", prolific_params("PID1"))
    response = client.get(CONSENT)
    assert response.status_code == 200
    page = response.content.decode()
    assert "This is a research study" in page
    for i, text in enumerate(version.spec["consent"]["checkboxes"]):
        assert f'name="agree_{i}"' in page
        assert escape(text) in page
    # Participants never learn which arm they are in.
    for condition in version.conditions.all():
        assert condition.name not in page


def test_consent_with_every_box_assigns_a_condition_and_a_document_type(client, version):
    enter(client, "demo", prolific_params("PID1"))
    response = client.post(CONSENT, consent_data(version))
    assert response.status_code == 302
    assert response["Location"] == reverse("participants:prewriting", args=["demo"])
    participation = held_participation(client, "demo")
    assert participation.status == Status.CONSENTED
    assert participation.consented_at is not None
    assert participation.assigned_at is not None
    assert participation.condition.version == version
    assert participation.document_type in {t["key"] for t in version.spec["document_types"]}


def test_consent_missing_a_box_is_refused_and_assigns_nothing(client, version):
    enter(client, "demo", prolific_params("PID1"))
    data = consent_data(version)
    del data["agree_1"]
    response = client.post(CONSENT, data)
    assert response.status_code == 200
    assert b"Please tick this box" in response.content
    participation = held_participation(client, "demo")
    assert participation.status == Status.ENTERED
    assert participation.condition is None


def test_consent_errors_are_tied_to_their_boxes(client, version):
    enter(client, "demo", prolific_params("PID1"))
    page = client.post(CONSENT, {"decision": "agree"}).content.decode()
    assert 'aria-describedby="id_agree_0_error"' in page
    assert 'id="id_agree_0_error"' in page
    assert describedby_without_target(page) == []


def test_declining_ends_with_the_declined_code(client, version):
    enter(client, "demo", prolific_params("PID1"))
    response = client.post(CONSENT, {"decision": "decline"})
    assert response.status_code == 302
    assert response["Location"] == reverse("feedback:done", args=["demo"])
    participation = held_participation(client, "demo")
    assert participation.status == Status.DECLINED
    assert participation.outcome == Outcome.DECLINED
    assert participation.completion_code == "NOCONSENT"
    assert participation.condition is None
    done = client.get(response["Location"])
    # A page says what happened, then goes on to Prolific with the outcome's code.
    assert done.status_code == 200
    assert b'href="https://app.prolific.com/submissions/complete?cc=NOCONSENT"' in done.content
    # The decision is final: the consent page now leads to the end.
    assert client.post(CONSENT, consent_data(version))["Location"] == response["Location"]
    assert held_participation(client, "demo").status == Status.DECLINED


def test_assignment_is_sticky_on_return(version):
    first = Client()
    enter(first, "demo", prolific_params("PID1"))
    first.post(CONSENT, consent_data(version))
    assigned = held_participation(first, "demo")
    second = Client()
    response = enter(second, "demo", prolific_params("PID1"))
    assert response["Location"] == reverse("participants:prewriting", args=["demo"])
    again = second.post(CONSENT, consent_data(version))
    assert again["Location"] == reverse("participants:prewriting", args=["demo"])
    returned = held_participation(second, "demo")
    assert (returned.condition, returned.document_type) == (
        assigned.condition,
        assigned.document_type,
    )


def test_conditions_come_from_the_participations_own_version(client, version):
    enter(client, "demo", prolific_params("PID1"))
    newer = load_reference(title="Second version")
    assert newer.number == version.number + 1
    client.post(CONSENT, consent_data(version))
    participation = held_participation(client, "demo")
    assert participation.version == version
    assert participation.condition.version == version
    # A newcomer starts on the newest version.
    enter(Client(), "demo", prolific_params("PID2"))
    assert Participation.objects.get(external_id=prolific_pid("PID2")).version == newer


def test_steps_cannot_be_skipped_by_url(client, version):
    enter(client, "demo", prolific_params("PID1"))
    for name in ("participants:prewriting", "feedback:final", "feedback:done"):
        response = client.get(reverse(name, args=["demo"]))
        assert response.status_code == 302, name
        assert response["Location"] == CONSENT
    response = client.post(reverse("feedback:finish", args=["demo"]))
    assert response["Location"] == CONSENT
    response = client.post(reverse("participants:prewriting", args=["demo"]), {"topic": "x"})
    assert response["Location"] == CONSENT
    assert SurveyResponse.objects.count() == 0


def test_csrf_is_enforced_on_consent(version):
    client = Client(enforce_csrf_checks=True)
    enter(client, "demo", prolific_params("PID1"))
    response = client.post(CONSENT, consent_data(version))
    assert response.status_code == 403
    assert held_participation(client, "demo").status == Status.ENTERED
    client.get(CONSENT)
    token = client.cookies["csrftoken"].value
    response = client.post(CONSENT, {**consent_data(version), "csrfmiddlewaretoken": token})
    assert response.status_code == 302
    assert held_participation(client, "demo").status == Status.CONSENTED
