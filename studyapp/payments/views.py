"""The dashboard's Prolific buttons (staff only): each queues a run that a worker carries out."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse
from django.views.decorators.http import require_POST

from studyapp.payments.runs import UnknownAction, prolific_run_request
from studyapp.studies.models import Study


@require_POST
@staff_member_required
def prolific_action(request: HttpRequest, slug: str, action: str) -> HttpResponse:
    study = get_object_or_404(Study, slug=slug)
    try:
        prolific_run_request(study=study, action=action, by=request.user)
    except UnknownAction:
        raise Http404("No such Prolific action.") from None
    messages.info(request, f"Prolific {action} queued: its status is in the Prolific panel.")
    return redirect(reverse("dashboards:study", args=[slug]) + "#prolific")
