"""Reads for the dashboards. Every number is aggregated in the database.

Arms are identified by condition *name*, so that a study reloaded as a new version (new
Condition rows) keeps one column per arm. Per-participant values (one row per participation)
come from grouped SQL queries; only those rows reach Python, never the message rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db.models import (
    Avg,
    Case,
    Count,
    F,
    FloatField,
    IntegerField,
    Max,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
    Value,
    When,
)
from django.db.models.functions import Coalesce
from django.utils import timezone

from studyapp.dashboards import stats
from studyapp.dashboards.filters import ParticipationFilter
from studyapp.dashboards.sql import aggregate_with_percentiles
from studyapp.erasure.models import ErasureRecord
from studyapp.feedback.models import FINAL_TURN, DocumentScore, Rating, Scale, SurveyKind
from studyapp.participants.models import Participation, Status
from studyapp.scoring.raters import RATER_PREFIX
from studyapp.studies.models import Condition, Study, StudyVersion
from studyapp.writing.models import DocumentVersion, Message, Role

ACTIVE_STATUSES = (Status.ENTERED, Status.CONSENTED, Status.WRITING, Status.FINISHED)
ARM = "condition__name"


# --- studies -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Arm:
    name: str
    weight: int
    backend: str


@dataclass(frozen=True)
class StudyOverview:
    study: Study
    version: StudyVersion | None
    arms: list[Arm]  # current version's arms first, then arms only older versions had
    offline: bool


def study_list() -> list[Study]:
    """Every study with its participation counts (test runs excluded) in one query."""
    real = Q(participations__is_test=False)

    def count(condition: Q) -> Count:
        # distinct: the versions join repeats every participation once per version.
        return Count("participations", filter=condition, distinct=True)

    rows = Study.objects.annotate(
        n_entered=count(real),
        n_assigned=count(real & Q(participations__condition__isnull=False)),
        n_completed=count(real & Q(participations__status=Status.COMPLETED)),
        n_writing=count(real & Q(participations__status=Status.WRITING)),
        n_test=count(Q(participations__is_test=True, participations__is_simulated=False)),
        n_simulated=count(Q(participations__is_simulated=True)),
        n_versions=Count("versions", distinct=True),
    ).order_by("-created_at")
    return list(rows)


def study_overview(*, study: Study) -> StudyOverview:
    version = study.versions.order_by("-number").first()
    conditions = (
        Condition.objects.filter(version__study=study)
        .order_by("-version__number", "id")
        .values_list("name", "weight", "backend", "version_id")
    )
    arms: dict[str, Arm] = {}
    current_backends = []
    for name, weight, backend, version_id in conditions:
        arms.setdefault(name, Arm(name=name, weight=weight, backend=backend))
        if version is not None and version_id == version.id:
            current_backends.append(backend)
    offline = version is not None and (
        bool(version.spec.get("offline_demo")) or "offline" in current_backends
    )
    return StudyOverview(study=study, version=version, arms=list(arms.values()), offline=offline)


def studies_offline(*, studies: list[Study]) -> dict[int, bool]:
    """Whether each study's current version runs on the offline backend (two queries)."""
    latest = StudyVersion.objects.filter(study=OuterRef("study")).order_by("-number")
    versions = StudyVersion.objects.filter(
        study__in=studies, pk=Subquery(latest.values("pk")[:1])
    ).annotate(n_offline=Count("conditions", filter=Q(conditions__backend="offline")))
    flags = {s.id: False for s in studies}
    for version in versions:
        flags[version.study_id] = bool(version.spec.get("offline_demo")) or version.n_offline > 0
    return flags


# --- participant flow ----------------------------------------------------------------------


@dataclass
class ArmFlow:
    name: str | None  # None: not (yet) assigned to an arm
    entered: int = 0
    consented: int = 0
    completed: int = 0
    returned: int = 0
    timed_out: int = 0
    excluded: int = 0
    technical_problem: int = 0  # ended because the model could not answer
    declined: int = 0
    active: int = 0
    failed_attention: int = 0
    left_before_consent: int = 0  # returned / timed out / excluded without consenting
    deciding: int = 0  # still on the consent page
    erased: int = 0  # withdrew and had their data erased: no longer counted in any column above
    # Completed, but failed an attention check: in ``completed`` and out of the analysis.
    completed_failed_attention: int = 0
    document_types: dict[str, int] = field(default_factory=dict)

    @property
    def analysed(self) -> int:
        """Completed and not excluded from the analysis (a researcher's exclusion already took
        the participation out of ``completed``: its status is excluded)."""
        return self.completed - self.completed_failed_attention

    @property
    def excluded_from_analysis(self) -> int:
        """CONSORT's "excluded from analysis": failed attention checks and researchers'
        exclusions."""
        return self.completed_failed_attention + self.excluded


@dataclass
class Flow:
    previews: int
    entered: int
    consented: int
    unassigned: ArmFlow
    arms: list[ArmFlow]

    @property
    def assigned(self) -> int:
        return sum(a.entered for a in self.arms)

    @property
    def erased(self) -> int:
        return self.unassigned.erased + sum(a.erased for a in self.arms)


def _flow_counts() -> dict[str, Any]:
    no_consent = Q(consented_at__isnull=True)
    return {
        "entered": Count("id"),
        "consented": Count("id", filter=Q(consented_at__isnull=False)),
        "completed": Count("id", filter=Q(status=Status.COMPLETED)),
        "returned": Count("id", filter=Q(status=Status.RETURNED)),
        "timed_out": Count("id", filter=Q(status=Status.TIMED_OUT)),
        "excluded": Count("id", filter=Q(status=Status.EXCLUDED)),
        "technical_problem": Count("id", filter=Q(status=Status.TECHNICAL_PROBLEM)),
        "declined": Count("id", filter=Q(status=Status.DECLINED)),
        "active": Count("id", filter=Q(status__in=ACTIVE_STATUSES)),
        "failed_attention": Count("id", filter=Q(attention_passed=False)),
        "completed_failed_attention": Count(
            "id", filter=Q(status=Status.COMPLETED, attention_passed=False)
        ),
        "left_before_consent": Count(
            "id",
            filter=no_consent & Q(status__in=(Status.RETURNED, Status.TIMED_OUT, Status.EXCLUDED)),
        ),
        "deciding": Count("id", filter=no_consent & Q(status__in=ACTIVE_STATUSES)),
    }


def study_flow(
    *, study: Study, arms: list[Arm], pfilter: ParticipationFilter | None = None
) -> Flow:
    """CONSORT-style counts, overall and per arm, in two grouped queries, of the people the
    filter chooses (real participants, pilots, simulated ones) whatever their status."""
    who = (pfilter or ParticipationFilter()).who_q()
    qs = Participation.objects.filter(study=study).filter(who)
    if pfilter is not None and pfilter.version is not None:
        qs = qs.filter(version__number=pfilter.version)
    by_arm = {a.name: ArmFlow(name=a.name) for a in arms}
    unassigned = ArmFlow(name=None)
    for row in qs.values(arm=F(ARM)).annotate(**_flow_counts()).order_by():
        name = row.pop("arm")
        target = unassigned if name is None else by_arm.setdefault(name, ArmFlow(name=name))
        for key, value in row.items():
            setattr(target, key, value)
    doc_types = qs.filter(condition__isnull=False).values(arm=F(ARM), doc=F("document_type"))
    for row in doc_types.annotate(n=Count("id")).order_by("doc"):
        by_arm[row["arm"]].document_types[row["doc"] or "(none)"] = row["n"]
    erasures = ErasureRecord.objects.filter(study=study)
    if not (pfilter and pfilter.include_test):
        erasures = erasures.filter(is_test=False)
    for row in erasures.values("arm").annotate(n=Count("id")).order_by():
        name = row["arm"]
        target = by_arm.setdefault(name, ArmFlow(name=name)) if name else unassigned
        target.erased = row["n"]
    everyone = [unassigned, *by_arm.values()]
    return Flow(
        previews=study.preview_count,
        entered=sum(a.entered for a in everyone),
        consented=sum(a.consented for a in everyone),
        unassigned=unassigned,
        arms=list(by_arm.values()),
    )


# --- per-participant outcomes ------------------------------------------------------------


@dataclass(slots=True)
class ParticipantRow:
    id: int
    arm: str
    time_spent_s: float | None = None
    chat_seconds: float | None = None  # writing_at -> finished_at: the co-writing step
    active_seconds: float | None = None  # page focused and active; completers only
    document_quality: float | None = None
    overall: float | None = None
    interaction_mean: float | None = None
    user_turns: int = 0
    user_words: int = 0
    assistant_words: int = 0
    completion_tokens: int = 0
    document_words: int | None = None
    judge_score: float | None = None
    document_type: str = ""
    # For a pre-registration's exclusion rules (studyapp/dashboards/confirmatory.py).
    failed_attention: bool = False
    excluded_by_researcher: bool = False


def _population(study: Study, pfilter: ParticipationFilter) -> QuerySet[Participation]:
    return pfilter.apply(Participation.objects.filter(study=study))


def _judge_choice(study: Study, pfilter: ParticipationFilter) -> tuple[str, str] | None:
    """The (judge, rubric) that scored most documents of the population, if any; staff
    raters are not judges (they only feed agreement)."""
    top = (
        DocumentScore.objects.filter(participation__study=study, score__isnull=False)
        .exclude(judge__startswith=RATER_PREFIX)
        .filter(pfilter.q("participation__"))
        .values("judge", "rubric_version")
        .annotate(n=Count("id"))
        .order_by("-n", "judge", "rubric_version")
        .first()
    )
    return (top["judge"], top["rubric_version"]) if top else None


@dataclass
class ParticipantTable:
    rows: list[ParticipantRow]
    judge: tuple[str, str] | None
    # Every judge's good scores in the population: (judge, rubric) -> participation id -> score.
    judge_scores: dict[tuple[str, str], dict[int, float]] = field(default_factory=dict)


def participant_outcomes(*, study: Study, pfilter: ParticipationFilter) -> ParticipantTable:
    """One row per participation in the population with its outcomes (five grouped queries)."""
    population = _population(study, pfilter)
    final = Q(ratings__turn=FINAL_TURN)
    base = population.annotate(
        time_spent=F("completed_at") - F("entered_at"),
        chat_time=F("finished_at") - F("writing_at"),
        document_quality=Max(
            "ratings__value", filter=final & Q(ratings__scale=Scale.DOCUMENT_QUALITY)
        ),
        overall=Max("ratings__value", filter=final & Q(ratings__scale=Scale.OVERALL)),
        interaction_mean=Avg(
            "ratings__value", filter=Q(ratings__scale=Scale.INTERACTION), output_field=FloatField()
        ),
    ).values_list(
        "id",
        ARM,
        "time_spent",
        "chat_time",
        "active_seconds",
        "document_quality",
        "overall",
        "interaction_mean",
        "document_type",
        "attention_passed",
        "status",
    )
    rows: dict[int, ParticipantRow] = {}
    for (pid, arm, spent, chat, active, quality, overall, interaction, doc_type, attention,
         status) in base.order_by():
        rows[pid] = ParticipantRow(
            id=pid,
            arm=arm,
            time_spent_s=spent.total_seconds() if spent is not None else None,
            chat_seconds=chat.total_seconds() if chat is not None else None,
            # Counted until the end; a participant who left midway has a partial total.
            active_seconds=active if spent is not None else None,
            document_quality=quality,
            overall=overall,
            interaction_mean=interaction,
            document_type=doc_type or "(none)",
            failed_attention=attention is False,
            excluded_by_researcher=status == Status.EXCLUDED,
        )
    _add_message_totals(rows, population)
    _add_document_words(rows, population)
    judge = _judge_choice(study, pfilter)
    judge_scores: dict[tuple[str, str], dict[int, float]] = {}
    if judge is not None:
        # Every judge's scores in one query: the chosen one fills the rows, all feed agreement.
        scores = DocumentScore.objects.filter(
            participation__in=population.values("pk"), score__isnull=False
        ).values_list("judge", "rubric_version", "participation_id", "score")
        for label, rubric, pid, score in scores:
            judge_scores.setdefault((label, rubric), {})[pid] = score
        for pid, score in judge_scores.get(judge, {}).items():
            rows[pid].judge_score = score
    return ParticipantTable(rows=list(rows.values()), judge=judge, judge_scores=judge_scores)


def _add_message_totals(rows: dict[int, ParticipantRow], population: QuerySet) -> None:
    # Failed generations are stored inactive (the turn is then retried): not part of the chat.
    active = Q(is_active=True)
    user, assistant = active & Q(role=Role.USER), active & Q(role=Role.ASSISTANT)
    totals = (
        Message.objects.filter(participation__in=population.values("pk"))
        .values("participation_id")
        .annotate(
            # participation_id, not id: the covering index holds it (index-only scan).
            user_turns=Count("participation_id", filter=user),
            user_words=Coalesce(Sum("word_count", filter=user), 0),
            assistant_words=Coalesce(Sum("word_count", filter=assistant), 0),
            completion_tokens=Coalesce(Sum("completion_tokens", filter=assistant), 0),
        )
        .order_by()
    )
    for t in totals:
        row = rows[t.pop("participation_id")]
        for key, value in t.items():
            setattr(row, key, value)


def _add_document_words(rows: dict[int, ParticipantRow], population: QuerySet) -> None:
    # One index lookup per participation on (participation, number), newest version first.
    latest = DocumentVersion.objects.filter(participation=OuterRef("pk")).order_by("-number")
    words = population.annotate(words=Subquery(latest.values("word_count")[:1])).values_list(
        "id", "words"
    )
    for pid, n in words.order_by():
        rows[pid].document_words = n


# --- in-chat ratings over turns, latency ----------------------------------------------------


def interaction_by_turn(*, study: Study, pfilter: ParticipationFilter) -> list[dict[str, Any]]:
    """Mean, sample SD (None below two ratings) and n of the in-chat rating per arm and turn."""
    # Count, sum and sum of squares rather than StdDev: SQLite (the demo) computes StdDev with
    # statistics.stdev, which raises for a single rating where PostgreSQL returns NULL.
    rows = (
        Rating.objects.filter(participation__study=study, scale=Scale.INTERACTION)
        .filter(pfilter.q("participation__"))
        .values("turn", arm=F(f"participation__{ARM}"))
        .annotate(n=Count("id"), total=Sum("value"), total_sq=Sum(F("value") * F("value")))
        .order_by("arm", "turn")
    )
    out = []
    for row in rows:
        n, total, total_sq = row.pop("n"), row.pop("total"), row.pop("total_sq")
        mean, sd = stats.mean_sd_from_sums(n=n, total=total, total_sq=total_sq)
        out.append({**row, "n": n, "mean": mean, "sd": sd})
    return out


def _arm_index(study: Study, field: str) -> tuple[Case | None, list[str]]:
    """An integer per arm name, as a CASE over condition ids (one arm may span versions).

    Grouping on it sorts integers instead of collated text, which is most of what an ordered
    aggregate such as percentile_cont costs.
    """
    ids: dict[str, list[int]] = {}
    for pk, name in Condition.objects.filter(version__study=study).values_list("id", "name"):
        ids.setdefault(name, []).append(pk)
    names = list(ids)
    if not names:
        return None, names
    whens = [When(**{f"{field}__in": ids[name]}, then=Value(i)) for i, name in enumerate(names)]
    return Case(*whens, output_field=IntegerField()), names


def latency_by_arm(
    *, study: Study, pfilter: ParticipationFilter | None = None, since: datetime | None = None
) -> dict[str, dict[str, Any]]:
    """Assistant replies (failed ones included), model errors and time to first token p50/p95
    (ms) per arm."""
    arm_index, names = _arm_index(study, "participation__condition_id")
    if arm_index is None:
        return {}
    qs = Message.objects.filter(participation__study=study, role=Role.ASSISTANT)
    if pfilter is not None:
        qs = qs.filter(pfilter.q("participation__"))
    if since is not None:
        qs = qs.filter(created_at__gte=since)
    rows = aggregate_with_percentiles(
        qs,
        group=arm_index,
        value="ttft_ms",
        fractions={"ttft_p50": 0.5, "ttft_p95": 0.95},
        # Counting participation_id (never NULL) keeps the scan inside the covering index;
        # the relay stores every failed generation with finish_reason "error".
        aggregates={
            "replies": Count("participation_id"),
            "errors": Count("participation_id", filter=Q(finish_reason="error")),
        },
    )
    return {names[i]: {"arm": names[i], **rows[i]} for i in range(len(names)) if i in rows}


# --- live monitor ------------------------------------------------------------------------


@dataclass(frozen=True)
class MonitorSettings:
    active_minutes: int = 3  # "writing now": seen this recently
    stuck_minutes: int = 10  # writing, but not seen for this long
    window_minutes: int = 60  # errors and latency over this recent window
    limit: int = 100  # rows per list


def _current_turn() -> Subquery:
    return Subquery(
        Message.objects.filter(participation=OuterRef("pk"), role=Role.USER, is_active=True)
        .order_by("-turn")
        .values("turn")[:1]
    )


def _session_rows(qs: QuerySet, now: datetime, limit: int) -> list[dict[str, Any]]:
    rows = qs.annotate(turn=_current_turn()).values(
        "public_id", "is_test", "last_seen_at", "writing_at", "turn", arm=F(ARM)
    )[:limit]
    out = []
    for row in rows:
        seen = row["last_seen_at"]
        out.append(
            {
                **row,
                "public_id": str(row["public_id"]),
                "seen_seconds_ago": (now - seen).total_seconds() if seen else None,
            }
        )
    return out


def study_monitor(
    *, study: Study, now: datetime | None = None, settings: MonitorSettings | None = None
) -> dict[str, Any]:
    """Who is writing now, who seems stuck, who is hitting model errors; latency by arm."""
    now = now or timezone.now()
    settings = settings or MonitorSettings()
    active_since = now - timedelta(minutes=settings.active_minutes)
    stuck_before = now - timedelta(minutes=settings.stuck_minutes)
    window_since = now - timedelta(minutes=settings.window_minutes)
    writing = Participation.objects.filter(study=study, status=Status.WRITING)
    is_stuck = Q(last_seen_at__lt=stuck_before) | Q(last_seen_at__isnull=True)
    counts = writing.aggregate(
        writing_now=Count("id", filter=Q(last_seen_at__gte=active_since)),
        stuck=Count("id", filter=is_stuck),
        writing_total=Count("id"),
    )
    recent_error = Q(messages__role=Role.ASSISTANT, messages__created_at__gte=window_since) & ~Q(
        messages__error=""
    )
    erroring = (
        writing.annotate(recent_errors=Count("messages", filter=recent_error))
        .filter(recent_errors__gt=0)
        .annotate(
            last_error=Subquery(
                Message.objects.filter(participation=OuterRef("pk"), role=Role.ASSISTANT)
                .exclude(error="")
                .order_by("-created_at")
                .values("error")[:1]
            )
        )
        .order_by("-recent_errors")
    )
    counts["technical_problems"] = Participation.objects.filter(
        study=study, status=Status.TECHNICAL_PROBLEM, technical_problem_at__gte=window_since
    ).count()
    return {
        "generated_at": now.isoformat(),
        "settings": settings.__dict__,
        "counts": counts,
        "writing_now": _session_rows(
            writing.filter(last_seen_at__gte=active_since).order_by("-last_seen_at"),
            now,
            settings.limit,
        ),
        "stuck": _session_rows(
            writing.filter(is_stuck).order_by(F("last_seen_at").asc(nulls_first=True)),
            now,
            settings.limit,
        ),
        "erroring": [
            {**row, "public_id": str(row["public_id"])}
            for row in erroring.values(
                "public_id", "recent_errors", "last_error", "last_seen_at", arm=F(ARM)
            )[: settings.limit]
        ],
        "latency_recent": latency_by_arm(study=study, since=window_since),
    }


# --- one conversation --------------------------------------------------------------------


@dataclass
class TurnBlock:
    turn: int
    messages: list[Message] = field(default_factory=list)
    rating: Rating | None = None
    thumb: int | None = None  # +1 / -1 on the turn's active reply


@dataclass(frozen=True)
class Answer:
    key: str  # the survey question's key; "" for pre-writing questions, which have none
    question: str
    value: Any  # None: not answered


@dataclass
class Conversation:
    participation: Participation
    turns: list[TurnBlock]
    prewriting: list[Answer]
    final_answers: list[Answer]
    versions: list[DocumentVersion]
    scores: list[DocumentScore]
    events: dict[str, int]


def _prewriting_answers(spec: dict[str, Any], doc_key: str, stored: dict[str, Any]) -> list[Answer]:
    """The topic, then each question of the document type in the spec's order (jsonb does not
    keep the order answers were stored in), then any question the spec no longer lists."""
    if not stored:
        return []
    answers = stored.get("answers")
    if not isinstance(answers, dict):  # a flat {question: answer} object
        answers = {k: v for k, v in stored.items() if k != "topic"}
    doc = next((d for d in spec.get("document_types", []) if d.get("key") == doc_key), None)
    questions = [q for q in (doc or {}).get("questions", []) if q in answers]
    questions += [q for q in answers if q not in questions]
    out = [Answer("topic", "Topic", stored["topic"])] if stored.get("topic") else []
    return out + [Answer("", q, answers[q]) for q in questions]


_RATING_LABELS = {Scale.DOCUMENT_QUALITY: "Document quality", Scale.OVERALL: "Overall interaction"}


def _final_answers(
    spec: dict[str, Any], stored: dict[str, Any], ratings: dict[str, int]
) -> list[Answer]:
    """Each final question once, in the spec's order with its text (the rating scales' values
    from their Rating rows); then anything the spec does not list, by key."""
    survey = spec.get("survey") or {}
    questions = {q["key"]: q.get("text") or q["key"] for q in survey.get("questions", [])}
    check = survey.get("attention_check")
    if check:
        questions[check["key"]] = f"Attention check: {check.get('text', '')}"
    for key in [*_RATING_LABELS, *ratings, *stored]:
        questions.setdefault(key, _RATING_LABELS.get(key, key))
    return [Answer(key, text, ratings.get(key, stored.get(key))) for key, text in questions.items()]


def participation_conversation(*, study: Study, public_id: str) -> Conversation:
    """Everything researchers read about one participation (a fixed number of queries)."""
    participation = Participation.objects.select_related("condition", "version").get(
        study=study, public_id=public_id
    )
    turns: dict[int, TurnBlock] = {}
    # Active messages first within a turn and role; alternatives (regenerations) after them.
    messages = participation.messages.order_by("turn", "-role", "-is_active", "id")
    for message in messages:
        turns.setdefault(message.turn, TurnBlock(turn=message.turn)).messages.append(message)
    final: dict[str, int] = {}
    for rating in participation.ratings.order_by("turn", "scale"):
        if rating.scale == Scale.INTERACTION:
            turns.setdefault(rating.turn, TurnBlock(turn=rating.turn)).rating = rating
        elif rating.scale == Scale.THUMB:
            turns.setdefault(rating.turn, TurnBlock(turn=rating.turn)).thumb = rating.value
        elif rating.turn == FINAL_TURN:
            final[rating.scale] = rating.value
    events = participation.events.values("kind").annotate(n=Count("id")).order_by("kind")
    surveys = {s.kind: s.answers for s in participation.survey_responses.all()}
    spec = participation.version.spec
    return Conversation(
        participation=participation,
        turns=[turns[t] for t in sorted(turns)],
        prewriting=_prewriting_answers(
            spec, participation.document_type, surveys.get(SurveyKind.PREWRITING) or {}
        ),
        final_answers=_final_answers(spec, surveys.get(SurveyKind.FINAL) or {}, final),
        versions=list(participation.document_versions.order_by("number")),
        scores=list(participation.document_scores.order_by("judge", "rubric_version")),
        events={e["kind"]: e["n"] for e in events},
    )


def recent_participations(*, study: Study, limit: int = 50) -> list[dict[str, Any]]:
    return list(
        Participation.objects.filter(study=study)
        .order_by("-entered_at")
        .values(
            "public_id", "status", "is_test", "is_simulated", "entered_at", "last_seen_at",
            arm=F(ARM),
        )[:limit]
    )
