"""The co-writing page: chat beside the document. Everything live goes over the socket."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET

from studyapp.participants.access import participation_for_step
from studyapp.participants.models import Status
from studyapp.participants.tokens import participation_token
from studyapp.studies.spec import document_type
from studyapp.writing.selectors import model_sees_notice, page_settings


@require_GET
def page(request: HttpRequest, slug: str) -> HttpResponse:
    participation, elsewhere = participation_for_step(request, slug, Status.WRITING)
    if elsewhere is not None:
        return elsewhere
    spec = participation.version.spec
    doc_type = document_type(spec, participation.document_type) or {}
    config = {
        "ws_path": f"/ws/study/{slug}/",
        "token": participation_token(public_id=str(participation.public_id)),
        "finish_url": reverse("feedback:finish", args=[slug]),
        "max_message_chars": settings.MAX_MESSAGE_CHARS,
        "max_document_chars": settings.MAX_DOCUMENT_CHARS,
        **page_settings(spec=spec),
    }
    scale = config["rating_scale"]
    rating_options = [
        {"value": v, "anchor": scale["anchors"].get(str(v), "")}
        for v in range(scale["min"], scale["max"] + 1)
    ]
    context = {
        "rating_options": rating_options,
        "study_title": spec.get("title", ""),
        "document_type_label": doc_type.get("label", participation.document_type),
        "topic": participation.topic,
        "instructions": spec["writing"].get("instructions", ""),
        "model_sees": model_sees_notice(spec=spec),
        "config": config,
        "slug": slug,
    }
    return render(request, "writing/page.html", context)
