import uuid

import pytest
from django.urls import reverse

from studyapp.feedback.models import DocumentScore, Rating, SurveyResponse
from studyapp.participants.models import AllocationSlot, Participation, ParticipationEvent
from studyapp.studies.models import Condition, Study, StudyVersion
from studyapp.writing.models import DocumentVersion, EditBatch, Message
from tests.participants.journey import prolific_params, record_turns, start_writing

MODELS = [
    Study, StudyVersion, Condition, Participation, ParticipationEvent, AllocationSlot, Message,
    DocumentVersion, EditBatch, Rating, SurveyResponse, DocumentScore,
]


@pytest.fixture
def researcher(client, django_user_model):
    user = django_user_model.objects.create_superuser("res", "res@example.com", "pw")
    client.force_login(user)
    return client


@pytest.fixture
def written(version):
    from django.test import Client

    participation = start_writing(Client(), "demo", prolific_params("PID1"))
    record_turns(participation, 3)
    DocumentVersion.objects.create(participation=participation, number=1, text="Draft")
    return participation


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_changelists_and_records_open_for_researchers(researcher, written, model):
    meta = model._meta
    url = reverse(f"admin:{meta.app_label}_{meta.model_name}_changelist")
    assert researcher.get(url).status_code == 200
    obj = model.objects.first()
    if obj is not None:
        url = reverse(f"admin:{meta.app_label}_{meta.model_name}_change", args=[obj.pk])
        assert researcher.get(url).status_code == 200


def test_log_records_cannot_be_edited_in_admin(researcher, written):
    message = Message.objects.first()
    url = reverse("admin:writing_message_change", args=[message.pk])
    researcher.post(url, {"text": "rewritten"})
    message.refresh_from_db()
    assert message.text != "rewritten"
    assert researcher.get(reverse("admin:writing_message_add")).status_code == 403


def test_participations_are_found_by_public_id(researcher, written):
    url = reverse("admin:participants_participation_changelist")
    page = researcher.get(url, {"q": str(written.public_id)}).content.decode()
    assert str(written.public_id) in page
    page = researcher.get(url, {"q": str(uuid.uuid4())}).content.decode()
    assert str(written.public_id) not in page
    assert researcher.get(url, {"q": "not-a-uuid"}).status_code == 200


def test_participation_list_filters_by_status_condition_and_platform(researcher, written):
    url = reverse("admin:participants_participation_changelist")
    for params in ({"status__exact": "writing"}, {"platform__exact": "prolific"},
                   {"condition__id__exact": str(written.condition_id)}):
        response = researcher.get(url, params)
        assert response.status_code == 200
        assert str(written.public_id) in response.content.decode()
    response = researcher.get(url, {"status__exact": "completed"})
    assert str(written.public_id) not in response.content.decode()


def test_participants_cannot_open_admin(client, version):
    start_writing(client, "demo", prolific_params("PID1"))
    response = client.get(reverse("admin:participants_participation_changelist"))
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]
