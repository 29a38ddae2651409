"""The conversation viewer: escaped transcript, inline ratings, metadata, document replay data."""

import json
import re

import pytest
from django.urls import reverse

from studyapp.feedback.models import Rating, Scale
from studyapp.participants.models import Status
from studyapp.writing.models import Message, Role
from tests.dashboards.builders import PSpec, build_known_study
from tests.factories import DocumentVersionFactory, StudyVersionFactory, SurveyResponseFactory

EVIL = '<script>alert("x")</script><img src=x onerror=alert(1)>'


@pytest.fixture
def convo(db):
    spec = PSpec(
        arm="collabllm",
        status=Status.COMPLETED,
        turns=4,
        interaction={3: 7},
        document_quality=8,
        overall=9,
        minutes=20,
        assistant_texts=["Hi", "Draft", EVIL, "Done"],
        tokens=[11, 22, 33, 44],
        ttft=[61.0, 62.0, 63.0, 64.0],
        errors={4: "<b>upstream</b> 503"},
        documents=["v1 text", f"v2 {EVIL}"],
    )
    known = build_known_study(specs=[spec])
    participation = known.built[0].participation
    SurveyResponseFactory(participation=participation, answers={"strengths": EVIL})
    url = reverse("dashboards:conversation", args=[known.study.slug, participation.public_id])
    return known, participation, url


def test_model_text_is_escaped(staff_client, convo):
    _, _, url = convo
    html = staff_client.get(url).content.decode()
    assert "<script>alert" not in html
    assert "<img src=x" not in html
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in html
    assert "&lt;b&gt;upstream&lt;/b&gt; 503" in html  # error text too
    # The replay data is JSON inside a script element: < is escaped as \u003C.
    data = re.search(
        r'<script id="document-versions" type="application/json">(.*?)</script>', html, re.S
    )[1]
    assert "<" not in data
    assert [v["text"] for v in json.loads(data)] == ["v1 text", f"v2 {EVIL}"]


def test_in_chat_ratings_follow_their_turn(staff_client, convo):
    _, _, url = convo
    html = staff_client.get(url).content.decode()
    assistant_3 = html.index('data-turn="3" data-role="assistant"')
    rating = html.index('data-rating-turn="3"')
    user_4 = html.index('data-turn="4" data-role="user"')
    assert assistant_3 < rating < user_4
    assert "Interaction rating after turn 3: <strong>7</strong>/10" in html


def test_metadata_and_final_answers_are_shown(staff_client, convo):
    _, participation, url = convo
    html = staff_client.get(url).content.decode()
    assert "ttft 63 ms" in html
    assert "tokens \u2013 in / 33 out" in html
    assert 'data-final="document_quality">8<' in html
    assert 'data-final="overall">9<' in html
    assert f'Participation <span class="mono">{participation.public_id}</span>' in html


def test_alternatives_are_listed_after_the_active_reply(staff_client, convo):
    _, participation, url = convo
    Message.objects.create(
        participation=participation, turn=2, role=Role.ASSISTANT, text="older try", is_active=False
    )
    html = staff_client.get(url).content.decode()
    assert html.index(">Draft<") < html.index(">older try<")
    assert "alternative" in html


def test_participation_of_another_study_is_a_404(staff_client, convo):
    _, participation, _ = convo
    other = StudyVersionFactory().study
    url = reverse("dashboards:conversation", args=[other.slug, participation.public_id])
    assert staff_client.get(url).status_code == 404


def test_query_count_is_fixed(staff_client, convo, django_assert_max_num_queries):
    _, participation, url = convo
    for n in range(3, 12):
        DocumentVersionFactory(participation=participation, number=n)
        Rating.objects.create(participation=participation, scale=Scale.THUMB, turn=n, value=1)
    # 12 reads, the status changes, and the access-log row.
    with django_assert_max_num_queries(14):
        assert staff_client.get(url).status_code == 200


def test_thumbs_are_shown_on_their_reply(staff_client, convo):
    _, participation, url = convo
    Rating.objects.create(participation=participation, scale=Scale.THUMB, turn=2, value=-1)
    html = staff_client.get(url).content.decode()
    assert html.index(">Draft<") < html.index('data-thumb="-1"') < html.index(">Done<")


@pytest.fixture
def answered(demo_version):
    """A demo-study participation whose answers the real services stored."""
    from studyapp.feedback.services import final_survey_submit
    from studyapp.participants.services import prewriting_submit
    from studyapp.studies.spec import document_type
    from tests.factories import ParticipationFactory

    spec = demo_version.spec
    doc = document_type(spec, "creative_writing")
    participation = ParticipationFactory(
        version=demo_version,
        condition=demo_version.conditions.get(name="base"),
        status=Status.CONSENTED,
        document_type="creative_writing",
    )
    answers = {q: f"answer {i}" for i, q in enumerate(doc["questions"])}
    participation = prewriting_submit(
        participation=participation, topic=doc["topics"][0], answers=answers
    )
    participation.status = Status.FINISHED
    participation.save(update_fields=["status"])
    final_survey_submit(
        participation=participation,
        answers={
            "document_quality": 7,
            "overall": 8,
            "strengths": "Good ideas throughout.",
            "weaknesses": "Too wordy at times.",
            "stop_reason": "I ran out of time",
            "attention": spec["survey"]["attention_check"]["expected"],
        },
    )
    participation.refresh_from_db()
    url = reverse("dashboards:conversation", args=["demo", participation.public_id])
    return spec, doc, participation, url


def _section(html, name):
    return html.split(f'data-answers="{name}"')[1].split("</dl>")[0]


def test_prewriting_answers_are_a_question_answer_list_in_the_specs_order(staff_client, answered):
    _, doc, _, url = answered
    pre = _section(staff_client.get(url).content.decode(), "prewriting")
    assert "{" not in pre
    assert f'<dt>Topic</dt><dd class="prose">{doc["topics"][0]}</dd>' in pre
    for i, question in enumerate(doc["questions"]):
        assert f'<dt>{question}</dt><dd class="prose">answer {i}</dd>' in pre
    positions = [pre.index(q) for q in doc["questions"]]
    assert positions == sorted(positions)


def test_final_answers_are_listed_once_with_their_question(staff_client, answered):
    spec, _, _, url = answered
    final = _section(staff_client.get(url).content.decode(), "final")
    assert final.count("<dt>") == len(spec["survey"]["questions"]) + 1  # + attention check
    assert "<dt>document_quality</dt>" not in final
    assert final.count('data-final="document_quality"') == 1
    assert 'data-final="document_quality">7<' in final
    assert 'data-final="overall">8<' in final
    assert 'data-final="strengths">Good ideas throughout.<' in final
    for question in spec["survey"]["questions"]:
        assert f"<dt>{question['text']}</dt>" in final


def test_status_shows_the_outcome_only_when_it_differs(staff_client, answered):
    _, _, participation, url = answered
    html = staff_client.get(url).content.decode()
    assert "data-status>completed<" in html
    assert "completed (completed)" not in html
    participation.outcome = "failed_attention"
    participation.save(update_fields=["outcome"])
    html = staff_client.get(url).content.decode()
    assert "data-status>completed (failed_attention)" in html
