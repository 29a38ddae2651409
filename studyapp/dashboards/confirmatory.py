"""The pre-registered analysis: the study file's declared outcomes, test, correction and
exclusion rules, applied as declared, with the primary outcome's p-value kept hidden until the
target n per arm is reached (or a researcher unlocks it, which is logged).

Confirmatory: the declared primary and secondary outcomes, tested on the declared comparisons
with the declared test, corrected across that whole family by the declared correction.
Everything else on the page is exploratory.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from studyapp.dashboards import stats
from studyapp.dashboards.filters import ParticipationFilter
from studyapp.dashboards.selectors import ParticipantRow
from studyapp.studies.models import Study
from studyapp.studies.spec import preregistration, preregistration_hash


@dataclass(frozen=True)
class PlannedTest:
    outcome: str
    role: str  # "primary" or "secondary"
    a: str
    b: str
    n_a: int
    n_b: int
    statistic: float  # U of arm a (mann_whitney) or Welch's t (welch)
    p: float
    p_adjusted: float
    hidden: bool = False  # primary before its target n: statistic and p are NaN here
    significant: bool | None = None  # p_adjusted < alpha; None while hidden or undefined


@dataclass(frozen=True)
class PlannedOmnibus:
    """The declared omnibus test of the primary outcome across the compared arms."""

    test: str  # kruskal_wallis, anova or welch_anova
    k: int
    n: int
    statistic: float  # H or F
    p: float
    hidden: bool = False


@dataclass
class Preregistered:
    block: dict[str, Any]
    sha256: str  # of the current version's block
    frozen_sha256: str  # frozen when the study opened ("" while it has not)
    frozen_at: datetime | None
    frozen_version: int | None
    # Versions whose declared pre-registration differs from the frozen one.
    differing_versions: list[int]
    tests: list[PlannedTest]
    n_primary: dict[str, int]  # per arm, values of the primary outcome after the exclusions
    removed: dict[str, int]  # participants each declared exclusion rule removed
    target_reached: bool
    unlocked_at: datetime | None
    unlocked_by: str
    labels: dict[str, str] = field(default_factory=dict)
    omnibus: PlannedOmnibus | None = None

    @property
    def primary_hidden(self) -> bool:
        return not self.target_reached and self.unlocked_at is None

    @property
    def changed(self) -> bool:
        return bool(self.frozen_sha256) and self.frozen_sha256 != self.sha256

    def role(self, outcome: str) -> str:
        """confirmatory for a declared outcome, exploratory for any other."""
        declared = {self.block["primary"], *self.block["secondary"]}
        return "confirmatory" if outcome in declared else "exploratory"


def analysis_filter(block: dict[str, Any], pfilter: ParticipationFilter) -> ParticipationFilter:
    """The declared population: real participants of the page's version choice, failed
    attention checks included (the declared rules remove them, and count how many)."""
    return ParticipationFilter(
        include_test=False,
        include_failed_attention=True,
        view=block["population"],
        simulated="exclude",
        version=pfilter.version,
    )


def apply_exclusions(
    rows: list[ParticipantRow], block: dict[str, Any]
) -> tuple[list[ParticipantRow], dict[str, int]]:
    """The rows the declared rules keep, and how many each rule removed."""
    removed = dict.fromkeys(block["exclusions"], 0)
    kept = []
    for row in rows:
        if "failed_attention" in removed and row.failed_attention:
            removed["failed_attention"] += 1
        elif "researcher" in removed and row.excluded_by_researcher:
            removed["researcher"] += 1
        else:
            kept.append(row)
    return kept, removed


def _raw_test(comparison: stats.Comparison, test: str) -> tuple[float, float]:
    if test == "welch":
        return comparison.welch_t, comparison.welch_p
    return comparison.mwu_u, comparison.mwu_p


def planned_tests(
    groups_by_outcome: dict[str, dict[str, list[float]]], block: dict[str, Any], *, hide: bool
) -> list[PlannedTest]:
    """Each declared outcome x comparison with the declared test, adjusted across them all."""
    found = []
    outcomes = [("primary", block["primary"])] + [("secondary", o) for o in block["secondary"]]
    for role, key in outcomes:
        groups = groups_by_outcome[key]
        for a, b in block["comparisons"]:
            (comparison,) = stats.pairwise_tests({a: groups.get(a, []), b: groups.get(b, [])})
            statistic, p = _raw_test(comparison, block["test"])
            found.append(PlannedTest(key, role, a, b, comparison.n_a, comparison.n_b, statistic,
                                     p, math.nan))
    adjusted = stats.adjust([t.p for t in found], block["correction"])
    out = []
    for test, p_adjusted in zip(found, adjusted, strict=True):
        if hide and test.role == "primary":
            out.append(replace(test, statistic=math.nan, p=math.nan, hidden=True))
        elif hide:
            # Adjusted across the family, a secondary's value would tell the primary's rank.
            out.append(test)
        else:
            significant = p_adjusted < block["alpha"] if math.isfinite(p_adjusted) else None
            out.append(replace(test, p_adjusted=p_adjusted, significant=significant))
    return out


_OMNIBUS_FIELDS = {
    "kruskal_wallis": ("kruskal_h", "kruskal_p"),
    "anova": ("anova_f", "anova_p"),
    "welch_anova": ("welch_f", "welch_p"),
}


def planned_omnibus(
    primary: dict[str, list[float]], block: dict[str, Any], *, hide: bool
) -> PlannedOmnibus | None:
    """The declared omnibus test on the primary outcome, hidden with the primary's p-values."""
    test = block.get("omnibus")
    if test is None:
        return None
    arms = sorted({arm for pair in block["comparisons"] for arm in pair})
    found = stats.omnibus({arm: primary.get(arm, []) for arm in arms})
    if hide:
        return PlannedOmnibus(test, found.k, found.n, math.nan, math.nan, hidden=True)
    statistic, p = (getattr(found, name) for name in _OMNIBUS_FIELDS[test])
    return PlannedOmnibus(test, found.k, found.n, statistic, p)


def preregistered_analysis(
    *,
    study: Study,
    spec: dict[str, Any],
    rows: list[ParticipantRow],
    groups_of: Any,
    version_specs: list[tuple[int, Any]],
) -> Preregistered | None:
    """The confirmatory analysis of ``rows`` (the declared population, before the rules);
    ``groups_of(rows)`` maps each outcome key to its values per arm."""
    block = preregistration(spec)
    if block is None:
        return None
    kept, removed = apply_exclusions(rows, block)
    groups_by_outcome = groups_of(kept)
    arms = {arm for pair in block["comparisons"] for arm in pair}
    primary = groups_by_outcome[block["primary"]]
    n_primary = {arm: len(primary.get(arm, [])) for arm in sorted(arms)}
    reached = all(n >= block["target_n_per_arm"] for n in n_primary.values())
    hide = not reached and study.primary_unlocked_at is None
    frozen = study.preregistration_sha256
    differing = [number for number, declared in version_specs
                 if frozen and preregistration_hash(declared or None) != frozen]
    unlocked_by = study.primary_unlocked_by.get_username() if study.primary_unlocked_by else ""
    return Preregistered(
        block=block,
        sha256=preregistration_hash(block),
        frozen_sha256=frozen,
        frozen_at=study.preregistration_frozen_at,
        frozen_version=study.preregistration_version,
        differing_versions=differing,
        tests=planned_tests(groups_by_outcome, block, hide=hide),
        n_primary=n_primary,
        removed=removed,
        target_reached=reached,
        unlocked_at=study.primary_unlocked_at,
        unlocked_by=unlocked_by,
        omnibus=planned_omnibus(primary, block, hide=hide),
    )
