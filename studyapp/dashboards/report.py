"""The study dashboard as one object: selectors' numbers, their statistics and their figures."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import plotly.graph_objects as go

from studyapp.dashboards import figures, stats
from studyapp.dashboards.confirmatory import Preregistered, analysis_filter, preregistered_analysis
from studyapp.dashboards.filters import ParticipationFilter
from studyapp.dashboards.selectors import (
    Flow,
    ParticipantRow,
    ParticipantTable,
    StudyOverview,
    interaction_by_turn,
    latency_by_arm,
    participant_outcomes,
    study_flow,
    study_overview,
)
from studyapp.dashboards.simulated import SimulatedVsReal, simulated_vs_real
from studyapp.scoring.rubrics import rubric_load
from studyapp.studies.models import Study
from studyapp.studies.spec import preregistration


@dataclass(frozen=True)
class Outcome:
    key: str
    label: str
    value: Callable[[ParticipantRow], float | None]


def _minutes(seconds: float | None) -> float | None:
    return None if seconds is None else seconds / 60


# The outcomes of the paper's comparison, in the order the statistics table lists them.
OUTCOMES = [
    Outcome("document_quality", "Document quality (1-10)", lambda r: r.document_quality),
    Outcome("overall", "Overall interaction rating (1-10)", lambda r: r.overall),
    Outcome("time_spent_min", "Time spent (minutes)", lambda r: _minutes(r.time_spent_s)),
    Outcome("chat_time_min", "Chat time (minutes, co-writing step)",
            lambda r: _minutes(r.chat_seconds)),
    Outcome("active_time_min", "Active time (minutes, page focused)",
            lambda r: _minutes(r.active_seconds)),
    Outcome(
        "interaction_mean", "Mean in-chat interaction rating (1-10)", lambda r: r.interaction_mean
    ),
]

CONVERSATION_PANELS = [
    ("User turns", lambda r: r.user_turns),
    ("Participant words", lambda r: r.user_words),
    ("Assistant words", lambda r: r.assistant_words),
    ("Completion tokens", lambda r: r.completion_tokens),
    ("Final document words", lambda r: r.document_words),
]


@dataclass
class OutcomeStats:
    key: str
    label: str
    summaries: dict[str, stats.Summary]
    comparisons: list[stats.Comparison]
    # Participants of the population without this outcome, per arm: available-case analysis
    # leaves them out, and the table says how many.
    missing: dict[str, int]
    omnibus: stats.Omnibus | None = None
    # confirmatory: declared in the study's pre-registration (its own table has the declared
    # test); exploratory: everything else.
    role: str = "exploratory"
    # The pre-registered primary outcome before its target n: no test statistic or p-value.
    p_hidden: bool = False


@dataclass
class DocumentTypeOutcome:
    key: str
    label: str
    summaries: dict[str, stats.Summary]
    omnibus: stats.Omnibus


@dataclass
class DocumentTypeBreakdown:
    document_type: str
    n_by_arm: dict[str, int]
    outcomes: list[DocumentTypeOutcome]


@dataclass
class BalanceRow:
    arm: str
    weight: int | None
    expected_share: float | None
    assigned: int
    assigned_share: float | None
    completed: int
    completion_rate: float | None
    document_types: dict[str, int]


@dataclass
class StudyReport:
    overview: StudyOverview
    pfilter: ParticipationFilter
    flow: Flow
    balance: list[BalanceRow]
    balance_p_assigned: float
    n_by_arm: dict[str, int]
    outcomes: list[OutcomeStats]
    latency: dict[str, dict[str, Any]]
    judge: tuple[str, str] | None
    figures: dict[str, dict[str, Any]]
    agreement: list[stats.Agreement] = field(default_factory=list)
    reliability: list[Reliability] = field(default_factory=list)

    # None when the study has no simulated participant in the page's population choice.
    simulated_vs_real: SimulatedVsReal | None = None
    # The study's version numbers, for the filter.
    versions: list[int] = field(default_factory=list)
    preregistered: Preregistered | None = None
    by_document_type: list[DocumentTypeBreakdown] = field(default_factory=list)

PARTICIPANT_RATER = "Participant's own rating"


@dataclass(frozen=True)
class Reliability:
    """Krippendorff's alpha (interval) over every rater of one rubric's scale."""

    rubric: str
    raters: list[str]
    units: int  # documents with at least two ratings
    values: int
    alpha: float
    complete: int  # documents every one of these raters scored
    icc: float  # ICC(2,1) over those documents


def _reliability(
    table: ParticipantTable, *, participant_scale: tuple[int, int]
) -> list[Reliability]:
    """Per rubric: its judges and staff raters, and the participant's own rating where the
    survey asks it on the rubric's scale (interval alpha assumes one scale)."""
    own = {row.id: float(row.document_quality) for row in table.rows
           if row.document_quality is not None}
    by_rubric: dict[str, dict[str, dict[int, float]]] = {}
    for (label, rubric), scores in sorted(table.judge_scores.items()):
        by_rubric.setdefault(rubric, {})[label] = scores
    found = []
    for rubric, raters in by_rubric.items():
        if own and _rubric_scale(rubric) == participant_scale:
            raters = {**raters, PARTICIPANT_RATER: own}
        if len(raters) < 2:
            continue
        documents = sorted({pid for scores in raters.values() for pid in scores})
        units = [[scores[pid] for scores in raters.values() if pid in scores]
                 for pid in documents]
        alpha, n_units, n_values = stats.krippendorff_alpha_interval(units)
        complete = [u for u in units if len(u) == len(raters)]
        found.append(Reliability(
            rubric=rubric, raters=list(raters), units=n_units, values=n_values, alpha=alpha,
            complete=len(complete), icc=stats.icc_two_way_absolute(complete),
        ))
    return found


def _rubric_scale(version: str) -> tuple[int, int] | None:
    try:
        rubric = rubric_load(version)
    except ValueError:
        return None  # a rubric this code does not know: its scale is not known either
    return rubric.low, rubric.high


def _agreement(table: ParticipantTable) -> list[stats.Agreement]:
    """Judge against judge, and each judge against the participant's own quality rating."""
    judges = {f"{label} ({rubric})": scores for (label, rubric), scores in
              sorted(table.judge_scores.items())}
    raters = dict(judges)
    raters[PARTICIPANT_RATER] = {
        row.id: float(row.document_quality) for row in table.rows
        if row.document_quality is not None
    }
    names = list(judges)
    pairs = [(a, b) for i, a in enumerate(names) for b in names[i + 1:]]
    pairs += [(name, PARTICIPANT_RATER) for name in names]
    return stats.spearman_agreement(raters, pairs)


def figure_data(fig: go.Figure) -> dict[str, Any]:
    """The figure as JSON-ready data for ``json_script`` (plotly's own encoder first)."""
    return json.loads(fig.to_json())


def _by_arm(
    rows: list[ParticipantRow], arms: list[str], value: Callable[[ParticipantRow], float | None]
) -> dict[str, list[float]]:
    groups: dict[str, list[float]] = {arm: [] for arm in arms}
    for row in rows:
        number = value(row)
        if number is not None and row.arm in groups:
            groups[row.arm].append(float(number))
    return groups


def _balance(flow: Flow, overview: StudyOverview) -> tuple[list[BalanceRow], float]:
    weights = {a.name: a.weight for a in overview.arms}
    total_weight = sum(weights.values())
    assigned_total = flow.assigned
    rows = []
    for arm in flow.arms:
        weight = weights.get(arm.name)
        rows.append(
            BalanceRow(
                arm=arm.name,
                weight=weight,
                expected_share=weight / total_weight if weight and total_weight else None,
                assigned=arm.entered,
                assigned_share=arm.entered / assigned_total if assigned_total else None,
                completed=arm.completed,
                completion_rate=arm.completed / arm.entered if arm.entered else None,
                document_types=arm.document_types,
            )
        )
    p_value = stats.chi_square_balance([r.assigned for r in rows], [r.weight or 0 for r in rows])
    return rows, p_value


def _engagement(
    study: Study, pfilter: ParticipationFilter, arms: list[str]
) -> dict[str, list[dict[str, Any]]]:
    by_arm: dict[str, list[dict[str, Any]]] = {arm: [] for arm in arms}
    for row in interaction_by_turn(study=study, pfilter=pfilter):
        low, high = stats.t_interval(row["mean"], row["sd"], row["n"])
        by_arm.setdefault(row["arm"], []).append({**row, "ci_low": low, "ci_high": high})
    return by_arm


def rating_scale(spec: dict[str, Any], key: str) -> tuple[int, int]:
    """(min, max) of a rating: the in-chat scale, or a final question's own range."""
    if key == "interaction":
        scale = (spec.get("scales") or {}).get("interaction") or {}
        return int(scale.get("min", 1)), int(scale.get("max", 10))
    for question in (spec.get("survey") or {}).get("questions") or []:
        if question.get("key") == key:
            return int(question.get("min", 1)), int(question.get("max", 10))
    return 1, 10


def _groups_by_outcome(
    rows: list[ParticipantRow], arms: list[str]
) -> dict[str, dict[str, list[float]]]:
    return {outcome.key: _by_arm(rows, arms, outcome.value) for outcome in OUTCOMES}


_HIDDEN_OMNIBUS = stats.Omnibus(0, 0, math.nan, math.nan, math.nan, math.nan)


def _hide_p(comparison: stats.Comparison) -> stats.Comparison:
    nan = math.nan
    return replace(comparison, mwu_u=nan, mwu_p=nan, mwu_p_holm=nan, welch_t=nan, welch_p=nan,
                   welch_p_holm=nan)


def _by_document_type(
    rows: list[ParticipantRow], arms: list[str], hidden: set[str]
) -> list[DocumentTypeBreakdown]:
    """Each outcome's summaries and omnibus test within each document type."""
    out = []
    for doc_type in sorted({row.document_type for row in rows}):
        subset = [row for row in rows if row.document_type == doc_type]
        n_by_arm = {arm: sum(1 for row in subset if row.arm == arm) for arm in arms}
        outcomes = []
        for outcome in OUTCOMES:
            groups = _by_arm(subset, arms, outcome.value)
            outcomes.append(DocumentTypeOutcome(
                key=outcome.key, label=outcome.label,
                summaries={arm: stats.summarise(values) for arm, values in groups.items()},
                omnibus=_HIDDEN_OMNIBUS if outcome.key in hidden else stats.omnibus(groups),
            ))
        out.append(DocumentTypeBreakdown(doc_type, n_by_arm, outcomes))
    return out


def _preregistered(
    study: Study, spec: dict[str, Any], pfilter: ParticipationFilter, rows: list[ParticipantRow],
    arms: list[str],
) -> Preregistered | None:
    block = preregistration(spec)
    if block is None:
        return None
    chosen = analysis_filter(block, pfilter)
    # The page's own rows when its population is the declared one; otherwise one more pass of
    # the same grouped queries (a fixed number, whatever the number of participants).
    own = rows if chosen == pfilter else participant_outcomes(study=study, pfilter=chosen).rows
    version_specs = list(study.versions.values_list("number", "spec__preregistration"))
    return preregistered_analysis(
        study=study, spec=spec, rows=own, version_specs=version_specs,
        groups_of=lambda kept: _groups_by_outcome(kept, arms),
    )


def study_report(*, study: Study, pfilter: ParticipationFilter) -> StudyReport:
    overview = study_overview(study=study)
    arms = [a.name for a in overview.arms]
    colours = figures.arm_colours(arms)
    spec = overview.version.spec if overview.version else {}
    flow = study_flow(study=study, arms=overview.arms, pfilter=pfilter)
    balance, balance_p = _balance(flow, overview)
    table = participant_outcomes(study=study, pfilter=pfilter)
    rows = table.rows
    outcome_stats = []
    n_by_arm = {arm: 0 for arm in arms}
    for row in rows:
        n_by_arm[row.arm] = n_by_arm.get(row.arm, 0) + 1
    prereg = _preregistered(study, spec, pfilter, rows, arms)
    hidden = {prereg.block["primary"]} if prereg is not None and prereg.primary_hidden else set()
    groups_by_outcome = _groups_by_outcome(rows, arms)
    for outcome in OUTCOMES:
        groups = groups_by_outcome[outcome.key]
        comparisons = stats.pairwise_tests(groups)
        p_hidden = outcome.key in hidden
        outcome_stats.append(
            OutcomeStats(
                key=outcome.key,
                label=outcome.label,
                summaries={arm: stats.summarise(values) for arm, values in groups.items()},
                comparisons=[_hide_p(c) for c in comparisons] if p_hidden else comparisons,
                missing={arm: n_by_arm.get(arm, 0) - len(values) for arm, values in groups.items()},
                omnibus=_HIDDEN_OMNIBUS if p_hidden else stats.omnibus(groups),
                role=prereg.role(outcome.key) if prereg is not None else "exploratory",
                p_hidden=p_hidden,
            )
        )
    summaries = {o.key: o.summaries for o in outcome_stats}
    latency = latency_by_arm(study=study, pfilter=pfilter)
    latency = {arm: latency[arm] for arm in arms if arm in latency}
    figs = {
        "flow": figures.flow_sankey(flow, colours),
        "engagement": figures.engagement_figure(
            _engagement(study, pfilter, arms), colours,
            scale=rating_scale(spec, "interaction"),
            min_n=int((spec.get("analysis") or {}).get("min_n_per_point",
                                                      figures.MIN_N_PER_POINT)),
        ),
        "document_quality": figures.distribution_figure(
            groups_by_outcome["document_quality"],
            colours,
            title="Document quality",
            axis="Rating (1-10)",
        ),
        "time_spent": figures.distribution_figure(
            groups_by_outcome["time_spent_min"],
            colours,
            title="Time spent",
            axis="Minutes (completed - entered)",
            kind="box",
        ),
        "chat_time": figures.distribution_figure(
            groups_by_outcome["chat_time_min"],
            colours,
            title="Chat time",
            axis="Minutes (co-writing began - chat ended)",
            kind="box",
        ),
        "active_time": figures.distribution_figure(
            groups_by_outcome["active_time_min"],
            colours,
            title="Active time",
            axis="Minutes the page was focused and active",
            kind="box",
        ),
        "overall": figures.mean_ci_figure(
            summaries["overall"],
            colours,
            title="Overall interaction rating",
            axis="Mean rating (1-10), bootstrap 95% CI",
            scale=rating_scale(spec, "overall"),
        ),
        "conversation": figures.conversation_size_figure(
            {title: _by_arm(rows, arms, value) for title, value in CONVERSATION_PANELS}, colours
        ),
        "latency": figures.latency_figure(latency, colours),
    }
    if table.judge is not None:
        judge, rubric = table.judge
        figs["judge"] = figures.distribution_figure(
            _by_arm(rows, arms, lambda r: r.judge_score),
            colours,
            title=f"Judge score ({judge}, rubric {rubric})",
            axis="Score",
            kind="box",
        )
    panel = None
    if flow_has_simulated(study):
        real_rows = rows if pfilter.simulated == "exclude" else None
        panel = simulated_vs_real(study=study, pfilter=pfilter, arms=arms, real_rows=real_rows)
        figs["simulated_vs_real"] = figures.simulated_vs_real_figure(panel, colours)
    n_by_arm = {arm: 0 for arm in arms}
    for row in rows:
        n_by_arm[row.arm] = n_by_arm.get(row.arm, 0) + 1
    return StudyReport(
        overview=overview,
        pfilter=pfilter,
        flow=flow,
        balance=balance,
        balance_p_assigned=balance_p,
        n_by_arm=n_by_arm,
        outcomes=outcome_stats,
        latency=latency,
        judge=table.judge,
        figures={key: figure_data(fig) for key, fig in figs.items()},
        agreement=_agreement(table),
        reliability=_reliability(
            table, participant_scale=rating_scale(spec, "document_quality")
        ),
        simulated_vs_real=panel,
        versions=list(study.versions.order_by("number").values_list("number", flat=True)),
        preregistered=prereg,
        by_document_type=_by_document_type(rows, arms, hidden),
    )


def flow_has_simulated(study: Study) -> bool:
    return study.participations.filter(is_simulated=True).exists()
