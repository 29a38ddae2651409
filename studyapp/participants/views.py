"""Participant pages: entry, consent and pre-writing. Parse, call one service, respond."""

from __future__ import annotations

import re

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from studyapp.clientlimits import CONSENT, ENTRY, request_wait
from studyapp.participants.access import (
    participation_for_step,
    remember_participation,
    session_holds,
    session_participation,
    step_url,
)
from studyapp.participants.activity import HEARTBEAT_INTERVAL_S, activity_record
from studyapp.participants.forms import ConsentForm, PrewritingForm
from studyapp.participants.kept import kept_answers_keep
from studyapp.participants.models import EventKind, Participation, Status
from studyapp.participants.platforms import EntryLinkError, parse_entry_link
from studyapp.participants.services import (
    ConsentIncomplete,
    EntryRefused,
    ParticipationTakenOver,
    PrewritingInvalid,
    ReturnRefused,
    participation_consent,
    participation_decline,
    participation_enter,
    preview_record,
    prewriting_submit,
)
from studyapp.studies.models import Study
from studyapp.studies.spec import document_type

# Refusals are a deliberate "not for you, not now": 403 with an explanation page.
REFUSED_STATUS = 403
TOO_MANY_REQUESTS = 429
# How often the pre-writing page reports that it is open (static/js/presence.js).
PRESENCE_INTERVAL_MS = HEARTBEAT_INTERVAL_S * 1000


def _rate_limited(request: HttpRequest, wait_s: int) -> HttpResponse:
    context = {"wait_minutes": -(-wait_s // 60)}
    response = render(request, "participants/rate_limited.html", context,
                      status=TOO_MANY_REQUESTS)
    response["Retry-After"] = str(wait_s)
    return response


@require_GET
def entry(request: HttpRequest, slug: str) -> HttpResponse:
    wait_s = request_wait(request, group=ENTRY, rate=settings.ENTRY_RATE_LIMIT)
    if wait_s is not None:
        return _rate_limited(request, wait_s)
    study = get_object_or_404(Study, slug=slug)
    version = study.versions.order_by("-number").first()
    if version is None:
        raise Http404("This study is not set up yet.")
    context = {"study": study, "spec": version.spec}
    strict = version.spec.get("entry", {}).get("strict_prolific_ids", True)
    try:
        link = parse_entry_link(request.GET, strict_prolific=strict)
    except EntryLinkError as exc:
        return render(request, "participants/entry_error.html", {**context, "error": exc},
                      status=400)
    if link.is_preview:
        preview_record(study=study)
        return render(request, "participants/preview.html", context)
    try:
        participation = participation_enter(
            study=study,
            link=link,
            held=session_holds(request, study=study, link=link),
            staff=request.user.is_authenticated and request.user.is_staff,
        )
    except EntryRefused as exc:
        return _refused(request, context, exc)
    except ReturnRefused:
        return render(request, "participants/return_refused.html", context,
                      status=REFUSED_STATUS)
    remember_participation(request, participation)
    return redirect(step_url(participation))


def _refused(request: HttpRequest, context: dict, exc: EntryRefused) -> HttpResponse:
    return render(request, "participants/unavailable.html", {**context, "reason": exc.reason},
                  status=REFUSED_STATUS)


def _paragraphs(text: str) -> list[str]:
    """Study-file prose as paragraphs: blank lines separate them, single line breaks are wraps."""
    return [" ".join(block.split()) for block in re.split(r"\n\s*\n", text) if block.strip()]


def _page_context(participation: Participation) -> dict:
    return {"participation": participation, "spec": participation.version.spec}


@require_http_methods(["GET", "POST"])
def consent(request: HttpRequest, slug: str) -> HttpResponse:
    participation, elsewhere = participation_for_step(request, slug, Status.ENTERED)
    if elsewhere:
        return elsewhere
    spec = participation.version.spec
    form = ConsentForm(request.POST or None, spec=spec)
    if request.method == "POST":
        wait_s = request_wait(request, group=CONSENT, rate=settings.CONSENT_RATE_LIMIT)
        if wait_s is not None:
            return _rate_limited(request, wait_s)
        try:
            decided = _consent_decide(request, participation, form)
            if decided is not None:
                return decided
        except ConsentIncomplete as exc:
            form.add_error(None, str(exc))
        except EntryRefused as exc:
            return _refused(request, {"study": participation.study, "spec": spec}, exc)
        except ParticipationTakenOver as exc:
            raise Http404("Unknown participation.") from exc
    context = {
        **_page_context(participation),
        "form": form,
        "paragraphs": _paragraphs(spec["consent"]["text"]),
    }
    return render(request, "participants/consent.html", context)


def _consent_decide(
    request: HttpRequest, participation: Participation, form: ConsentForm
) -> HttpResponse | None:
    """Record the decision, and the page to go to; None to show the form's errors."""
    if request.POST.get("decision") == "decline":
        participation = participation_decline(participation=participation)
        return redirect(step_url(participation))
    if not form.is_valid():
        return None
    participation = participation_consent(participation=participation, agreed=form.agreed())
    return redirect(step_url(participation))


@require_http_methods(["GET", "POST"])
def prewriting(request: HttpRequest, slug: str) -> HttpResponse:
    participation, elsewhere = participation_for_step(request, slug, Status.CONSENTED)
    spec = participation.version.spec
    if elsewhere:
        timed_out = participation.status == Status.TIMED_OUT and participation.document_type
        if request.method == "POST" and timed_out:
            late = PrewritingForm(request.POST, spec=spec, doc_key=participation.document_type)
            kept_answers_keep(request, slug=slug, form=late)
        return elsewhere
    form = PrewritingForm(request.POST or None, spec=spec, doc_key=participation.document_type)
    if request.method == "POST" and form.is_valid():
        try:
            participation = prewriting_submit(
                participation=participation,
                topic=form.cleaned_data["topic"],
                answers=form.answers(),
            )
            return redirect(step_url(participation))
        except PrewritingInvalid as exc:
            form.add_error(None, str(exc))
        except EntryRefused as exc:
            return _refused(request, {"study": participation.study, "spec": spec}, exc)
    _seen(participation)
    doc = document_type(spec, participation.document_type)
    context = {
        **_page_context(participation),
        "form": form,
        "doc": doc,
        "presence_interval_ms": PRESENCE_INTERVAL_MS,
    }
    return render(request, "participants/prewriting.html", context)


def _seen(participation: Participation) -> None:
    # A consent holds its quota place only while its page shows signs of life.
    if participation.status == Status.CONSENTED:
        activity_record(participation_id=participation.pk, kind=EventKind.HEARTBEAT)


@require_POST
def presence(request: HttpRequest, slug: str) -> HttpResponse:
    """The pre-writing page's report that it is still open (static/js/presence.js)."""
    _seen(session_participation(request, slug))
    return HttpResponse(status=204)


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """The site's 404 page: it points lost participants back to their platform link."""
    return render(request, "participants/not_found.html", status=404)
