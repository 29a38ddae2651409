"""The analysis tables: their columns (the codebook) and how their rows are read.

Every table is keyed by ``participant`` (the keyed pseudonym). Rows are read with
``values_list(...).iterator()`` (a server-side cursor on PostgreSQL) and converted one at a
time, so an export holds one chunk of rows in memory whatever the study's size.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from django.contrib.auth import get_user_model
from django.db.models import Count, IntegerField, OuterRef, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce, Substr

from studyapp.exports.pseudonyms import scorer_public_label
from studyapp.exports.scope import ExportScope, Person
from studyapp.feedback.models import DocumentScore, Rating, Scale, SurveyKind, SurveyResponse
from studyapp.participants.models import (
    EventKind,
    Outcome,
    ParticipationEvent,
    Platform,
    Status,
)
from studyapp.scoring.raters import RATER_PREFIX
from studyapp.writing.models import DocumentVersion, EditBatch, Message, Role

CHUNK_SIZE = 2000

# Column types, as the codebook names them. ``json`` is nested data: a JSON string in CSV and
# Parquet, a nested value in JSONL.
TYPES = ("string", "integer", "float", "boolean", "timestamp", "json")


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    meaning: str
    # Allowed values or unit. "@conditions", "@document_types", "@survey_keys" are filled from
    # the study's versions when the codebook is written.
    values: str | tuple[str, ...] = ""


@dataclass(frozen=True)
class Table:
    name: str
    description: str
    columns: tuple[Column, ...]
    # The covered rows, as values_list() tuples in a stable order.
    source: Callable[[ExportScope], QuerySet]
    # One source row -> zero or more output rows (same order as ``columns``).
    expand: Callable[[Person, tuple], Iterable[tuple]]

    def rows(self, scope: ExportScope) -> Iterator[tuple]:
        for record in self.source(scope).iterator(chunk_size=CHUNK_SIZE):
            person = scope.people.get(record[0])
            if person is None:  # joined the study after the scope was read
                continue
            yield from self.expand(person, record)

    def count(self, scope: ExportScope) -> int:
        return self.source(scope).count()


def _choices(enum) -> tuple[str, ...]:
    return tuple(enum.values)


def redact_json(value: Any, person: Person) -> Any:
    """The JSON value with the participation's platform ids replaced in every string."""
    if isinstance(value, str):
        return person.redact(value)
    if isinstance(value, list):
        return [redact_json(v, person) for v in value]
    if isinstance(value, dict):
        return {person.redact(str(k)): redact_json(v, person) for k, v in value.items()}
    return value


PARTICIPANT = Column(
    "participant", "string", "Keyed pseudonym of the participant (HMAC-SHA256, 16 hex chars)"
)

# --- participations ---------------------------------------------------------------------------

_TIMESTAMPS = (
    ("entered_at", "First arrival from the platform link"),
    ("consented_at", "Consent given"),
    ("assigned_at", "Arm and document type assigned"),
    ("writing_at", "Pre-writing submitted; co-writing began"),
    ("finished_at", "Chat ended; final questions began"),
    ("completed_at", "Final questions submitted"),
    ("declined_at", "Consent declined"),
    ("returned_at", "Submission returned on the platform"),
    ("timed_out_at", "Marked timed out by the server"),
    ("excluded_at", "Excluded by a researcher"),
    ("technical_problem_at", "Ended because the model could not answer"),
    ("last_seen_at", "Last heartbeat or request from the participant"),
)


def _count_of(model, **filters) -> Coalesce:
    counted = (
        model.objects.filter(participation=OuterRef("pk"), **filters)
        .order_by()
        .values("participation")
        .annotate(n=Count("pk"))
        .values("n")
    )
    return Coalesce(Subquery(counted, output_field=IntegerField()), Value(0))


def _participations_source(scope: ExportScope) -> QuerySet:
    return (
        scope.participations()
        .annotate(
            n_user_turns=_count_of(Message, role=Role.USER, is_active=True),
            n_assistant_replies=_count_of(Message, role=Role.ASSISTANT, is_active=True),
            n_alternatives=_count_of(Message, role=Role.ASSISTANT, is_active=False),
            n_interaction_ratings=_count_of(Rating, scale=Scale.INTERACTION),
            n_document_versions=_count_of(DocumentVersion),
        )
        .order_by("pk")
        .values_list(
            "pk", "platform", "is_test", "is_simulated", "document_type", "topic", "status",
            "outcome",
            *(name for name, _ in _TIMESTAMPS),
            "active_seconds", "focus_losses", "attention_passed",
            "n_user_turns", "n_assistant_replies", "n_alternatives", "n_interaction_ratings",
            "n_document_versions",
        )
    )


def _participations_expand(person: Person, r: tuple) -> Iterable[tuple]:
    (_, platform, is_test, is_simulated, document_type, topic, status, outcome, *rest) = r
    stamps = rest[: len(_TIMESTAMPS)]
    active_seconds, focus_losses, attention, *counts = rest[len(_TIMESTAMPS):]
    entered, finished, completed = stamps[0], stamps[4], stamps[5]
    end = completed or finished
    total = (end - entered).total_seconds() if end and entered else None
    yield (
        person.pseudonym, person.version, person.condition, platform, is_test, is_simulated,
        document_type, topic, status, outcome, *stamps, total, active_seconds, focus_losses,
        attention, *counts,
    )


PARTICIPATIONS = Table(
    name="participations",
    description="One row per participation (one person's walk through the study).",
    columns=(
        PARTICIPANT,
        Column("version", "integer", "Study file version the participation started on"),
        Column("condition", "string", "Assistant arm (never shown to participants)",
               "@conditions"),
        Column("platform", "string", "Recruitment platform", _choices(Platform)),
        Column("is_test", "boolean", "Pilot or researcher test run (simulated ones too)"),
        Column("is_simulated", "boolean", "Simulated participant (simulate_participants)"),
        Column("document_type", "string", "Assigned document type", "@document_types"),
        Column("topic", "string", "Topic the participant picked"),
        Column("status", "string", "Where the participation is now", _choices(Status)),
        Column("outcome", "string", "How it ended (empty while running)", _choices(Outcome)),
        *(Column(name, "timestamp", meaning, "UTC, ISO 8601") for name, meaning in _TIMESTAMPS),
        Column("total_seconds", "float",
               "Server-side time from arrival to the end of the chat or the final questions",
               "seconds"),
        Column("active_seconds", "float", "Time the page was focused and active", "seconds"),
        Column("focus_losses", "integer", "Times the participant left the study tab"),
        Column("attention_passed", "boolean", "Attention check result (empty: no check)"),
        Column("n_user_turns", "integer", "Participant messages in the conversation"),
        Column("n_assistant_replies", "integer", "Assistant replies in the conversation"),
        Column("n_alternatives", "integer",
               "Assistant replies not kept (regenerated or not picked side by side)"),
        Column("n_interaction_ratings", "integer", "In-chat interaction ratings given"),
        Column("n_document_versions", "integer", "Saved versions of the document"),
    ),
    source=_participations_source,
    expand=_participations_expand,
)

# --- messages ---------------------------------------------------------------------------------


def _messages_source(scope: ExportScope) -> QuerySet:
    return (
        Message.objects.filter(participation__in=scope.participation_ids())
        .order_by("participation_id", "turn", "id")
        .values_list(
            "participation_id", "turn", "role", "text", "is_active", "alternative_group",
            "chosen", "generation_id", "created_at", "backend", "model", "adapter",
            "prompt_version", "prompt_sha256", "sampling", "seed", "prompt_tokens",
            "completion_tokens", "ttft_ms", "model_ttft_ms", "duration_ms", "finish_reason",
            "dropped_turns", "error", "raw_output",
        )
    )


def _messages_expand(person: Person, r: tuple) -> Iterable[tuple]:
    (_, turn, role, text, active, group, chosen, generation, created, backend, model, adapter,
     prompt_version, prompt_sha256, sampling, seed, p_tok, c_tok, ttft, model_ttft, duration,
     finish, dropped, error, raw) = r
    yield (
        person.pseudonym, person.condition, turn, role, person.redact(text), active,
        str(group) if group else None, chosen, str(generation), created, backend, model,
        adapter, prompt_version, prompt_sha256, sampling, seed, p_tok, c_tok, ttft, model_ttft,
        duration, finish, dropped, person.redact(error), person.redact(raw),
    )


MESSAGES = Table(
    name="messages",
    description=(
        "Every chat message, including replies that were regenerated or not picked "
        "(is_active false). The conversation as shown is the active rows in turn order."
    ),
    columns=(
        PARTICIPANT,
        Column("condition", "string", "Assistant arm", "@conditions"),
        Column("turn", "integer",
               "User turn number: the k-th participant message and the reply to it have turn k"),
        Column("role", "string", "Who wrote the message", _choices(Role)),
        Column("text", "string", "Message text as shown (platform ids redacted)"),
        Column("is_active", "boolean", "Part of the conversation the participant continued"),
        Column("alternative_group", "string",
               "Shared by alternative replies to the same context (regenerations, "
               "side-by-side candidates); empty otherwise"),
        Column("chosen", "boolean",
               "Side by side: true for the candidate picked, false for the other"),
        Column("generation_id", "string", "Unique id of the message (UUID)"),
        Column("created_at", "timestamp", "When the message was stored", "UTC, ISO 8601"),
        Column("backend", "string", "Model backend (assistant messages)",
               ("openai", "transformers", "offline")),
        Column("model", "string", "Model name sent to the backend"),
        Column("adapter", "string", "LoRA adapter, if any"),
        Column("prompt_version", "string",
               "The arm's prompt: a published source with its package version "
               "(collabllm:system_prompt@0.0.8), or the project's own (proactive.v1)"),
        Column("prompt_sha256", "string",
               "sha256 of the prompt text sent with the reply (before the chat is filled in)"),
        Column("sampling", "json", "Sampling parameters sent (temperature, top_p, ...)"),
        Column("seed", "integer", "Sampling seed, if one was sent"),
        Column("prompt_tokens", "integer", "Prompt length reported by the backend", "tokens"),
        Column("completion_tokens", "integer", "Reply length reported by the backend",
               "tokens"),
        Column("ttft_ms", "float",
               "Time to the first character the participant saw (after any JSON adapter)",
               "milliseconds"),
        Column("model_ttft_ms", "float",
               "Time to the model's first token (earlier than ttft_ms for a JSON arm)",
               "milliseconds"),
        Column("duration_ms", "float", "Time to the last token", "milliseconds"),
        Column("finish_reason", "string", "Why the generation ended",
               ("stop", "length", "cancelled", "error")),
        Column("dropped_turns", "integer",
               "Oldest exchanges after the first left out of the prompt to fit the model's "
               "window"),
        Column("error", "string", "Error text when the generation failed"),
        Column("raw_output", "string",
               "What the model produced before the response adapter (e.g. the whole JSON)"),
    ),
    source=_messages_source,
    expand=_messages_expand,
)

# --- ratings ----------------------------------------------------------------------------------


def _ratings_source(scope: ExportScope) -> QuerySet:
    return (
        Rating.objects.filter(participation__in=scope.participation_ids())
        .order_by("participation_id", "scale", "turn")
        .values_list("participation_id", "scale", "turn", "value", "created_at")
    )


def _ratings_expand(person: Person, r: tuple) -> Iterable[tuple]:
    _, scale, turn, value, created = r
    yield (person.pseudonym, person.condition, scale, turn, value, created)


RATINGS = Table(
    name="ratings",
    description="Ratings: in-chat interaction checkpoints, final ratings and thumbs.",
    columns=(
        PARTICIPANT,
        Column("condition", "string", "Assistant arm", "@conditions"),
        Column("scale", "string", "What was rated", _choices(Scale)),
        Column("turn", "integer",
               "Interaction: the turn after whose reply it was asked; final ratings: 0"),
        Column("value", "integer",
               "Rating (interaction and final: the study's scale, e.g. 1-10; thumb: +1/-1)"),
        Column("created_at", "timestamp", "When it was given", "UTC, ISO 8601"),
    ),
    source=_ratings_source,
    expand=_ratings_expand,
)

# --- document versions ------------------------------------------------------------------------


def _documents_source(scope: ExportScope) -> QuerySet:
    return (
        DocumentVersion.objects.filter(participation__in=scope.participation_ids())
        .order_by("participation_id", "number")
        .values_list("participation_id", "number", "text", "created_at")
    )


def _documents_expand(person: Person, r: tuple) -> Iterable[tuple]:
    _, number, text, created = r
    yield (person.pseudonym, number, person.redact(text), len(text or ""), created)


DOCUMENT_VERSIONS = Table(
    name="document_versions",
    description="The full document text at every save; the highest number is the final one.",
    columns=(
        PARTICIPANT,
        Column("number", "integer", "Save number, from 1 (a gap: saves merged into the next)"),
        Column("text", "string", "Document text (platform ids redacted)"),
        Column("chars", "integer", "Length of the text", "characters"),
        Column("created_at", "timestamp", "When it was saved", "UTC, ISO 8601"),
    ),
    source=_documents_source,
    expand=_documents_expand,
)

# --- edit batches -----------------------------------------------------------------------------


def _edits_source(scope: ExportScope) -> QuerySet:
    return (
        EditBatch.objects.filter(participation__in=scope.participation_ids())
        .order_by("participation_id", "id")
        .values_list("participation_id", "document_version__number", "events", "created_at")
    )


def _edits_expand(person: Person, r: tuple) -> Iterable[tuple]:
    _, number, events, created = r
    events = events or []
    yield (person.pseudonym, number, len(events), redact_json(events, person), created)


EDIT_BATCHES = Table(
    name="edit_batches",
    description="Editor events batched by the page, for replaying how the document was written.",
    columns=(
        PARTICIPANT,
        Column("document_version", "integer", "Save the batch led to (empty if none yet)"),
        Column("n_events", "integer", "Editor events in the batch"),
        Column("events", "json", "The editor events as the page sent them"),
        Column("created_at", "timestamp", "When the batch arrived", "UTC, ISO 8601"),
    ),
    source=_edits_source,
    expand=_edits_expand,
)

# --- events -----------------------------------------------------------------------------------


def _events_source(scope: ExportScope) -> QuerySet:
    return (
        ParticipationEvent.objects.filter(participation__in=scope.participation_ids())
        .order_by("participation_id", "at", "id")
        .values_list("participation_id", "kind", "at", "data")
    )


def _events_expand(person: Person, r: tuple) -> Iterable[tuple]:
    _, kind, at, data = r
    yield (person.pseudonym, kind, at, redact_json(data or {}, person))


EVENTS = Table(
    name="events",
    description="The participation's event log: focus changes, connections, stops, errors.",
    columns=(
        PARTICIPANT,
        Column("kind", "string", "Event kind", _choices(EventKind)),
        Column("at", "timestamp", "When it happened (server clock)", "UTC, ISO 8601"),
        Column("data", "json", "Details of the event"),
    ),
    source=_events_source,
    expand=_events_expand,
)

# --- survey answers ---------------------------------------------------------------------------


def _survey_source(scope: ExportScope) -> QuerySet:
    return (
        SurveyResponse.objects.filter(participation__in=scope.participation_ids())
        .order_by("participation_id", "kind")
        .values_list("participation_id", "kind", "answers", "created_at")
    )


def _answer_text(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else str(value)


def _survey_expand(person: Person, r: tuple) -> Iterable[tuple]:
    _, kind, answers, created = r
    answers = answers or {}
    if kind == SurveyKind.PREWRITING:
        # Stored as {"topic": ..., "answers": {question text: answer}}.
        items = [("topic", answers.get("topic")), *(answers.get("answers") or {}).items()]
    else:
        items = list(answers.items())
    for question, value in items:
        yield (person.pseudonym, kind, question, person.redact(_answer_text(value)), created)


SURVEY_ANSWERS = Table(
    name="survey_answers",
    description=(
        "Answers in long form: one row per question. Pre-writing questions are named by their "
        "text; final questions by their key in the study file."
    ),
    columns=(
        PARTICIPANT,
        Column("kind", "string", "Which questionnaire", _choices(SurveyKind)),
        Column("question", "string", "Question key (final) or text (pre-writing)",
               "@survey_keys"),
        Column("answer", "string", "The answer as given (numbers as text)"),
        Column("created_at", "timestamp", "When the questionnaire was submitted",
               "UTC, ISO 8601"),
    ),
    source=_survey_source,
    expand=_survey_expand,
)

# --- document scores --------------------------------------------------------------------------


def _scores_source(scope: ExportScope) -> QuerySet:
    # A staff rater's account id, looked up by the username in its ``staff:<username>`` label,
    # keys its pseudonym: exports never name the staff who rated.
    rater_id = get_user_model().objects.filter(
        username=Substr(OuterRef("judge"), len(RATER_PREFIX) + 1)
    ).values("pk")[:1]
    return (
        DocumentScore.objects.filter(participation__in=scope.participation_ids())
        .annotate(rater_id=Subquery(rater_id))
        .order_by("participation_id", "id")
        .values_list("participation_id", "judge", "rubric_version", "score", "rationale",
                     "error", "created_at", "participation__study_id", "rater_id")
    )


def _scores_expand(person: Person, r: tuple) -> Iterable[tuple]:
    _, judge, rubric, score, rationale, error, created, study_id, rater_id = r
    username = judge[len(RATER_PREFIX):]
    scorer = scorer_public_label(
        label=judge, study_id=study_id, rater_ids={username: rater_id} if rater_id else {}
    )
    yield (person.pseudonym, person.condition, scorer, rubric, score, person.redact(rationale),
           error, created)


DOCUMENT_SCORES = Table(
    name="document_scores",
    description="Scores of final documents by LLM judges with a versioned rubric and by staff "
    "raters (blind), on the same scale.",
    columns=(
        PARTICIPANT,
        Column("condition", "string", "Assistant arm", "@conditions"),
        Column("judge", "string",
               "Which judge scored: the judge's name, or a staff rater's pseudonym "
               "(rater-<12 hex>, stable within the study)"),
        Column("rubric_version", "string", "Version of the rubric prompt"),
        Column("score", "float", "Score on the rubric's scale (empty when judging failed)",
               "1-10"),
        Column("rationale", "string", "The judge's stated reasons"),
        Column("error", "string", "Why no score could be obtained"),
        Column("created_at", "timestamp", "When it was scored", "UTC, ISO 8601"),
    ),
    source=_scores_source,
    expand=_scores_expand,
)

TABLES: tuple[Table, ...] = (
    PARTICIPATIONS,
    MESSAGES,
    RATINGS,
    DOCUMENT_VERSIONS,
    EDIT_BATCHES,
    EVENTS,
    SURVEY_ANSWERS,
    DOCUMENT_SCORES,
)
TABLES_BY_NAME = {t.name: t for t in TABLES}
