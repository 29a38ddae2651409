"""Which participations an analysis counts: shared by the dashboards and the exports."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, get_args

from django.db.models import Q, QuerySet

from studyapp.participants.models import Participation, Status

View = Literal["completers", "itt"]
VIEWS: tuple[str, ...] = get_args(View)
# Simulated participants (simulate_participants): left out, counted with the people, or alone.
Simulated = Literal["exclude", "include", "only"]
SIMULATED_CHOICES: tuple[str, ...] = get_args(Simulated)

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _parse_bool(params: Mapping[str, str], key: str, default: bool) -> bool:
    raw = params.get(key)
    if raw is None:
        return default
    value = str(raw).strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(f"{key} must be a boolean (1/0, true/false), got {raw!r}")


def _parse_version(raw: object) -> int | None:
    value = "" if raw is None else str(raw).strip().lower()
    if value in {"", "all"}:
        return None
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"version must be a version number (1, 2, ...) or all, got {raw!r}")
    return int(value)


@dataclass(frozen=True)
class ParticipationFilter:
    """The analysis population.

    ``completers`` counts participations whose status is completed; ``itt`` counts every
    participation that was assigned an arm, whatever happened next. Outcomes are then
    available-case: a participant without an outcome (most non-completers) is left out of that
    outcome, so ``itt`` is not an intention-to-treat analysis with imputed outcomes.
    ``version`` keeps one study version; without it every version is pooled (and says so).
    """

    include_test: bool = False  # pilot / researcher test runs (Participation.is_test)
    include_failed_attention: bool = False  # attention_passed is False
    view: View = "completers"
    simulated: Simulated = "exclude"  # simulated participants (Participation.is_simulated)
    version: int | None = None  # StudyVersion.number; None pools every version

    def __post_init__(self) -> None:
        if self.view not in VIEWS:
            raise ValueError(f"view must be one of {', '.join(VIEWS)}, got {self.view!r}")
        if self.version is not None and self.version < 1:
            raise ValueError(f"version must be a version number (1, 2, ...), got {self.version}")
        if self.simulated not in SIMULATED_CHOICES:
            choices = ", ".join(SIMULATED_CHOICES)
            raise ValueError(f"simulated must be one of {choices}, got {self.simulated!r}")

    @property
    def include_simulated(self) -> bool:
        return self.simulated != "exclude"

    def q(self, prefix: str = "") -> Q:
        """The filter as a Q, for related models too (prefix e.g. ``participation__``)."""
        q = Q(**{f"{prefix}condition__isnull": False})
        if self.view == "completers":
            q &= Q(**{f"{prefix}status": Status.COMPLETED})
        q &= self.who_q(prefix)
        if not self.include_failed_attention:
            # attention_passed is NULL when the study has no check: keep those.
            q &= ~Q(**{f"{prefix}attention_passed": False})
        if self.version is not None:
            q &= Q(**{f"{prefix}version__number": self.version})
        return q

    def who_q(self, prefix: str = "") -> Q:
        """Only the choice of people: real participants, pilots, simulated participants."""
        q = Q()
        # Simulated participants are test runs too; include_test speaks for the others.
        if not self.include_test:
            q &= Q(**{f"{prefix}is_test": False}) | Q(**{f"{prefix}is_simulated": True})
        if self.simulated == "exclude":
            q &= Q(**{f"{prefix}is_simulated": False})
        elif self.simulated == "only":
            q &= Q(**{f"{prefix}is_simulated": True})
        return q

    def apply(self, qs: QuerySet[Participation]) -> QuerySet[Participation]:
        return qs.filter(self.q())

    @classmethod
    def from_params(cls, params: Mapping[str, str]) -> ParticipationFilter:
        """Read ``include_test``, ``include_failed_attention``, ``view``, ``simulated``
        (``include_simulated=1`` is short for ``simulated=include``) and ``version`` (query
        string, CLI); ``version`` empty or ``all`` pools every version."""
        view = (params.get("view") or "completers").strip().lower()
        if view not in VIEWS:
            raise ValueError(f"view must be one of {', '.join(VIEWS)}, got {view!r}")
        simulated = (params.get("simulated") or "").strip().lower()
        if not simulated:
            include = _parse_bool(params, "include_simulated", False)
            simulated = "include" if include else "exclude"
        return cls(
            include_test=_parse_bool(params, "include_test", False),
            include_failed_attention=_parse_bool(params, "include_failed_attention", False),
            view=view,  # type: ignore[arg-type]
            simulated=simulated,  # type: ignore[arg-type]
            version=_parse_version(params.get("version")),
        )

    def as_params(self) -> dict[str, str]:
        return {
            "include_test": "1" if self.include_test else "0",
            "include_failed_attention": "1" if self.include_failed_attention else "0",
            "view": self.view,
            "simulated": self.simulated,
            "version": "" if self.version is None else str(self.version),
        }

    def describe(self) -> str:
        if self.view == "completers":
            population = "Participants who completed the study"
        else:
            population = (
                "Every participant assigned to an arm, whether or not they finished; "
                "outcomes are available-case (a participant without an outcome, such as one "
                "who did not finish, is left out of it; nothing is imputed)"
            )
        tests = (
            "pilot and researcher test runs included"
            if self.include_test
            else "pilot and researcher test runs excluded"
        )
        attention = (
            "participants who failed an attention check included"
            if self.include_failed_attention
            else "participants who failed an attention check excluded"
        )
        simulated = {
            "exclude": "simulated participants excluded",
            "include": "simulated participants included",
            "only": "simulated participants only",
        }[self.simulated]
        versions = (
            "all study versions pooled"
            if self.version is None
            else f"study version {self.version} only"
        )
        return f"{population}; {tests}; {simulated}; {attention}; {versions}."
