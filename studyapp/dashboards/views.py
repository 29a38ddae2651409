"""Researchers' dashboards (staff only): parse the request, call one selector, render."""

from __future__ import annotations

import gzip
import hashlib
from functools import lru_cache
from pathlib import Path
from uuid import UUID

import plotly
from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.core.serializers.json import DjangoJSONEncoder
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBadRequest, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.cache import patch_vary_headers
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from studyapp.dashboards.filters import ParticipationFilter
from studyapp.dashboards.report import study_report
from studyapp.dashboards.selectors import (
    MonitorSettings,
    participation_conversation,
    recent_participations,
    studies_offline,
    study_list,
    study_monitor,
    study_overview,
)
from studyapp.dashboards.services import primary_unlock
from studyapp.participants.audit import Action, data_access_record
from studyapp.participants.decisions import (
    DecisionRefused,
    participation_exclude,
    participation_mark_returned,
)
from studyapp.participants.models import Participation
from studyapp.payments.selectors import prolific_panel
from studyapp.studies.models import Study
from studyapp.studies.spec import exclusion_reasons

PROLIFIC_ACTIONS = [("import", "Import submissions"), ("review", "Approve / reject"),
                    ("pay", "Pay bonuses"), ("recheck", "Re-check unconfirmed bonuses")]


@require_GET
@staff_member_required
def index(request: HttpRequest) -> HttpResponse:
    studies = study_list()
    offline = studies_offline(studies=studies)
    rows = [{"study": s, "offline": offline[s.id]} for s in studies]
    return render(request, "dashboards/index.html", {"rows": rows})


@require_GET
@staff_member_required
def study(request: HttpRequest, slug: str) -> HttpResponse:
    # The unlocking researcher joins in: the pre-registration panel names them.
    study = get_object_or_404(Study.objects.select_related("primary_unlocked_by"), slug=slug)
    try:
        pfilter = ParticipationFilter.from_params(request.GET)
    except ValueError as exc:
        return HttpResponseBadRequest(str(exc))
    # The live monitor is not computed here: the page's script fetches it at once, then polls.
    context = {
        "report": study_report(study=study, pfilter=pfilter),
        "monitor_settings": MonitorSettings(),
        "recent": recent_participations(study=study),
        "prolific": prolific_panel(study=study),
        "prolific_actions": PROLIFIC_ACTIONS,
    }
    data_access_record(user=request.user, action=Action.STUDY_DASHBOARD, study_slug=slug,
                       detail=request.GET.urlencode())
    return render(request, "dashboards/study.html", context)


@require_POST
@staff_member_required
def unlock_primary(request: HttpRequest, slug: str) -> HttpResponse:
    """Show the pre-registered primary outcome's p-value before its target n (logged)."""
    study = get_object_or_404(Study, slug=slug)
    if primary_unlock(study=study, by=request.user):  # type: ignore[arg-type]
        messages.warning(request, "Primary outcome unlocked before its target n; this is logged.")
    return redirect(f"{redirect('dashboards:study', slug).url}#preregistration")


@require_GET
@never_cache
@staff_member_required
def monitor(request: HttpRequest, slug: str) -> JsonResponse:
    study = get_object_or_404(Study, slug=slug)
    return JsonResponse(study_monitor(study=study), encoder=DjangoJSONEncoder)


@require_GET
@staff_member_required
def conversation(request: HttpRequest, slug: str, public_id: UUID) -> HttpResponse:
    study = get_object_or_404(Study, slug=slug)
    try:
        convo = participation_conversation(study=study, public_id=str(public_id))
    except Participation.DoesNotExist as exc:
        raise Http404("No such participation in this study.") from exc
    context = {
        "study": study,
        "offline": study_overview(study=study).offline,
        "convo": convo,
        "versions_data": [
            {"number": v.number, "at": v.created_at.isoformat(), "text": v.text}
            for v in convo.versions
        ],
        "exclusion_reasons": exclusion_reasons(convo.participation.version.spec),
        "status_changes": convo.participation.status_changes.select_related("changed_by"),
    }
    data_access_record(user=request.user, action=Action.CONVERSATION, study_slug=slug,
                       participation=public_id)
    return render(request, "dashboards/conversation.html", context)


@require_POST
@staff_member_required
def decide(request: HttpRequest, slug: str, public_id: UUID) -> HttpResponse:
    """Exclude a participation (with a reason) or mark it returned, from its page."""
    participation = get_object_or_404(
        Participation.objects.select_related("version"), study__slug=slug, public_id=public_id
    )
    decision = request.POST.get("decision", "")
    note = request.POST.get("note", "").strip()
    try:
        if decision == "exclude":
            participation_exclude(
                participation=participation, reason=request.POST.get("reason", ""), note=note,
                by=request.user, via="dashboard",
            )
            action = Action.EXCLUDED
        elif decision == "return":
            participation_mark_returned(participation=participation, note=note, by=request.user,
                                        via="dashboard")
            action = Action.MARKED_RETURNED
        else:
            return HttpResponseBadRequest("decision must be exclude or return")
    except DecisionRefused as exc:
        messages.error(request, str(exc))
    else:
        data_access_record(user=request.user, action=action, study_slug=slug,
                           participation=public_id)
        messages.success(request, f"Participation {action.replace('_', ' ')}.")
    return redirect("dashboards:conversation", slug, public_id)


@lru_cache(maxsize=1)
def _plotly_bundle() -> tuple[bytes, bytes, str]:
    """plotly.min.js, gzipped once per process (4.8 MB becomes about 1.4 MB), and its ETag."""
    path = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    body = path.read_bytes()
    digest = hashlib.sha256(body).hexdigest()[:16]
    return body, gzip.compress(body, compresslevel=9, mtime=0), digest


@require_GET
@staff_member_required
def plotly_js(request: HttpRequest) -> HttpResponse:
    """plotly.js exactly as the installed plotly package ships it (the machine has no CDN),
    compressed for every browser that accepts gzip."""
    body, gzipped, etag = _plotly_bundle()
    wants_gzip = "gzip" in request.headers.get("Accept-Encoding", "")
    # Each encoding is its own representation, with its own validator.
    tag = f'"{etag}-gzip"' if wants_gzip else f'"{etag}"'
    if request.headers.get("If-None-Match") == tag:
        response = HttpResponse(status=304)
    else:
        response = HttpResponse(gzipped if wants_gzip else body,
                                content_type="text/javascript; charset=utf-8")
        if wants_gzip:
            response["Content-Encoding"] = "gzip"
    patch_vary_headers(response, ["Accept-Encoding"])
    response["ETag"] = tag
    response["Cache-Control"] = "private, max-age=86400"
    return response
