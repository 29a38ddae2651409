"""What a participant typed on a form that could no longer take it (the participation timed out
while they wrote): kept in their session, shown back by the outcome page, and never stored."""

from __future__ import annotations

from django import forms
from django.http import HttpRequest

from studyapp.participants.access import kept_text_key


def kept_answers_keep(request: HttpRequest, *, slug: str, form: forms.Form) -> None:
    """Keep the form's non-empty text answers, each with its question."""
    kept = [
        {"label": str(field.label), "text": text}
        for name, field in form.fields.items()
        if isinstance(field.widget, forms.Textarea)
        and (text := str(form.data.get(name, ""))[: field.max_length or None]).strip()
    ]
    if kept:
        request.session[kept_text_key(slug)] = kept


def kept_answers(request: HttpRequest, *, slug: str) -> list[dict[str, str]]:
    return list(request.session.get(kept_text_key(slug)) or [])
