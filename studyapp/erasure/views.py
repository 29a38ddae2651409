"""The dashboard's erase button (staff only): confirm, erase, say what happened."""

from __future__ import annotations

from uuid import UUID

from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.views.decorators.http import require_POST

from studyapp.erasure.services import participation_erase
from studyapp.participants.audit import Action, data_access_record
from studyapp.participants.models import Participation


@require_POST
@staff_member_required
def erase(request: HttpRequest, slug: str, public_id: UUID) -> HttpResponse:
    participation = get_object_or_404(
        Participation.objects.select_related("study"), study__slug=slug, public_id=public_id
    )
    if request.POST.get("confirm", "").strip().lower() != "erase":
        messages.error(request, 'Nothing erased: type "erase" to confirm.')
        return redirect("dashboards:conversation", slug, public_id)
    record = participation_erase(participation=participation, by=request.user, via="dashboard")
    data_access_record(user=request.user, action=Action.ERASED, study_slug=slug,
                       participation=public_id, detail=f"erasure record {record.pk}")
    removed = record.export_jobs_removed
    messages.success(
        request,
        f"The participant's data was erased (erasure record {record.pk}); "
        f"{removed} export{'s' if removed != 1 else ''} deleted and queued again.",
    )
    return redirect("dashboards:study", slug)
