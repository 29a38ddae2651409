"""The writing page: what it renders, who may see it, and what it must never show."""

from __future__ import annotations

import json
import re

import pytest
from django.contrib.staticfiles import finders
from django.urls import reverse

from studyapp.participants.models import Status
from studyapp.participants.tokens import participation_id_from_token
from tests.writing.conftest import CONDITION_NAMES, make_participation

pytestmark = pytest.mark.django_db

STABLE_IDS = (
    "status", "messages", "chat-input", "send", "stop", "rating", "turn-error", "retry",
    "document", "finish", "finish-form", "turn-count", "doc-status", "chat-error",
)  # fmt: skip


def _enter(client, participation) -> None:
    session = client.session
    session[f"participation:{participation.study.slug}"] = str(participation.public_id)
    session.save()


def _config(html: str) -> dict:
    match = re.search(r'<script id="writing-config" type="application/json">(.*?)</script>', html)
    assert match, "the page embeds its configuration"
    return json.loads(match.group(1))


def test_url_is_stable():
    assert reverse("writing:page", args=["demo"]) == "/study/demo/write/"


def test_page_renders_the_task_chat_document_and_widgets(client, writer):
    _enter(client, writer)
    response = client.get("/study/demo/write/")
    assert response.status_code == 200
    html = response.content.decode()
    for element_id in STABLE_IDS:
        assert f'id="{element_id}"' in html, element_id
    for value in range(1, 11):
        assert f'data-value="{value}"' in html
    assert "Very poor" in html  # the scale's anchors
    assert "Travelling on a tight budget" in html
    assert "Blog post" in html
    assert 'action="/study/demo/finish/"' in html
    assert "csrfmiddlewaretoken" in html
    assert re.search(r'id="finish"[^>]*disabled', html)
    assert "js/writing.js" in html
    assert "css/writing.css" in html


def test_page_embeds_a_token_for_this_participation_only(client, writer):
    _enter(client, writer)
    config = _config(client.get("/study/demo/write/").content.decode())
    assert participation_id_from_token(config["token"]) == str(writer.public_id)
    assert config["ws_path"] == "/ws/study/demo/"
    assert config["min_turns"] == 8
    assert config["finish_url"] == "/study/demo/finish/"


@pytest.mark.parametrize("condition", CONDITION_NAMES)
def test_page_never_names_the_condition_backend_or_model(client, demo_version, condition):
    participation = make_participation(demo_version, condition)
    _enter(client, participation)
    html = client.get("/study/demo/write/").content.decode()
    config = participation.condition.config
    forbidden = {condition, config["backend"], "proactive_base", "collabllm", "llama", "offline"}
    forbidden |= {config.get("model", ""), config.get("adapter", "")} - {""}
    for word in forbidden:
        assert not re.search(rf"(?<![\w-]){re.escape(word)}(?![\w-])", html, re.I), word
    for path in ("js/writing.js", "css/writing.css"):
        with open(finders.find(path), encoding="utf-8") as source:
            text = source.read().lower()
        assert "proactive_base" not in text
        assert "collabllm" not in text


def test_a_participant_on_another_step_is_sent_there(client, demo_version):
    participation = make_participation(demo_version, status=Status.FINISHED)
    _enter(client, participation)
    response = client.get("/study/demo/write/")
    assert response.status_code == 302
    assert response["Location"] == "/study/demo/final/"


def test_no_participation_in_this_browser_is_not_found(client, writer):
    assert client.get("/study/demo/write/").status_code == 404


def test_model_text_is_rendered_as_text_not_html():
    with open(finders.find("js/writing.js"), encoding="utf-8") as source:
        script = source.read()
    assert "innerHTML" not in script
    assert "insertAdjacentHTML" not in script
    assert "textContent" in script
