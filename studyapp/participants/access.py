"""Which participation a browser holds, and which page of the journey it belongs on.

The session remembers one participation per study (set at entry). Every participant page asks
``participation_for_step``: a participant who is not on that step is sent to the step they are
on, so steps cannot be skipped or repeated by typing URLs.
"""

from __future__ import annotations

from django.http import Http404, HttpRequest
from django.shortcuts import redirect
from django.urls import reverse

from studyapp.participants.models import TERMINAL_STATUSES, Participation, Status
from studyapp.participants.platforms import EntryLink
from studyapp.studies.models import Study

_SESSION_KEY = "participation:{slug}"

STEP_URLS = {
    Status.ENTERED: "participants:consent",
    Status.CONSENTED: "participants:prewriting",
    Status.WRITING: "writing:page",
    Status.FINISHED: "feedback:final",
}


def remember_participation(request: HttpRequest, participation: Participation) -> None:
    request.session[_SESSION_KEY.format(slug=participation.study.slug)] = str(
        participation.public_id
    )


def session_holds(request: HttpRequest, *, study: Study, link: EntryLink) -> bool:
    """Whether this browser's session holds the participation of ``link``'s platform id.

    The session cookie is Django's (an unguessable key, HttpOnly): only the browser that
    entered, or was let back in, has it.
    """
    public_id = request.session.get(_SESSION_KEY.format(slug=study.slug))
    return (
        bool(public_id)
        and Participation.objects.filter(
            public_id=public_id, study=study, platform=link.platform, external_id=link.external_id
        ).exists()
    )


def session_participation(request: HttpRequest, slug: str) -> Participation:
    public_id = request.session.get(_SESSION_KEY.format(slug=slug))
    if not public_id:
        raise Http404("No participation in this browser: please use the link from your platform.")
    try:
        return Participation.objects.select_related("study", "version", "condition").get(
            public_id=public_id, study__slug=slug
        )
    except Participation.DoesNotExist as exc:
        raise Http404("Unknown participation.") from exc


def step_url(participation: Participation) -> str:
    slug = participation.study.slug
    if participation.status in TERMINAL_STATUSES:
        return reverse("feedback:done", args=[slug])
    return reverse(STEP_URLS[Status(participation.status)], args=[slug])


def participation_for_step(request: HttpRequest, slug: str, status: Status):
    """(participation, None) when on ``status``'s step, else (participation, redirect)."""
    participation = session_participation(request, slug)
    if participation.status != status:
        return participation, redirect(step_url(participation))
    return participation, None


def kept_text_key(slug: str) -> str:
    """The browser's sessionStorage key under which the writing page keeps what was typed but
    not stored when the chat ends under the participant; the outcome page shows it back."""
    return f"collabstudy:kept:{slug}"
