"""Reading the entry link's query string: which platform sent this person, and under which id.

Prolific:  ?PROLIFIC_PID=…&STUDY_ID=…&SESSION_ID=…
MTurk:     ?workerId=…&assignmentId=…&hitId=…&turkSubmitTo=…  (assignmentId
           ASSIGNMENT_ID_NOT_AVAILABLE while the worker only previews the HIT)
Pilot:     ?participant_label=…&pilot_key=…  (the study's secret pilot key, or a staff login)
Simulated: ?simulated_label=…&simulation_key=…  (the study's secret simulation key; from
           ``manage.py simulate_participants``)
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from studyapp.participants.models import Platform

MTURK_PREVIEW_ASSIGNMENT = "ASSIGNMENT_ID_NOT_AVAILABLE"
# The only places an MTurk completion form may be posted to.
MTURK_SUBMIT_HOSTS = frozenset({"https://www.mturk.com", "https://workersandbox.mturk.com"})

# Platform ids are opaque, but always short and plain; anything else (an unfilled
# "{{%PROLIFIC_PID%}}" placeholder, markup, a pasted URL) is a broken link.
_PLATFORM_ID = re.compile(r"^[A-Za-z0-9_-]{1,100}$")
_LABEL = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")
# Prolific ids are 24 hexadecimal characters; a made-up id in any other shape is refused.
PROLIFIC_PID = re.compile(r"^[0-9a-fA-F]{24}$")


class EntryLinkError(ValueError):
    """The entry link is incomplete or malformed; the message is shown to the participant."""


@dataclass(frozen=True)
class EntryLink:
    platform: Platform
    external_id: str
    platform_data: dict[str, str] = field(default_factory=dict)
    is_preview: bool = False
    pilot_key: str = ""
    simulation_key: str = ""

    @property
    def is_test(self) -> bool:
        return self.platform in (Platform.PILOT, Platform.SIMULATED)

    @property
    def is_simulated(self) -> bool:
        return self.platform == Platform.SIMULATED


def _get(query: Mapping[str, str], name: str, pattern: re.Pattern[str] = _PLATFORM_ID) -> str:
    value = (query.get(name) or "").strip()
    if not value:
        raise EntryLinkError(f"The link is missing the “{name}” parameter.")
    if not pattern.match(value):
        raise EntryLinkError(f"The link's “{name}” parameter is not valid.")
    return value


def mturk_submit_base(value: str) -> str:
    """The validated ``turkSubmitTo`` origin, without a trailing slash."""
    base = value.strip().rstrip("/")
    if base not in MTURK_SUBMIT_HOSTS:
        raise EntryLinkError("The link's “turkSubmitTo” parameter is not an MTurk address.")
    return base


def parse_entry_link(query: Mapping[str, str], *, strict_prolific: bool = True) -> EntryLink:
    """The platform identity carried by an entry link's query parameters.

    ``strict_prolific``: PROLIFIC_PID must have Prolific's shape (24 hexadecimal characters).
    """
    if "PROLIFIC_PID" in query:
        return EntryLink(
            platform=Platform.PROLIFIC,
            external_id=_get(
                query, "PROLIFIC_PID", PROLIFIC_PID if strict_prolific else _PLATFORM_ID
            ),
            platform_data={
                "STUDY_ID": _get(query, "STUDY_ID"),
                "SESSION_ID": _get(query, "SESSION_ID"),
            },
        )
    if "assignmentId" in query:
        return _parse_mturk(query)
    if "participant_label" in query:
        label = _get(query, "participant_label", _LABEL)
        key = (query.get("pilot_key") or "").strip()
        return EntryLink(platform=Platform.PILOT, external_id=label, pilot_key=key)
    if "simulated_label" in query:
        label = _get(query, "simulated_label", _LABEL)
        key = (query.get("simulation_key") or "").strip()
        return EntryLink(platform=Platform.SIMULATED, external_id=label, simulation_key=key)
    raise EntryLinkError(
        "This link does not say who you are. Please open the study from the link on your "
        "recruitment platform (for example Prolific)."
    )


def _parse_mturk(query: Mapping[str, str]) -> EntryLink:
    assignment_id = _get(query, "assignmentId")
    if assignment_id == MTURK_PREVIEW_ASSIGNMENT:
        return EntryLink(platform=Platform.MTURK, external_id="", is_preview=True)
    return EntryLink(
        platform=Platform.MTURK,
        external_id=_get(query, "workerId"),
        platform_data={
            "assignmentId": assignment_id,
            "hitId": _get(query, "hitId"),
            "turkSubmitTo": mturk_submit_base(query.get("turkSubmitTo") or ""),
        },
    )
