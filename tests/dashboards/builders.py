"""A small study with known numbers, for checking every dashboard figure against hand values.

``KnownStudy`` keeps the spec each participation was built from, so tests compute the expected
numbers from the spec (plain Python), never from the code under test.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from django.utils import timezone

from studyapp.feedback.models import FINAL_TURN, DocumentScore, Rating, Scale
from studyapp.participants.models import Participation, Status
from studyapp.studies.models import Condition, Study, StudyVersion
from studyapp.writing.models import DocumentVersion, Message, Role
from tests.factories import ConditionFactory, ParticipationFactory, StudyVersionFactory

ARMS = ("base", "proactive_base", "collabllm")


@dataclass
class PSpec:
    """One participation to build; None ratings are not given."""

    arm: str | None
    status: str = Status.COMPLETED
    document_quality: int | None = None
    overall: int | None = None
    interaction: dict[int, int] = field(default_factory=dict)  # turn -> rating
    minutes: float | None = None  # completed_at - entered_at
    chat_minutes: float | None = None  # finished_at - writing_at
    active_minutes: float | None = None  # active_seconds / 60
    turns: int = 0
    user_words: list[int] = field(default_factory=list)  # words per user message
    assistant_texts: list[str] = field(default_factory=list)
    tokens: list[int | None] = field(default_factory=list)
    ttft: list[float | None] = field(default_factory=list)
    errors: dict[int, str] = field(default_factory=dict)  # turn -> error text (then a retry)
    retry_ttft: float | None = 50.0  # time to first token of the reply after a failed one
    documents: list[str] = field(default_factory=list)
    judge: float | None = None
    is_test: bool = False
    is_simulated: bool = False  # a simulated participant (a test run of its own population)
    attention_passed: bool | None = None
    last_seen_minutes: float | None = None  # minutes ago
    document_type: str = "blog_post"
    consented: bool = True  # ignored for declined and just-entered participations


@dataclass
class Built:
    spec: PSpec
    participation: Participation


@dataclass
class KnownStudy:
    study: Study
    version: StudyVersion
    arms: dict[str, Condition]
    built: list[Built]

    def select(self, *, view="completers", include_test=False, include_failed_attention=False):
        out = []
        for b in self.built:
            s = b.spec
            if s.arm is None:
                continue
            if view == "completers" and s.status != Status.COMPLETED:
                continue
            if s.is_simulated:
                continue
            if s.is_test and not include_test:
                continue
            if s.attention_passed is False and not include_failed_attention:
                continue
            out.append(b)
        return out


def _consented(spec: PSpec) -> bool:
    return spec.consented and spec.status not in (Status.DECLINED, Status.ENTERED)


def _assistant_text(turn: int, index: int) -> str:
    # Mixed whitespace on purpose: words are split on any run of whitespace.
    return "Sure.\n\nHere is\tthe  idea: " + " ".join(["word"] * (turn + index))


def build_participation(
    version: StudyVersion, arms: dict[str, Condition], spec: PSpec, index: int
) -> Participation:
    now = timezone.now()
    p = ParticipationFactory(
        version=version,
        condition=arms[spec.arm] if spec.arm else None,
        status=spec.status,
        is_test=spec.is_test or spec.is_simulated,
        is_simulated=spec.is_simulated,
        attention_passed=spec.attention_passed,
        document_type=spec.document_type,
        consented_at=now if _consented(spec) else None,
        assigned_at=now if spec.arm else None,
    )
    entered = now - timedelta(hours=2)
    completed = entered + timedelta(minutes=spec.minutes) if spec.minutes is not None else None
    last_seen = (
        now - timedelta(minutes=spec.last_seen_minutes)
        if spec.last_seen_minutes is not None
        else None
    )
    writing = entered + timedelta(minutes=3)
    finished = (
        writing + timedelta(minutes=spec.chat_minutes) if spec.chat_minutes is not None else None
    )
    Participation.objects.filter(pk=p.pk).update(
        entered_at=entered, completed_at=completed, last_seen_at=last_seen,
        writing_at=writing, finished_at=finished,
        active_seconds=60 * (spec.active_minutes or 0),
    )
    p.refresh_from_db()
    if not spec.assistant_texts:
        spec.assistant_texts = [_assistant_text(t, index) for t in range(1, spec.turns + 1)]
    messages = []
    for turn in range(1, spec.turns + 1):
        words = spec.user_words[turn - 1] if spec.user_words else turn
        messages.append(
            Message(participation=p, turn=turn, role=Role.USER, text=" ".join(["w"] * words))
        )
        reply = {
            "participation": p,
            "turn": turn,
            "role": Role.ASSISTANT,
            "backend": "openai",
            "model": "m",
            "ttft_ms": spec.ttft[turn - 1] if spec.ttft else None,
        }
        if turn in spec.errors:
            # As the relay stores it: the failed generation inactive, then the retry's reply.
            messages.append(
                Message(
                    **reply,
                    text="",
                    is_active=False,
                    error=spec.errors[turn],
                    finish_reason="error",
                )
            )
            reply["ttft_ms"] = spec.retry_ttft
        messages.append(
            Message(
                **reply,
                text=spec.assistant_texts[turn - 1],
                completion_tokens=spec.tokens[turn - 1] if spec.tokens else None,
                finish_reason="stop",
            )
        )
    Message.objects.bulk_create(messages)
    ratings = [
        Rating(participation=p, scale=Scale.INTERACTION, turn=t, value=v)
        for t, v in spec.interaction.items()
    ]
    if spec.document_quality is not None:
        ratings.append(
            Rating(
                participation=p,
                scale=Scale.DOCUMENT_QUALITY,
                turn=FINAL_TURN,
                value=spec.document_quality,
            )
        )
    if spec.overall is not None:
        ratings.append(
            Rating(participation=p, scale=Scale.OVERALL, turn=FINAL_TURN, value=spec.overall)
        )
    Rating.objects.bulk_create(ratings)
    DocumentVersion.objects.bulk_create(
        DocumentVersion(participation=p, number=n, text=text)
        for n, text in enumerate(spec.documents, start=1)
    )
    if spec.judge is not None:
        DocumentScore.objects.create(
            participation=p, judge="judge-a", rubric_version="v1", score=spec.judge
        )
    return p


def completer(arm: str, i: int, dq: int, overall: int, rat: dict[int, int], minutes: float):
    turns = max([8, *rat])
    return PSpec(
        arm=arm,
        document_quality=dq,
        overall=overall,
        interaction=rat,
        minutes=minutes,
        chat_minutes=minutes - 6 - i,
        active_minutes=minutes / 2 + 3 * i,
        turns=turns,
        user_words=[t + i for t in range(1, turns + 1)],
        tokens=[10 * t + i for t in range(1, turns + 1)],
        ttft=[100.0 + 7 * t + 13 * i + 40 * ARMS.index(arm) for t in range(1, turns + 1)],
        documents=["first draft", "A  longer\nsecond draft " + "x " * i],
        judge=5.0 + dq / 2 if i != 1 else None,
        attention_passed=True,
    )


def known_specs() -> list[PSpec]:
    specs = [
        completer("base", 0, 5, 5, {3: 6, 6: 5}, 30.0),
        completer("base", 1, 6, 6, {3: 5, 6: 4, 9: 4}, 35.5),
        completer("base", 2, 7, 6, {3: 7, 6: 6}, 28.0),
        completer("base", 3, 4, 4, {3: 5, 6: 4, 9: 3}, 40.0),
        completer("proactive_base", 0, 7, 7, {3: 6, 6: 7}, 33.0),
        completer("proactive_base", 1, 8, 7, {3: 7, 6: 7, 9: 8}, 31.0),
        completer("proactive_base", 2, 6, 8, {3: 5, 6: 6}, 36.0),
        completer("proactive_base", 3, 7, 6, {3: 6, 6: 6, 9: 7}, 29.5),
        completer("collabllm", 0, 9, 8, {3: 7, 6: 8}, 25.0),
        completer("collabllm", 1, 8, 9, {3: 8, 6: 8, 9: 9}, 27.0),
        completer("collabllm", 2, 9, 9, {3: 7, 6: 9}, 24.0),
        completer("collabllm", 3, 7, 8, {3: 6, 6: 7, 9: 8}, 26.5),
    ]
    specs[9].errors = {2: "upstream 503"}
    # Counted only when the filter asks for them.
    pilot = completer("collabllm", 4, 2, 2, {3: 2, 6: 2}, 10.0)
    pilot.is_test = True
    failed = completer("base", 5, 10, 10, {3: 10, 6: 10}, 12.0)
    failed.attention_passed = False
    specs += [pilot, failed]
    # Assigned but not (yet) completed: intention to treat only.
    specs += [
        PSpec(
            arm="base",
            status=Status.WRITING,
            interaction={3: 3},
            turns=4,
            ttft=[500.0, 510.0, 520.0, 530.0],
            tokens=[1, 2, 3, 4],
            last_seen_minutes=1,
        ),
        PSpec(arm="proactive_base", status=Status.RETURNED, turns=2, ttft=[90.0, 95.0]),
        PSpec(
            arm="collabllm",
            status=Status.WRITING,
            interaction={3: 8, 6: 6},
            turns=6,
            ttft=[120.0] * 6,
            tokens=[5] * 6,
            errors={6: "model timed out"},
            last_seen_minutes=45,
        ),
        PSpec(arm="collabllm", status=Status.TIMED_OUT, turns=1, ttft=[300.0]),
    ]
    # Never assigned.
    specs += [
        PSpec(arm=None, status=Status.DECLINED),
        PSpec(arm=None, status=Status.ENTERED),
        PSpec(arm=None, status=Status.RETURNED, consented=False),
    ]
    return specs


def build_known_study(*, backend: str = "openai", specs: list[PSpec] | None = None) -> KnownStudy:
    version = StudyVersionFactory(spec={"slug": "known"})
    arms = {
        name: ConditionFactory(version=version, name=name, backend=backend, weight=1)
        for name in ARMS
    }
    built = [
        Built(spec=spec, participation=build_participation(version, arms, spec, i))
        for i, spec in enumerate(specs if specs is not None else known_specs())
    ]
    return KnownStudy(study=version.study, version=version, arms=arms, built=built)


def consented(spec: PSpec) -> bool:
    return _consented(spec)


def reply_ttfts(spec: PSpec) -> list[float]:
    """Time to first token of every generation the spec produces (failed ones and retries)."""
    out = [t for t in spec.ttft if t is not None]
    out += [spec.retry_ttft for turn in spec.errors if spec.retry_ttft is not None]
    return out
