"""The simulated-vs-real panel: how far simulated participants predict real ones, per arm.

For each outcome, the arm means of the real and of the simulated population side by side, the
difference (simulated - real) with Welch's 95 % CI, and Spearman's rank correlation of the arm
means: whether the simulator orders the arms as people did (SimulatorArena's question). The
in-chat rating over turns is given per arm and checkpoint for both populations as well.
Both populations share the page's other choices (completers or ITT, attention, test runs).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from studyapp.dashboards import stats
from studyapp.dashboards.filters import ParticipationFilter
from studyapp.dashboards.selectors import ParticipantRow, interaction_by_turn, participant_outcomes
from studyapp.studies.models import Study


def _minutes(seconds: float | None) -> float | None:
    return None if seconds is None else seconds / 60


# (key, label, value of a participant): the outcomes compared.
PANEL_OUTCOMES: list[tuple[str, str, Callable[[ParticipantRow], float | None]]] = [
    ("document_quality", "Document quality (1-10)", lambda r: r.document_quality),
    ("interaction_mean", "Mean in-chat rating (1-10)", lambda r: r.interaction_mean),
    ("user_turns", "Turns", lambda r: r.user_turns),
    ("user_words", "Participant words", lambda r: r.user_words),
    ("document_words", "Final document words", lambda r: r.document_words),
    ("time_spent_min", "Time spent (minutes)", lambda r: _minutes(r.time_spent_s)),
]


@dataclass(frozen=True)
class ArmPair:
    arm: str
    real_n: int
    real_mean: float
    simulated_n: int
    simulated_mean: float
    difference: stats.Difference  # simulated - real


@dataclass(frozen=True)
class PanelOutcome:
    key: str
    label: str
    arms: list[ArmPair]
    spearman: float  # rank correlation of the arm means (NaN when undefined)


@dataclass(frozen=True)
class SimulatedVsReal:
    outcomes: list[PanelOutcome]
    # population -> arm -> [{"turn", "mean", "n"}]
    engagement: dict[str, dict[str, list[dict[str, Any]]]]
    real_n: int
    simulated_n: int


def populations(pfilter: ParticipationFilter) -> tuple[ParticipationFilter, ParticipationFilter]:
    """(real, simulated): the page's filter for each population."""
    return replace(pfilter, simulated="exclude"), replace(pfilter, simulated="only")


def _values(rows: Sequence[ParticipantRow], arm: str, value: Callable) -> list[float]:
    out = []
    for row in rows:
        number = value(row) if row.arm == arm else None
        if number is not None:
            out.append(float(number))
    return out


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else math.nan


def compare(
    *, arms: list[str], real: Sequence[ParticipantRow], simulated: Sequence[ParticipantRow]
) -> list[PanelOutcome]:
    """Each outcome's arm means, differences and rank agreement from per-participant rows."""
    outcomes = []
    for key, label, value in PANEL_OUTCOMES:
        pairs = []
        for arm in arms:
            r, s = _values(real, arm, value), _values(simulated, arm, value)
            pairs.append(ArmPair(arm, len(r), _mean(r), len(s), _mean(s),
                                 stats.welch_difference(s, r)))  # fmt: skip
        rho = stats.spearman([p.real_mean for p in pairs], [p.simulated_mean for p in pairs])
        outcomes.append(PanelOutcome(key=key, label=label, arms=pairs, spearman=rho))
    return outcomes


def simulated_vs_real(
    *, study: Study, pfilter: ParticipationFilter, arms: list[str],
    real_rows: Sequence[ParticipantRow] | None = None,
) -> SimulatedVsReal:  # fmt: skip
    """The panel for the page's filter; ``real_rows``: the real population's rows when the
    caller has read them already."""
    real_filter, sim_filter = populations(pfilter)
    if real_rows is None:
        real_rows = participant_outcomes(study=study, pfilter=real_filter).rows
    sim_rows = participant_outcomes(study=study, pfilter=sim_filter).rows
    engagement: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for name, population in (("real", real_filter), ("simulated", sim_filter)):
        by_arm: dict[str, list[dict[str, Any]]] = {}
        for row in interaction_by_turn(study=study, pfilter=population):
            point = {"turn": row["turn"], "mean": row["mean"], "n": row["n"]}
            by_arm.setdefault(row["arm"], []).append(point)
        engagement[name] = by_arm
    return SimulatedVsReal(
        outcomes=compare(arms=arms, real=real_rows, simulated=sim_rows),
        engagement=engagement,
        real_n=len(real_rows),
        simulated_n=len(sim_rows),
    )
