"""The dashboard's Prolific buttons (staff only): import, review and pay through the API."""

from __future__ import annotations

from collections.abc import Callable

from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse
from django.views.decorators.http import require_POST

from studyapp.payments.prolific import ProlificClient, ProlificError, prolific_client
from studyapp.payments.prolific_sync import (
    ProlificSyncError,
    prolific_bonuses_pay,
    prolific_submissions_import,
    prolific_submissions_review,
)
from studyapp.studies.models import Study


def _import(study: Study, client: ProlificClient) -> str:
    report = prolific_submissions_import(study=study, client=client)
    moved = ", ".join(f"{n} {status}" for status, n in sorted(report.moved.items())) or "none"
    return (f"Imported {report.matched} submissions ({report.unmatched} without a "
            f"participation here); moved in the flow: {moved}.")


def _review(study: Study, client: ProlificClient) -> str:
    done = prolific_submissions_review(study=study, client=client)
    return f"Sent {done.get('APPROVE', 0)} approvals and {done.get('REJECT', 0)} rejections."


def _pay(study: Study, client: ProlificClient) -> str:
    report = prolific_bonuses_pay(study=study, client=client)
    text = f"Paid {len(report.paid)} bonus batches."
    if report.unconfirmed:
        text += (f" {len(report.unconfirmed)} sent without confirmation yet: they are never "
                 "sent again; pay again later to check them.")
    if report.failed:
        text += " Failed: " + "; ".join(report.failed)
    return text


ACTIONS: dict[str, Callable[[Study, ProlificClient], str]] = {
    "import": _import, "review": _review, "pay": _pay,
}


@require_POST
@staff_member_required
def prolific_action(request: HttpRequest, slug: str, action: str) -> HttpResponse:
    study = get_object_or_404(Study, slug=slug)
    run = ACTIONS.get(action)
    if run is None:
        raise Http404("No such Prolific action.")
    try:
        with prolific_client() as client:
            messages.success(request, run(study, client))
    except (ProlificError, ProlificSyncError) as exc:
        messages.error(request, f"Prolific {action} failed: {exc}")
    return redirect(reverse("dashboards:study", args=[slug]) + "#prolific")
