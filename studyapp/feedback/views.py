"""End of the journey: leaving the chat, the final questions, the completion page."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from studyapp.feedback.forms import FinalSurveyForm
from studyapp.feedback.selectors import completion_code_for, prolific_completion_url
from studyapp.feedback.services import (
    FinishRefused,
    SurveyInvalid,
    final_survey_submit,
    writing_finish,
)
from studyapp.participants.access import (
    kept_text_key,
    participation_for_step,
    session_participation,
    step_url,
)
from studyapp.participants.kept import kept_answers, kept_answers_keep
from studyapp.participants.models import TERMINAL_STATUSES, Outcome, Platform, Status
from studyapp.participants.platforms import EntryLinkError, mturk_submit_base
from studyapp.participants.timeouts import timeout_reason


@require_POST
def finish(request: HttpRequest, slug: str) -> HttpResponse:
    participation = session_participation(request, slug)
    if participation.status != Status.WRITING:
        return redirect(step_url(participation))
    try:
        participation = writing_finish(participation=participation)
    except FinishRefused as exc:
        context = {
            "message": str(exc),
            "back_url": reverse("writing:page", args=[slug]),
            "spec": participation.version.spec,
        }
        return render(request, "feedback/finish_refused.html", context, status=409)
    return redirect(step_url(participation))


@require_http_methods(["GET", "POST"])
def final(request: HttpRequest, slug: str) -> HttpResponse:
    participation, elsewhere = participation_for_step(request, slug, Status.FINISHED)
    spec = participation.version.spec
    form = FinalSurveyForm(request.POST or None, spec=spec)
    if elsewhere:
        if request.method == "POST" and participation.status == Status.TIMED_OUT:
            kept_answers_keep(request, slug=slug, form=form)
        return elsewhere
    if request.method == "POST" and form.is_valid():
        try:
            participation = final_survey_submit(
                participation=participation, answers=form.cleaned_data
            )
            return redirect(step_url(participation))
        except SurveyInvalid as exc:
            form.add_error(None, str(exc))
    return render(request, "feedback/final.html", {"form": form, "spec": spec})


# Outcomes with nothing to submit: MTurk would pay (or make the requester reject) a worker who
# did not take part, so these workers are asked to return the HIT instead.
MTURK_RETURN_OUTCOMES = frozenset({Outcome.DECLINED, Outcome.TIMED_OUT, Outcome.RETURNED})
# Outcomes a Prolific participant may not expect: a short page says what happened before the
# redirect (a completer goes straight back).
PROLIFIC_EXPLAINED_OUTCOMES = frozenset(
    {Outcome.DECLINED, Outcome.FAILED_ATTENTION, Outcome.TIMED_OUT}
)
# How long that page waits before going on to Prolific by itself.
PROLIFIC_REDIRECT_SECONDS = 10


@require_GET
def done(request: HttpRequest, slug: str) -> HttpResponse:
    participation = session_participation(request, slug)
    if participation.status not in TERMINAL_STATUSES:
        return redirect(step_url(participation))
    code = completion_code_for(participation=participation)
    context = {
        "participation": participation,
        "code": code,
        "spec": participation.version.spec,
        "timeout_reason": timeout_reason(participation=participation),
        "kept_key": kept_text_key(slug),
        "kept_answers": kept_answers(request, slug=slug),
    }
    if participation.is_test:
        # A pilot's code would be a real one: someone who shares it could be paid for nothing.
        return render(request, "feedback/done.html", {**context, "code": "", "pilot": True})
    if (
        participation.outcome == Outcome.TECHNICAL_PROBLEM
        and participation.platform != Platform.MTURK
    ):
        # Not sent on at once: the participant should read why the study ended early.
        if participation.platform == Platform.PROLIFIC and code:
            context["platform_url"] = prolific_completion_url(code=code)
        return render(request, "feedback/done.html", context)
    if participation.platform == Platform.PROLIFIC and code:
        url = prolific_completion_url(code=code)
        if participation.outcome not in PROLIFIC_EXPLAINED_OUTCOMES:
            return redirect(url)
        context.update(prolific_url=url, redirect_seconds=PROLIFIC_REDIRECT_SECONDS)
        return render(request, "feedback/prolific_outcome.html", context)
    if participation.platform == Platform.MTURK:
        if participation.outcome in MTURK_RETURN_OUTCOMES:
            return render(request, "feedback/mturk_return.html", context)
        try:
            base = mturk_submit_base(participation.platform_data.get("turkSubmitTo", ""))
        except EntryLinkError:
            base = ""
        if base:
            context["submit_url"] = f"{base}/mturk/externalSubmit"
            context["assignment_id"] = participation.platform_data.get("assignmentId", "")
            return render(request, "feedback/mturk_submit.html", context)
    return render(request, "feedback/done.html", context)
