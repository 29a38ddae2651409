"""The study page's score button: queue the judges over every final document, report progress."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from studyapp.scoring.progress import study_scoring_progress, study_scoring_start
from studyapp.studies.models import Study


@require_POST
@staff_member_required
def score(request: HttpRequest, slug: str) -> HttpResponse:
    study = get_object_or_404(Study, slug=slug)
    if study_scoring_progress(study=study).judges == 0:
        messages.error(request, "This study has no judge: add one first (manage.py judge_add).")
    else:
        queued = study_scoring_start(study=study)
        messages.success(request, f"Scoring queued for {queued} documents.")
    return redirect(reverse("dashboards:study", args=[slug]) + "#scoring")


@require_GET
@never_cache
@staff_member_required
def progress(request: HttpRequest, slug: str) -> JsonResponse:
    study = get_object_or_404(Study, slug=slug)
    return JsonResponse(study_scoring_progress(study=study).as_json())
