"""The dashboard's export panel: start a job, poll its progress, download the archive.

Staff only, like every dashboard page.
"""

from __future__ import annotations

import asyncio
import mimetypes
from collections.abc import AsyncIterator
from pathlib import Path

from django.conf import settings
from django.contrib.admin.views.decorators import staff_member_required
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    JsonResponse,
    StreamingHttpResponse,
)
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse
from django.utils.http import content_disposition_header, url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from studyapp.dashboards.filters import ParticipationFilter
from studyapp.exports.models import ExportJob, JobStatus
from studyapp.exports.scope import ExportError
from studyapp.exports.selectors import export_job_json, export_jobs_recent
from studyapp.exports.services import export_job_cancel, export_job_create, export_job_retry
from studyapp.participants.audit import Action, data_access_record
from studyapp.studies.models import Study

_OPTION_KEYS = (
    "kto_desirable", "kto_undesirable", "window", "w_rating", "w_document", "w_cost",
    "token_lambda", "document_source", "test_fraction",
)  # fmt: skip


def _wants_json(request: HttpRequest) -> bool:
    return "application/json" in request.headers.get("Accept", "")


@require_POST
@staff_member_required
def start(request: HttpRequest, slug: str) -> HttpResponse:
    study = get_object_or_404(Study, slug=slug)
    try:
        population = ParticipationFilter.from_params(request.POST)
        job = export_job_create(
            study=study,
            kind=request.POST.get("kind", ""),
            fmt=request.POST.get("format", ""),
            participation_filter=population,
            options={k: request.POST[k] for k in _OPTION_KEYS if request.POST.get(k)},
            requested_by=request.user,
        )
    except (ValueError, ExportError) as exc:
        return JsonResponse({"error": str(exc)}, status=400)
    data_access_record(user=request.user, action=Action.EXPORT_STARTED, study_slug=slug,
                       detail=f"job {job.pk}: {job.kind} {job.format} {job.params['filter']}")
    if _wants_json(request):
        job.refresh_from_db()  # an eager run may already have finished it
        return JsonResponse({"job": export_job_json(job)}, status=202)
    target = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        target = reverse("exports:status", args=[slug])
    return redirect(target)


@require_GET
@never_cache
@staff_member_required
def status(request: HttpRequest, slug: str) -> JsonResponse:
    study = get_object_or_404(Study, slug=slug)
    return JsonResponse({"study": study.slug, "jobs": export_jobs_recent(study=study)})


@require_GET
@staff_member_required
def download(request: HttpRequest, slug: str, job_id: int) -> StreamingHttpResponse:
    job = get_object_or_404(ExportJob, pk=job_id, study__slug=slug, status=JobStatus.SUCCEEDED)
    path = Path(job.path).resolve()
    # The path comes from the database; serve nothing outside the export directory.
    if not path.is_relative_to(Path(settings.EXPORT_DIR).resolve()) or not path.is_file():
        raise Http404("This export's file is gone.")
    data_access_record(user=request.user, action=Action.EXPORT_DOWNLOADED, study_slug=slug,
                       detail=f"job {job.pk}: {path.name}")
    content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    response = StreamingHttpResponse(file_chunks(path), content_type=content_type)
    response["Content-Length"] = str(path.stat().st_size)
    response["Content-Disposition"] = content_disposition_header(True, path.name)
    return response


@require_POST
@staff_member_required
def retry(request: HttpRequest, slug: str, job_id: int) -> JsonResponse:
    """Queue a stuck job again (queued with a lost message, failed, cancelled, silent)."""
    job = get_object_or_404(ExportJob.objects.select_related("study"), pk=job_id,
                            study__slug=slug)
    return _changed(job, export_job_retry(job=job), "only a stuck job can be retried")


@require_POST
@staff_member_required
def cancel(request: HttpRequest, slug: str, job_id: int) -> JsonResponse:
    job = get_object_or_404(ExportJob.objects.select_related("study"), pk=job_id,
                            study__slug=slug)
    return _changed(job, export_job_cancel(job=job), "only a queued or running job can be "
                    "cancelled")


def _changed(job: ExportJob, changed: bool, refusal: str) -> JsonResponse:
    if not changed:
        return JsonResponse({"error": refusal}, status=409)
    job.refresh_from_db()  # an eager run may already have finished it
    return JsonResponse({"job": export_job_json(job)})


DOWNLOAD_CHUNK_BYTES = 256 * 1024


async def file_chunks(path: Path) -> AsyncIterator[bytes]:
    """The file, a chunk at a time. Asynchronous on purpose: under ASGI Django reads a
    synchronous iterator (a FileResponse's file) whole into memory before sending it."""
    handle = await asyncio.to_thread(path.open, "rb")
    try:
        while chunk := await asyncio.to_thread(handle.read, DOWNLOAD_CHUNK_BYTES):
            yield chunk
    finally:
        handle.close()
