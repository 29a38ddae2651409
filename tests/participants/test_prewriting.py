import pytest
from django.test import Client
from django.urls import reverse
from django.utils.html import escape

from studyapp.feedback.models import SurveyKind, SurveyResponse
from studyapp.participants.models import Status
from studyapp.participants.selectors import prewriting_answer_rule
from studyapp.studies.spec import document_type
from tests.participants.journey import (
    consent_data,
    enter,
    held_participation,
    prewriting_data,
    prolific_params,
)

PREWRITING = reverse("participants:prewriting", args=["demo"])


def _consented(client: Client, version):
    enter(client, "demo", prolific_params("PID1"))
    client.post(reverse("participants:consent", args=["demo"]), consent_data(version))
    return held_participation(client, "demo")


def test_page_shows_the_assigned_type_its_topics_and_questions(client, version):
    participation = _consented(client, version)
    doc = document_type(version.spec, participation.document_type)
    page = client.get(PREWRITING).content.decode()
    assert (
        "You will write a short document together with an AI assistant. Type of document:\n"
        f'<strong id="document-type">{doc["label"]}</strong>.'
    ) in page
    for text in doc["topics"] + doc["questions"]:
        assert escape(text) in page
    others = [t for t in version.spec["document_types"] if t["key"] != doc["key"]]
    assert all(escape(t["topics"][0]) not in page for t in others)


def test_answers_are_stored_and_writing_opens(client, version):
    participation = _consented(client, version)
    data = prewriting_data(participation)
    response = client.post(PREWRITING, data)
    assert response.status_code == 302
    assert response["Location"] == "/study/demo/write/"
    participation.refresh_from_db()
    assert participation.status == Status.WRITING
    assert participation.writing_at is not None
    assert participation.topic == data["topic"]
    stored = SurveyResponse.objects.get(participation=participation, kind=SurveyKind.PREWRITING)
    doc = document_type(version.spec, participation.document_type)
    assert stored.answers["topic"] == data["topic"]
    assert stored.answers["answers"] == {
        q: f"My answer number {i}" for i, q in enumerate(doc["questions"])
    }


def test_too_few_answers_are_refused(client, version):
    participation = _consented(client, version)
    response = client.post(PREWRITING, prewriting_data(participation, answered=5))
    assert response.status_code == 200
    assert b"Please answer all 6 questions (you answered 5)." in response.content
    # What was typed is shown again.
    assert b"My answer number 4" in response.content
    participation.refresh_from_db()
    assert participation.status == Status.CONSENTED
    assert not SurveyResponse.objects.exists()


def test_whitespace_answers_do_not_count(client, version):
    participation = _consented(client, version)
    data = prewriting_data(participation)
    data["answer_0"] = "   "
    assert client.post(PREWRITING, data).status_code == 200
    assert not SurveyResponse.objects.exists()


def test_over_long_answers_are_refused(client, version):
    participation = _consented(client, version)
    data = prewriting_data(participation)
    data["answer_2"] = "x" * 1001
    response = client.post(PREWRITING, data)
    assert response.status_code == 200
    assert b"under 1000 characters" in response.content
    assert not SurveyResponse.objects.exists()


def test_a_topic_from_another_list_is_refused(client, version):
    participation = _consented(client, version)
    other = next(
        t for t in version.spec["document_types"] if t["key"] != participation.document_type
    )
    data = {**prewriting_data(participation), "topic": other["topics"][0]}
    response = client.post(PREWRITING, data)
    assert response.status_code == 200
    assert b"Please choose one of the listed topics" in response.content
    participation.refresh_from_db()
    assert participation.topic == ""


def test_a_second_submission_changes_nothing(client, version):
    participation = _consented(client, version)
    first = prewriting_data(participation)
    client.post(PREWRITING, first)
    doc = document_type(version.spec, participation.document_type)
    second = {**first, "topic": doc["topics"][1]}
    response = client.post(PREWRITING, second)
    assert response.status_code == 302
    assert SurveyResponse.objects.count() == 1
    participation.refresh_from_db()
    assert participation.topic == first["topic"]


def test_csrf_is_enforced_on_prewriting(version):
    client = Client(enforce_csrf_checks=True)
    enter(client, "demo", prolific_params("PID1"))
    client.get(reverse("participants:consent", args=["demo"]))
    token = client.cookies["csrftoken"].value
    client.post(
        reverse("participants:consent", args=["demo"]),
        {**consent_data(version), "csrfmiddlewaretoken": token},
    )
    participation = held_participation(client, "demo")
    assert client.post(PREWRITING, prewriting_data(participation)).status_code == 403
    participation.refresh_from_db()
    assert participation.status == Status.CONSENTED


def test_the_answer_rule_says_all_when_every_question_is_needed(client, version):
    _consented(client, version)
    page = client.get(PREWRITING).content.decode()
    assert "Answer all 6 questions (up to 1000 characters each)." in page
    assert "at least 6 of the 6" not in page


@pytest.mark.parametrize(
    ("needed", "total", "rule"),
    [
        (6, 6, "all 6 questions"),
        (3, 6, "at least 3 of the 6 questions"),
        (1, 1, "the question"),
        (0, 4, "as many of the 4 questions as you like"),
    ],
)
def test_answer_rule_wording(needed, total, rule):
    assert prewriting_answer_rule(needed=needed, total=total) == rule


def test_answers_posted_after_a_time_out_are_shown_back(client, version):
    participation = _consented(client, version)
    data = prewriting_data(participation)
    participation.status = Status.TIMED_OUT
    participation.outcome = "timed_out"
    participation.save(update_fields=["status", "outcome"])
    response = client.post(PREWRITING, data)
    assert response["Location"] == reverse("feedback:done", args=["demo"])
    page = client.get(response["Location"]).content.decode()
    answer = next(v for k, v in data.items() if k.startswith("answer_") and v)
    assert f">{escape(answer)}</textarea>" in page
    assert not SurveyResponse.objects.filter(participation=participation).exists()
