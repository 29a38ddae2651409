"""Reads for the writing page: the conversation, the document and where the chat stands."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.urls import NoReverseMatch

from collab_models.prompts import study_context
from studyapp.feedback.models import SurveyKind, SurveyResponse
from studyapp.feedback.ratings import interaction_rating_due, interaction_scale
from studyapp.feedback.selectors import counted_turns
from studyapp.participants.access import step_url
from studyapp.participants.models import Participation, Status
from studyapp.participants.timeouts import time_left
from studyapp.participants.tokens import participation_id_from_token
from studyapp.studies.spec import document_type, model_context_has
from studyapp.writing.alternatives.selectors import (
    max_regenerations,
    pair_public,
    regenerate_public,
)
from studyapp.writing.models import DocumentVersion, Message, Role


@dataclass(frozen=True)
class ChatState:
    """The database's side of the chat, as the page needs it after a (re)connect."""

    status: str
    messages: list[dict[str, Any]]
    # The user turn that has no reply yet (being generated, failed or interrupted).
    pending_turn: int | None
    turns_completed: int
    rating_due: int | None
    document_text: str
    document_version: int
    spec: dict[str, Any]
    # Server-side only, never sent: what the next model call will most likely be given, so a
    # socket can start it before the database has confirmed the turn (see ``ModelCall``).
    history: list[dict[str, str]]
    condition_config: dict[str, Any]
    # A side-by-side pair waiting for the participant's pick (its turn is then not pending).
    pair: dict[str, Any] | None = None
    # {"turn", "left"}: the latest reply may be regenerated ``left`` more times; None: not at all.
    regenerate: dict[str, Any] | None = None
    # Seconds before each time limit ends the session (studyapp/participants/timeouts.py).
    time_left: dict[str, Any] | None = None


def active_messages(*, participation_id: int) -> list[Message]:
    """The conversation as the participant and the model see it, in order."""
    return list(
        Message.objects.filter(participation_id=participation_id, is_active=True).order_by(
            "turn", "id"
        )
    )


def chat_history(messages: Sequence[Any]) -> list[dict[str, str]]:
    """Messages as the model's chat history (``collab_models.base.ChatMessage`` dicts)."""
    return [{"role": m.role, "content": m.text} for m in messages]


def model_history(
    *, participation_id: int, spec: dict[str, Any], messages: Sequence[Any]
) -> list[dict[str, str]]:
    """What the model is given for ``messages``: the chat, after one system message with what
    the study's ``model_context`` adds (the task; the latest saved document). A chat-only
    study (the paper's) reads nothing more."""
    history = chat_history(messages)
    if not model_context_has(spec, "task"):
        return history
    doc_key, topic = Participation.objects.values_list("document_type", "topic").get(
        pk=participation_id
    )
    prewriting = (
        SurveyResponse.objects.filter(participation_id=participation_id, kind=SurveyKind.PREWRITING)
        .values_list("answers", flat=True)
        .first()
    ) or {}
    document = None
    if model_context_has(spec, "document"):
        latest = latest_document(participation_id=participation_id)
        document = latest.text if latest else ""
    label = (document_type(spec, doc_key) or {}).get("label") or doc_key or "document"
    context = study_context(
        document_type=str(label).lower(),
        topic=topic,
        answers=[(str(q), str(a)) for q, a in (prewriting.get("answers") or {}).items()],
        document=document,
    )
    return [{"role": "system", "content": context}, *history]


def pending_turn(messages: list[Message]) -> int | None:
    replied = {m.turn for m in messages if m.role == Role.ASSISTANT}
    asked = [m.turn for m in messages if m.role == Role.USER and m.turn not in replied]
    return max(asked) if asked else None


def turn_has_reply(*, participation_id: int, turn: int) -> bool:
    """Whether any reply to ``turn`` is stored: the chat's, a failed one or a pair's candidate."""
    return Message.objects.filter(
        participation_id=participation_id, turn=turn, role=Role.ASSISTANT
    ).exists()


def sent_message_turn(*, participation_id: int, client_msg_id: str) -> int | None:
    """The turn of the user message stored under ``client_msg_id``, if any (a resend)."""
    return (
        Message.objects.filter(
            participation_id=participation_id, role=Role.USER, client_msg_id=client_msg_id
        )
        .values_list("turn", flat=True)
        .first()
    )


def latest_document(*, participation_id: int) -> DocumentVersion | None:
    return (
        DocumentVersion.objects.filter(participation_id=participation_id)
        .order_by("-number")
        .first()
    )


def message_public(message: Message) -> dict[str, Any]:
    """A message as the participant may see it: no backend, model or record fields."""
    out: dict[str, Any] = {"turn": message.turn, "role": message.role, "text": message.text}
    if message.role == Role.ASSISTANT:
        out["generation_id"] = str(message.generation_id)
        out["finish_reason"] = message.finish_reason
    elif message.client_msg_id:
        out["client_msg_id"] = message.client_msg_id
    return out


def chat_state(*, participation_id: int) -> ChatState:
    participation = Participation.objects.select_related("version", "condition").get(
        pk=participation_id
    )
    messages = active_messages(participation_id=participation_id)
    document = latest_document(participation_id=participation_id)
    pending = pending_turn(messages)
    pair = pair_public(participation_id=participation_id) if pending is not None else None
    return ChatState(
        status=participation.status,
        messages=[message_public(m) for m in messages],
        pending_turn=None if pair is not None else pending,
        turns_completed=len(counted_turns(messages, participation.version.spec)),
        rating_due=interaction_rating_due(participation=participation),
        document_text=document.text if document else "",
        document_version=document.number if document else 0,
        spec=participation.version.spec,
        history=model_history(
            participation_id=participation_id, spec=participation.version.spec, messages=messages
        ),
        condition_config=participation.condition.config if participation.condition else {},
        pair=pair,
        regenerate=regenerate_public(messages=messages, spec=participation.version.spec),
        time_left=time_left(participation=participation).public(),
    )


# What the page tells participants the assistant can see, per model_context.
MODEL_SEES = {
    "chat": (
        "The assistant sees only this chat: it cannot see your document editor. To get its "
        "help with your text, paste the text into the chat."
    ),
    "chat+task": (
        "The assistant sees this chat, your document type, topic and your answers to the "
        "questions before the chat, but it cannot see your document editor. To get its help "
        "with your text, paste the text into the chat."
    ),
    "chat+task+document": (
        "The assistant sees this chat, your document type, topic and your answers to the "
        "questions before the chat, and it can see your document editor: each time you send "
        "a message it reads your document as last saved."
    ),
}


def model_sees_notice(*, spec: dict[str, Any]) -> str:
    """The sentence that tells participants what the assistant can see."""
    return MODEL_SEES[str(spec.get("model_context") or "chat")]


def page_settings(*, spec: dict[str, Any]) -> dict[str, Any]:
    """The study rules the page enforces client-side (the server enforces them again)."""
    writing = spec["writing"]
    scale = interaction_scale(spec)
    limits = spec.get("limits") or {}
    return {
        "min_turns": writing["min_turns"],
        "min_message_words": writing["min_message_words"],
        "min_document_words": writing["min_document_words"],
        "max_turns": writing["max_turns"],
        "rating_every": writing["rating_every"],
        "max_regenerations": max_regenerations(spec),
        "rating_scale": {
            "min": scale["min"],
            "max": scale["max"],
            "question": scale["question"],
            "anchors": {str(k): v for k, v in (scale.get("anchors") or {}).items()},
        },
        # How long before each time limit the page warns (seconds; 0: no warning).
        "time_warnings": {
            "session_s": 60 * (limits.get("session_warning_minutes") or 0),
            "idle_s": 60 * (limits.get("idle_warning_minutes") or 0),
            "idle_limit_s": 60 * (limits.get("idle_minutes") or 0),
        },
    }


@dataclass(frozen=True)
class SocketAccess:
    """Who a socket belongs to, or why it is refused (``error`` is a protocol error code)."""

    participation_id: int | None = None
    public_id: str = ""
    error: str | None = None
    next_url: str = ""


def socket_access(*, slug: str, token: str) -> SocketAccess:
    """The participation a socket's token names, if it is on this study's writing step.

    The signed token is the only credential, so a socket can reach nothing but the
    participation it was issued for.
    """
    public_id = participation_id_from_token(token) if token else None
    if public_id is None:
        return SocketAccess(error="unauthorized")
    key = _uuid_or_none(public_id)
    participations = Participation.objects.select_related("study")
    participation = participations.filter(public_id=key, study__slug=slug).first() if key else None
    if participation is None:
        return SocketAccess(error="unauthorized")
    if participation.status != Status.WRITING:
        return SocketAccess(error="not_writing", next_url=_next_url(participation))
    return SocketAccess(participation_id=participation.pk, public_id=participation.public_id.hex)


def participation_next_url(*, participation_id: int) -> str:
    participation = Participation.objects.select_related("study").get(pk=participation_id)
    return _next_url(participation)


def _next_url(participation: Participation) -> str:
    try:
        return step_url(participation)
    except NoReverseMatch:  # a step whose page is not installed
        return ""


def _uuid_or_none(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None
