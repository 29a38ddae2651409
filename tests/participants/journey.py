"""Helpers that walk a participant through the journey over HTTP (shared by journey tests)."""

from __future__ import annotations

import hashlib
import re
from typing import Any

import yaml
from django.test import Client
from django.urls import reverse

from studyapp.feedback.models import Rating, Scale
from studyapp.participants.models import Participation
from studyapp.participants.services import participation_consent, prewriting_submit
from studyapp.studies.models import StudyVersion
from studyapp.studies.services import study_load
from studyapp.studies.spec import document_type
from studyapp.writing.models import DocumentVersion, Message, Role
from tests.conftest import REFERENCE_STUDY


def load_reference(*, slug: str = "demo", **changes: Any) -> StudyVersion:
    """The reference study file under ``slug``; each keyword replaces or updates a top-level key."""
    raw = yaml.safe_load(REFERENCE_STUDY.read_text())
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(raw.get(key), dict):
            raw[key] = {**raw[key], **value}
        else:
            raw[key] = value
    return study_load(text=yaml.safe_dump(raw), slug=slug).version


def prolific_pid(label: str) -> str:
    """A Prolific-shaped id (24 hexadecimal characters), the same for the same label."""
    return hashlib.sha256(label.encode()).hexdigest()[:24]


def prolific_params(label: str) -> dict[str, str]:
    """The entry query Prolific sends for the participant called ``label`` in a test."""
    return {
        "PROLIFIC_PID": prolific_pid(label),
        "STUDY_ID": "study123",
        "SESSION_ID": f"sess-{label}",
    }


def mturk_params(worker: str, *, host: str = "https://workersandbox.mturk.com") -> dict[str, str]:
    return {
        "workerId": worker,
        "assignmentId": f"A-{worker}",
        "hitId": "HIT1",
        "turkSubmitTo": host,
    }


def enter(client: Client, slug: str, params: dict[str, str]):
    return client.get(reverse("participants:entry", args=[slug]), params)


def held_participation(client: Client, slug: str) -> Participation:
    public_id = client.session[f"participation:{slug}"]
    return Participation.objects.select_related("condition", "version").get(public_id=public_id)


def consent_data(version: StudyVersion) -> dict[str, str]:
    boxes = version.spec["consent"]["checkboxes"]
    return {**{f"agree_{i}": "on" for i in range(len(boxes))}, "decision": "agree"}


def prewriting_data(participation: Participation, *, answered: int | None = None) -> dict:
    doc = document_type(participation.version.spec, participation.document_type)
    count = len(doc["questions"]) if answered is None else answered
    data = {"topic": doc["topics"][0]}
    for i in range(len(doc["questions"])):
        data[f"answer_{i}"] = f"My answer number {i}" if i < count else ""
    return data


def final_data(**overrides: str) -> dict[str, str]:
    data = {
        "document_quality": "8",
        "overall": "9",
        "strengths": "It asked good questions.",
        "weaknesses": "Sometimes too long.",
        "stop_reason": "I was satisfied with the document",
        "attention": "Somewhat disagree",
    }
    data.update(overrides)
    return data


def record_turns(
    participation: Participation,
    turns: int,
    *,
    rate_at: tuple[int, ...] = (3, 6),
    draft: bool = False,
) -> None:
    """What the co-writing page leaves behind: user/assistant messages and checkpoint ratings,
    and with ``draft`` a saved document."""
    if draft:
        DocumentVersion.objects.create(
            participation=participation, number=1, text="A first draft of the post."
        )
    for turn in range(1, turns + 1):
        Message.objects.create(
            participation=participation, turn=turn, role=Role.USER, text=f"question {turn}"
        )
        Message.objects.create(
            participation=participation,
            turn=turn,
            role=Role.ASSISTANT,
            text=f"answer {turn}",
            backend="offline",
            finish_reason="stop",
        )
    for turn in rate_at:
        if turn <= turns:
            Rating.objects.create(
                participation=participation, scale=Scale.INTERACTION, turn=turn, value=7
            )


def start_writing(client: Client, slug: str, params: dict[str, str]) -> Participation:
    """Enter over HTTP (so ``client`` holds the participation), then consent and pre-write."""
    enter(client, slug, params)
    participation = held_participation(client, slug)
    boxes = participation.version.spec["consent"]["checkboxes"]
    participation = participation_consent(participation=participation, agreed=range(len(boxes)))
    data = prewriting_data(participation)
    doc = document_type(participation.version.spec, participation.document_type)
    return prewriting_submit(
        participation=participation,
        topic=data["topic"],
        answers={q: data[f"answer_{i}"] for i, q in enumerate(doc["questions"])},
    )


def describedby_without_target(html: str) -> list[str]:
    """Ids that an ``aria-describedby`` on the page names but no element carries."""
    ids = set(re.findall(r'\bid="([^"]+)"', html))
    named = [i for value in re.findall(r'aria-describedby="([^"]*)"', html) for i in value.split()]
    return [i for i in named if i not in ids]
