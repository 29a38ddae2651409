"""The blinded rating page: a staff rater scores final documents one at a time, seeing only
the task and the text (no arm, no participant, no other score)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods

from studyapp.participants.audit import Action, data_access_record
from studyapp.scoring.raters import (
    RatingRefused,
    rater_rubric,
    rater_score_submit,
    rating_item,
)
from studyapp.studies.models import Study


@require_http_methods(["GET", "POST"])
@never_cache
@staff_member_required
def rate(request: HttpRequest, slug: str) -> HttpResponse:
    study = get_object_or_404(Study, slug=slug)
    if request.method == "POST":
        return _submit(request, study)
    rubric = rater_rubric(study=study)
    try:
        item = rating_item(study=study, user=request.user, rubric=rubric,
                           key=request.GET.get("doc") or None)
    except RatingRefused as exc:
        raise Http404(str(exc)) from exc
    if item is not None:
        data_access_record(user=request.user, action=Action.RATING, study_slug=slug,
                           participation=item.public_id)
    scale = list(range(rubric.low, rubric.high + 1))
    return render(request, "dashboards/rate.html",
                  {"study": study, "item": item, "rubric": rubric, "scale": scale})


def _submit(request: HttpRequest, study: Study) -> HttpResponse:
    key = request.POST.get("doc", "")
    try:
        score = int(request.POST.get("score", ""))
        rater_score_submit(study=study, user=request.user, key=key, score=score)
    except ValueError as exc:  # RatingRefused included
        message = str(exc) if isinstance(exc, RatingRefused) else "choose a score"
        messages.error(request, message)
        return redirect(f"{reverse('dashboards:rate', args=[study.slug])}?doc={key}")
    messages.success(request, "Score saved.")
    following = request.POST.get("next", "")
    url = reverse("dashboards:rate", args=[study.slug])
    return redirect(f"{url}?doc={following}" if following else url)
