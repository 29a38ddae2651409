"""Researchers' dashboards (staff only): parse the request, call one selector, render."""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path
from uuid import UUID

import plotly
from django.contrib.admin.views.decorators import staff_member_required
from django.core.serializers.json import DjangoJSONEncoder
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBadRequest, JsonResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

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
from studyapp.participants.models import Participation
from studyapp.payments.selectors import prolific_panel
from studyapp.studies.models import Study

PROLIFIC_ACTIONS = [("import", "Import submissions"), ("review", "Approve / reject"),
                    ("pay", "Pay bonuses")]


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
    study = get_object_or_404(Study, slug=slug)
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
    return render(request, "dashboards/study.html", context)


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
    }
    return render(request, "dashboards/conversation.html", context)


@lru_cache(maxsize=1)
def _plotly_bundle() -> tuple[bytes, str]:
    path = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    body = path.read_bytes()
    return body, hashlib.sha256(body).hexdigest()[:16]


@require_GET
@staff_member_required
def plotly_js(request: HttpRequest) -> HttpResponse:
    """plotly.js exactly as the installed plotly package ships it (the machine has no CDN)."""
    body, etag = _plotly_bundle()
    if request.headers.get("If-None-Match") == f'"{etag}"':
        return HttpResponse(status=304)
    response = HttpResponse(body, content_type="text/javascript; charset=utf-8")
    response["ETag"] = f'"{etag}"'
    response["Cache-Control"] = "private, max-age=86400"
    return response
