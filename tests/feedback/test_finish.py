from django.test import Client
from django.urls import reverse

from studyapp.participants.models import Status
from studyapp.writing.models import DocumentVersion, Message, Role
from tests.participants.journey import (
    load_reference,
    prolific_params,
    record_turns,
    start_writing,
)

FINISH = reverse("feedback:finish", args=["demo"])
FINAL = reverse("feedback:final", args=["demo"])


def test_finishing_after_enough_turns_and_ratings_opens_the_final_questions(client, version):
    participation = start_writing(client, "demo", prolific_params("PID1"))
    record_turns(participation, 8, draft=True)
    response = client.post(FINISH)
    assert response.status_code == 302
    assert response["Location"] == FINAL
    participation.refresh_from_db()
    assert participation.status == Status.FINISHED
    assert participation.finished_at >= participation.writing_at


def test_too_few_turns_is_a_409_with_a_way_back(client, version):
    participation = start_writing(client, "demo", prolific_params("PID1"))
    record_turns(participation, 7, draft=True)
    response = client.post(FINISH)
    assert response.status_code == 409
    assert b"at least 8 completed turns" in response.content
    assert b"you have 7" in response.content
    assert reverse("writing:page", args=["demo"]).encode() in response.content
    participation.refresh_from_db()
    assert participation.status == Status.WRITING
    assert participation.finished_at is None


def test_failed_or_inactive_replies_do_not_count_as_turns(client, version):
    participation = start_writing(client, "demo", prolific_params("PID1"))
    record_turns(participation, 8, draft=True)
    Message.objects.filter(participation=participation, role=Role.ASSISTANT, turn=8).update(
        error="model unavailable"
    )
    assert client.post(FINISH).status_code == 409
    Message.objects.filter(participation=participation, role=Role.ASSISTANT, turn=8).update(
        error="", is_active=False
    )
    assert client.post(FINISH).status_code == 409
    participation.refresh_from_db()
    assert participation.status == Status.WRITING


def test_a_pending_checkpoint_rating_blocks_finishing(client, version):
    participation = start_writing(client, "demo", prolific_params("PID1"))
    record_turns(participation, 9, draft=True, rate_at=(3, 6))
    response = client.post(FINISH)
    assert response.status_code == 409
    assert b"rate the conversation" in response.content
    participation.refresh_from_db()
    assert participation.status == Status.WRITING


def test_finish_only_accepts_post(client, version):
    participation = start_writing(client, "demo", prolific_params("PID1"))
    record_turns(participation, 8, draft=True)
    assert client.get(FINISH).status_code == 405
    participation.refresh_from_db()
    assert participation.status == Status.WRITING


def test_a_second_finish_just_goes_to_the_final_questions(client, version):
    participation = start_writing(client, "demo", prolific_params("PID1"))
    record_turns(participation, 8, draft=True)
    client.post(FINISH)
    participation.refresh_from_db()
    finished_at = participation.finished_at
    response = client.post(FINISH)
    assert response.status_code == 302
    assert response["Location"] == FINAL
    participation.refresh_from_db()
    assert participation.finished_at == finished_at


def test_csrf_is_enforced_on_finish(version):
    client = Client(enforce_csrf_checks=True)
    participation = start_writing(client, "demo", prolific_params("PID1"))
    record_turns(participation, 8, draft=True)
    assert client.post(FINISH).status_code == 403
    participation.refresh_from_db()
    assert participation.status == Status.WRITING


def test_another_browser_cannot_finish_someone_elses_chat(version):
    owner = Client()
    participation = start_writing(owner, "demo", prolific_params("PID1"))
    record_turns(participation, 8, draft=True)
    response = Client().post(FINISH)
    assert response.status_code == 404
    participation.refresh_from_db()
    assert participation.status == Status.WRITING


def test_a_side_by_side_pair_waiting_for_a_pick_blocks_finishing(client, version):
    import uuid

    participation = start_writing(client, "demo", prolific_params("PID1"))
    record_turns(participation, 8, draft=True)
    Message.objects.create(participation=participation, turn=9, role=Role.USER, text="More?")
    group = uuid.uuid4()
    for text in ("Reply A", "Reply B"):
        Message.objects.create(participation=participation, turn=9, role=Role.ASSISTANT,
                               text=text, is_active=False, alternative_group=group)  # fmt: skip
    response = client.post(FINISH)
    assert response.status_code == 409
    assert b"pick one of the two replies" in response.content
    participation.refresh_from_db()
    assert participation.status == Status.WRITING


def test_an_empty_or_blank_document_blocks_finishing(client, version):
    participation = start_writing(client, "demo", prolific_params("PID1"))
    record_turns(participation, 8)
    response = client.post(FINISH)
    assert response.status_code == 409
    assert b"write your document" in response.content
    assert b"it has 0" in response.content
    DocumentVersion.objects.create(participation=participation, number=1, text=" \n\t ")
    assert client.post(FINISH).status_code == 409
    participation.refresh_from_db()
    assert participation.status == Status.WRITING


def test_the_study_file_sets_the_document_minimum(client, db):
    load_reference(writing={"min_document_words": 10})
    participation = start_writing(client, "demo", prolific_params("PID1"))
    record_turns(participation, 8, draft=True)  # six words
    response = client.post(FINISH)
    assert response.status_code == 409
    assert b"at least 10 words (it has 6)" in response.content
    DocumentVersion.objects.create(
        participation=participation, number=2, text="A first draft of the post, now with ten words."
    )
    assert client.post(FINISH).status_code == 302


def test_replies_without_text_and_one_word_messages_do_not_count(client, version):
    participation = start_writing(client, "demo", prolific_params("PID1"))
    record_turns(participation, 8, draft=True)
    replies = Message.objects.filter(participation=participation, role=Role.ASSISTANT)
    replies.filter(turn=8).update(text="", finish_reason="cancelled")
    response = client.post(FINISH)
    assert response.status_code == 409
    assert b"you have 7" in response.content
    replies.filter(turn=8).update(text="Stopped after a few words", finish_reason="cancelled")
    Message.objects.filter(participation=participation, role=Role.USER, turn=7).update(text="a")
    assert b"you have 7" in client.post(FINISH).content
    Message.objects.filter(participation=participation, role=Role.USER, turn=7).update(text="a b")
    assert client.post(FINISH).status_code == 302
