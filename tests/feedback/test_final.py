from django.test import Client
from django.urls import reverse

from studyapp.feedback.models import FINAL_TURN, Rating, Scale, SurveyKind, SurveyResponse
from studyapp.feedback.services import writing_finish
from studyapp.participants.models import Outcome, Participation, Status
from tests.participants.journey import (
    describedby_without_target,
    final_data,
    prolific_params,
    record_turns,
    start_writing,
)

FINAL = reverse("feedback:final", args=["demo"])
DONE = reverse("feedback:done", args=["demo"])


def _finished(client: Client) -> Participation:
    participation = start_writing(client, "demo", prolific_params("PID1"))
    record_turns(participation, 8, draft=True)
    assert client.post(reverse("feedback:finish", args=["demo"])).status_code == 302
    participation.refresh_from_db()
    return participation


def test_questions_are_shown_with_the_attention_check_among_them(client, version):
    _finished(client)
    response = client.get(FINAL)
    assert response.status_code == 200
    keys = list(response.context["form"].fields)
    assert keys.index("attention") not in (0, len(keys) - 1)
    assert set(keys) == {q["key"] for q in version.spec["survey"]["questions"]} | {"attention"}
    page = response.content.decode()
    for value in range(1, 11):
        assert f'name="document_quality" value="{value}"' in page
    assert 'type="radio"' in page


def test_answers_complete_the_participation(client, version):
    participation = _finished(client)
    response = client.post(FINAL, final_data())
    assert response.status_code == 302
    assert response["Location"] == DONE
    participation.refresh_from_db()
    assert participation.status == Status.COMPLETED
    assert participation.outcome == Outcome.COMPLETED
    assert participation.attention_passed is True
    assert participation.completion_code == "C1A2B3CD"
    assert participation.total_seconds > 0
    ratings = {
        r.scale: r.value
        for r in Rating.objects.filter(participation=participation, turn=FINAL_TURN)
    }
    assert ratings == {Scale.DOCUMENT_QUALITY: 8, Scale.OVERALL: 9}
    answers = SurveyResponse.objects.get(participation=participation, kind=SurveyKind.FINAL).answers
    assert answers == {**final_data(), "document_quality": 8, "overall": 9}


def test_failing_the_attention_check_gives_its_code(client, version):
    participation = _finished(client)
    response = client.post(FINAL, final_data(attention="Strongly agree"))
    assert response.status_code == 302
    participation.refresh_from_db()
    assert participation.status == Status.COMPLETED
    assert participation.attention_passed is False
    assert participation.outcome == Outcome.FAILED_ATTENTION
    assert participation.completion_code == "FAILATTN"
    done = client.get(DONE)
    # A page says what happened, then goes on to Prolific with the outcome's code.
    assert done.status_code == 200
    assert b'href="https://app.prolific.com/submissions/complete?cc=FAILATTN"' in done.content


def _refused(client: Client, participation: Participation, data: dict, message: bytes):
    response = client.post(FINAL, data)
    assert response.status_code == 200
    assert message in response.content
    participation.refresh_from_db()
    assert participation.status == Status.FINISHED
    assert not SurveyResponse.objects.filter(kind=SurveyKind.FINAL).exists()
    assert not Rating.objects.filter(turn=FINAL_TURN).exists()
    return response


def test_out_of_range_scale_values_are_refused(client, version):
    participation = _finished(client)
    for bad in ("11", "0", "seven", "7.5"):
        _refused(
            client,
            participation,
            final_data(document_quality=bad),
            b"Please choose a number from 1 to 10.",
        )


def test_missing_answers_are_refused(client, version):
    participation = _finished(client)
    data = final_data()
    del data["overall"]
    del data["attention"]
    response = _refused(client, participation, data, b"Please choose a number.")
    assert b"Please choose an answer." in response.content


def test_too_short_text_is_refused_and_answers_are_shown_again(client, version):
    participation = _finished(client)
    response = _refused(
        client,
        participation,
        final_data(strengths="short"),
        b"Please write at least 10 characters.",
    )
    page = response.content.decode()
    assert "Sometimes too long." in page
    assert 'name="document_quality" value="8" id="id_document_quality_7" required checked' in page


def test_help_and_errors_are_the_elements_aria_describedby_names(client, version):
    participation = _finished(client)
    page = client.get(FINAL).content.decode()
    assert 'aria-describedby="id_strengths_helptext"' in page
    assert '<p class="help" id="id_strengths_helptext">At least 10 characters.</p>' in page
    assert describedby_without_target(page) == []
    data = final_data(strengths="short")
    del data["overall"]
    page = _refused(client, participation, data, b"Please choose a number.").content.decode()
    assert 'aria-describedby="id_strengths_helptext id_strengths_error"' in page
    assert 'id="id_overall_group" aria-describedby="id_overall_error"' in page
    assert describedby_without_target(page) == []


def test_a_second_submission_is_a_no_op(client, version):
    participation = _finished(client)
    client.post(FINAL, final_data())
    response = client.post(FINAL, final_data(document_quality="2", attention="Strongly agree"))
    assert response.status_code == 302
    assert response["Location"] == DONE
    assert SurveyResponse.objects.filter(participation=participation, kind="final").count() == 1
    assert Rating.objects.filter(participation=participation, turn=FINAL_TURN).count() == 2
    participation.refresh_from_db()
    assert participation.outcome == Outcome.COMPLETED


def test_csrf_is_enforced_on_the_final_questions(version):
    client = Client(enforce_csrf_checks=True)
    participation = start_writing(client, "demo", prolific_params("PID1"))
    record_turns(participation, 8, draft=True)
    writing_finish(participation=participation)
    client.get(FINAL)  # renders the form and sets the CSRF cookie
    token = client.cookies["csrftoken"].value
    assert client.post(FINAL, final_data()).status_code == 403
    participation.refresh_from_db()
    assert participation.status == Status.FINISHED
    response = client.post(FINAL, {**final_data(), "csrfmiddlewaretoken": token})
    assert response.status_code == 302
    participation.refresh_from_db()
    assert participation.status == Status.COMPLETED


def test_answers_posted_after_a_time_out_are_shown_back_not_stored(client, version):
    participation = _finished(client)
    Participation.objects.filter(pk=participation.pk).update(
        status=Status.TIMED_OUT, outcome=Outcome.TIMED_OUT, completion_code="TIMEDOUT"
    )
    strengths = "It asked <b>good</b> questions before it drafted."
    response = client.post(FINAL, final_data(strengths=strengths))
    assert response["Location"] == DONE
    page = client.get(DONE).content.decode()
    assert '<section id="kept-text" class="notice" aria-labelledby' in page  # not hidden
    assert "What did the assistant do well?" in page
    assert "It asked &lt;b&gt;good&lt;/b&gt; questions before it drafted.</textarea>" in page
    assert not SurveyResponse.objects.filter(
        participation=participation, kind=SurveyKind.FINAL
    ).exists()
