"""Conversations as training data sees them, read a chunk of participations at a time."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

from django.db.models import Max, OuterRef, Subquery

from collab_models.real_user_reward import estimate_tokens, normalise
from studyapp.exports.scope import ExportScope, Person
from studyapp.feedback.models import DocumentScore, Rating, Scale, SurveyKind, SurveyResponse
from studyapp.participants.models import Participation
from studyapp.scoring.raters import RATER_PREFIX
from studyapp.studies.models import StudyVersion
from studyapp.writing.models import DocumentVersion, Message, Role

PARTICIPATIONS_PER_CHUNK = 200

ChatMessage = dict[str, str]


@dataclass(frozen=True)
class Reply:
    """One assistant reply as stored (for alternatives, which are not in the conversation)."""

    turn: int
    text: str
    is_active: bool
    chosen: bool | None
    group: str | None
    tokens: int
    usable: bool


@dataclass(frozen=True)
class Alternatives:
    """Replies to the same context: the one the conversation continued with, and the others."""

    turn: int
    chosen: Reply
    rejected: list[Reply]
    source: str  # "regeneration" or "side_by_side"


@dataclass
class Conversation:
    person: Person
    spec: dict[str, Any]
    document_type: str
    topic: str
    # Active messages, user/assistant alternating, cut before the first turn without a usable
    # reply; it always ends with an assistant message (or is empty).
    messages: list[ChatMessage] = field(default_factory=list)
    # turn -> index of its assistant message in ``messages``
    reply_index: dict[int, int] = field(default_factory=dict)
    tokens_by_turn: dict[int, int] = field(default_factory=dict)
    interaction: dict[int, int] = field(default_factory=dict)  # checkpoint turn -> raw rating
    document_quality: int | None = None
    judge_score: float | None = None
    final_document: str = ""
    prewriting: dict[str, str] = field(default_factory=dict)
    alternatives: list[Alternatives] = field(default_factory=list)
    truncated: bool = False

    @property
    def turns(self) -> list[int]:
        return sorted(self.reply_index)

    def prompt_for(self, turn: int) -> list[ChatMessage]:
        """The messages before the reply at ``turn`` (ending with the user's message)."""
        return self.messages[: self.reply_index[turn]]

    def reply(self, turn: int) -> ChatMessage:
        return self.messages[self.reply_index[turn]]

    # Scales -----------------------------------------------------------------------------------
    def interaction_scale(self) -> tuple[int, int]:
        scale = self.spec.get("scales", {}).get("interaction", {})
        return int(scale.get("min", 1)), int(scale.get("max", 10))

    def document_scale(self) -> tuple[int, int]:
        for question in self.spec.get("survey", {}).get("questions", []):
            if question.get("key") == Scale.DOCUMENT_QUALITY:
                return int(question.get("min", 1)), int(question.get("max", 10))
        return 1, 10

    def normalised_ratings(self) -> dict[int, float]:
        low, high = self.interaction_scale()
        return {t: normalise(v, low, high) for t, v in self.interaction.items()}

    def normalised_document(self, source: str) -> float | None:
        if source == "judge":
            # Judge rubrics score 1-10 (studyapp.scoring).
            return None if self.judge_score is None else normalise(self.judge_score, 1, 10)
        if self.document_quality is None:
            return None
        return normalise(self.document_quality, *self.document_scale())


def _chunks(iterator: Iterator[int], size: int) -> Iterator[list[int]]:
    while chunk := list(islice(iterator, size)):
        yield chunk


_MESSAGE_FIELDS = (
    "participation_id", "turn", "role", "text", "is_active", "alternative_group", "chosen",
    "completion_tokens", "finish_reason", "error",
)  # fmt: skip


def _usable(text: str, finish_reason: str, error: str) -> bool:
    # A failed generation shows the participant an error, not a reply worth learning from.
    return bool(text.strip()) and finish_reason != "error" and not (error and not text)


def conversations_iter(
    scope: ExportScope, *, chunk: int = PARTICIPATIONS_PER_CHUNK
) -> Iterator[Conversation]:
    """Every covered participation's conversation, in primary-key order.

    Reads one chunk of participations at a time with a handful of queries per chunk.
    """
    specs: dict[int, dict[str, Any]] = {}
    ids = scope.participations().order_by("pk").values_list("pk", flat=True)
    for pks in _chunks(ids.iterator(chunk_size=2000), chunk):
        yield from _read_chunk(scope, pks, specs)


def _read_chunk(
    scope: ExportScope, pks: list[int], specs: dict[int, dict[str, Any]]
) -> Iterator[Conversation]:
    info = {
        pk: (version_id, doc_type, topic)
        for pk, version_id, doc_type, topic in Participation.objects.filter(pk__in=pks)
        .values_list("pk", "version_id", "document_type", "topic")
    }
    missing = {v for v, _, _ in info.values()} - set(specs)
    specs.update(StudyVersion.objects.filter(pk__in=missing).values_list("pk", "spec"))
    messages: dict[int, list[tuple]] = defaultdict(list)
    for row in (
        Message.objects.filter(participation_id__in=pks)
        .order_by("participation_id", "turn", "id")
        .values_list(*_MESSAGE_FIELDS)
    ):
        messages[row[0]].append(row)
    ratings: dict[int, list[tuple]] = defaultdict(list)
    for pid, scale, turn, value in Rating.objects.filter(
        participation_id__in=pks, scale__in=[Scale.INTERACTION, Scale.DOCUMENT_QUALITY]
    ).values_list("participation_id", "scale", "turn", "value"):
        ratings[pid].append((scale, turn, value))
    prewriting = dict(
        SurveyResponse.objects.filter(
            participation_id__in=pks, kind=SurveyKind.PREWRITING
        ).values_list("participation_id", "answers")
    )
    latest = DocumentVersion.objects.filter(participation=OuterRef("participation")).values(
        "participation"
    ).annotate(top=Max("number")).values("top")
    documents = dict(
        DocumentVersion.objects.filter(participation_id__in=pks, number=Subquery(latest))
        .values_list("participation_id", "text")
    )
    judged = _one_judge_scores(pks)
    for pk in pks:
        person = scope.people.get(pk)
        if person is None or pk not in info:
            continue
        version_id, doc_type, topic = info[pk]
        conversation = Conversation(
            person=person, spec=specs[version_id], document_type=doc_type, topic=topic,
            final_document=person.redact(documents.get(pk, "")) or "",
            judge_score=judged.get(pk),
        )
        _fill_messages(conversation, messages.get(pk, []))
        for scale, turn, value in ratings.get(pk, []):
            if scale == Scale.INTERACTION:
                conversation.interaction[turn] = value
            else:
                conversation.document_quality = value
        answers = (prewriting.get(pk) or {}).get("answers") or {}
        conversation.prewriting = {
            q: person.redact(str(answers[q])) or ""
            for q in prewriting_order(conversation.spec, doc_type, answers)
        }
        yield conversation


def _one_judge_scores(pks: list[int]) -> dict[int, float]:
    """The good scores of one judge and rubric: the one that scored most of these documents
    (ties by name), so a dataset never mixes judges whose scales differ; staff raters are
    not judges."""
    by_judge: dict[tuple[str, str], dict[int, float]] = defaultdict(dict)
    scores = DocumentScore.objects.filter(participation_id__in=pks, score__isnull=False).exclude(
        judge__startswith=RATER_PREFIX
    )
    for label, rubric, pid, score in scores.values_list(
        "judge", "rubric_version", "participation_id", "score"
    ):
        by_judge[(label, rubric)][pid] = score
    if not by_judge:
        return {}
    return by_judge[min(by_judge, key=lambda key: (-len(by_judge[key]), key))]


def prewriting_order(spec: dict[str, Any], doc_key: str, answers: dict[str, Any]) -> list[str]:
    """The questions answered, in the study file's order, then any it no longer lists.

    jsonb keeps object keys in its own order (shortest first), not the order they were asked.
    """
    doc = next((d for d in spec.get("document_types", []) if d.get("key") == doc_key), None)
    asked = [q for q in (doc or {}).get("questions", []) if q in answers]
    return asked + [q for q in answers if q not in asked]


def _fill_messages(conversation: Conversation, rows: list[tuple]) -> None:
    redact = conversation.person.redact
    users: dict[int, str] = {}
    replies: dict[int, Reply] = {}
    groups: dict[str, list[Reply]] = defaultdict(list)
    for _, turn, role, text, active, group, chosen, tokens, finish, error in rows:
        if role == Role.USER:
            if active:
                users[turn] = redact(text) or ""
            continue
        reply = Reply(
            turn=turn, text=redact(text) or "", is_active=active, chosen=chosen,
            group=str(group) if group else None,
            tokens=tokens if tokens is not None else estimate_tokens(text or ""),
            usable=_usable(text or "", finish or "", error or ""),
        )
        if active:
            replies[turn] = reply
        if reply.group:
            groups[reply.group].append(reply)
    expected = 1
    for turn in sorted(users):
        reply = replies.get(turn)
        if turn != expected or reply is None or not reply.usable:
            # A last message still waiting for its reply is no cut; anything else is.
            awaiting = reply is None and turn == expected and turn == max(users)
            conversation.truncated = not awaiting
            break
        conversation.messages.append({"role": "user", "content": users[turn]})
        conversation.reply_index[turn] = len(conversation.messages)
        conversation.messages.append({"role": "assistant", "content": reply.text})
        conversation.tokens_by_turn[turn] = reply.tokens
        expected += 1
    for members in groups.values():
        alternatives = _alternatives(members)
        if alternatives and alternatives.turn in conversation.reply_index:
            conversation.alternatives.append(alternatives)


def _alternatives(members: list[Reply]) -> Alternatives | None:
    chosen = next((m for m in members if m.chosen), None) or next(
        (m for m in members if m.is_active), None
    )
    if chosen is None or not chosen.usable:
        return None  # e.g. a side-by-side pair the participant never picked from
    rejected = [
        m for m in members
        if m is not chosen and m.usable and not m.is_active and m.chosen is not True
        and m.turn == chosen.turn and m.text != chosen.text
    ]  # fmt: skip
    if not rejected:
        return None
    source = "side_by_side" if any(m.chosen is not None for m in members) else "regeneration"
    return Alternatives(turn=chosen.turn, chosen=chosen, rejected=rejected, source=source)
