"""Prolific calls requested from the dashboard and carried out by a worker.

The request records a ProlificRun (queued) and enqueues it once the row is committed; the
worker claims it (running), talks to Prolific and leaves the outcome (done or failed, with a
message) for the panel. A run that finished is never run again when its message is delivered
twice; one left running by a lost worker is run again, which is safe: an import and a review
repeat harmlessly, and paying goes through the bonus ledger, which pays each batch once.
"""

from __future__ import annotations

from collections.abc import Callable

from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser
from django.db import transaction
from django.utils import timezone

from studyapp.payments.models import ProlificRun, RunState
from studyapp.payments.prolific import ProlificClient, ProlificError, prolific_client
from studyapp.payments.prolific_sync import (
    ProlificSyncError,
    prolific_batches_recheck,
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
                 "sent again; re-check them later.")
    if report.failed:
        text += " Failed: " + "; ".join(report.failed)
    return text


def _recheck(study: Study, client: ProlificClient) -> str:
    report = prolific_batches_recheck(study=study, client=client)
    return (f"Re-checked unconfirmed bonus batches: {len(report.paid)} paid, "
            f"{len(report.released)} not paid (pay again to send them), "
            f"{len(report.unconfirmed)} still unconfirmed.")


ACTIONS: dict[str, Callable[[Study, ProlificClient], str]] = {
    "import": _import, "review": _review, "pay": _pay, "recheck": _recheck,
}


class UnknownAction(ValueError):
    pass


def prolific_run_request(
    *, study: Study, action: str, by: AbstractBaseUser | AnonymousUser | None
) -> ProlificRun:
    """Record a queued run of ``action`` and hand it to a worker once committed."""
    from studyapp.payments.tasks import prolific_run_task

    if action not in ACTIONS:
        raise UnknownAction(action)
    with transaction.atomic():
        run = ProlificRun.objects.create(
            study=study, action=action,
            requested_by=by if by is not None and by.is_authenticated else None,
        )
        transaction.on_commit(lambda: prolific_run_task.delay(run.pk))
    return run


def prolific_run_execute(*, run_id: int) -> ProlificRun | None:
    """Carry out a queued (or abandoned running) run; None when it already finished."""
    claimed = ProlificRun.objects.filter(
        pk=run_id, state__in=[RunState.QUEUED, RunState.RUNNING]
    ).update(state=RunState.RUNNING, started_at=timezone.now())
    if not claimed:
        return None
    run = ProlificRun.objects.select_related("study").get(pk=run_id)
    try:
        with prolific_client() as client:
            message = ACTIONS[run.action](run.study, client)
    except (ProlificError, ProlificSyncError) as exc:
        state, message = RunState.FAILED, f"Prolific {run.action} failed: {exc}"
    except Exception as exc:
        _finish(run, RunState.FAILED, f"Prolific {run.action} failed: {type(exc).__name__}")
        raise
    else:
        state = RunState.DONE
    _finish(run, state, message)
    return run


def _finish(run: ProlificRun, state: str, message: str) -> None:
    run.state, run.message, run.finished_at = state, message, timezone.now()
    run.save(update_fields=["state", "message", "finished_at"])
