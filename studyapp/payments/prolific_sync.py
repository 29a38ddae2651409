"""Writes that go through Prolific's API: import submissions, review them, pay bonuses.

Bonuses are paid from the ledger (BonusLedgerEntry) in batches, exactly like the CSV route, so
an entry leaves once whichever route takes it. Prolific's pay call is not idempotent, so a
batch moves NEW -> SET_UP -> PAY_SENT -> PAID with each state committed before the next call,
and pay is sent only by whoever moves the batch from SET_UP to PAY_SENT: never twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q, Sum
from django.utils import timezone

from studyapp.participants.assignment import assignment_release
from studyapp.participants.models import (
    TERMINAL_STATUSES,
    Outcome,
    Participation,
    Platform,
    Status,
)
from studyapp.payments.models import (
    BonusBatch,
    BonusLedgerEntry,
    PayState,
    ProlificStudy,
    ProlificSubmission,
)
from studyapp.payments.prolific import ProlificClient, ProlificError, ProlificTimeout, Submission
from studyapp.payments.selectors import bonus_batch_rows
from studyapp.payments.services import bonus_batch_create
from studyapp.studies.models import Study

AWAITING_REVIEW = "AWAITING REVIEW"
# Prolific's end of a submission that ended early, as the participation flow records it.
_FLOW_STATUS = {
    "RETURNED": (Status.RETURNED, Outcome.RETURNED, "returned_at"),
    "TIMED-OUT": (Status.TIMED_OUT, Outcome.TIMED_OUT, "timed_out_at"),
}
# The review the app's recorded outcome calls for; other outcomes are not reviewed here.
REVIEW_FOR_OUTCOME: dict[str, str] = {
    Outcome.COMPLETED: "APPROVE", Outcome.FAILED_ATTENTION: "REJECT",
}
REJECTION_CATEGORY = "FAILED_CHECK"
REJECTION_MESSAGE = (
    "Thank you for taking part. Your submission did not pass the attention check that the "
    "study information described, so we cannot approve it. Please message us if you think "
    "this is a mistake."
)


class ProlificSyncError(ValueError):
    """The study or participation cannot take this Prolific action (the message says why)."""


def _link(study: Study) -> ProlificStudy:
    link = ProlificStudy.objects.filter(study=study).first()
    if link is None:
        raise ProlificSyncError(f"study {study.slug} has no Prolific study id (set it in admin)")
    return link


@dataclass
class ImportReport:
    matched: int = 0
    unmatched: int = 0  # submissions of people who never reached the app
    moved: dict[str, int] = field(default_factory=dict)  # flow status -> participations moved


def prolific_submissions_import(*, study: Study, client: ProlificClient) -> ImportReport:
    """Store every submission's Prolific status beside its participation; move returned and
    timed-out ones still open in the app to that end of the flow."""
    link = _link(study)
    report = ImportReport()
    now = timezone.now()
    submissions = list(client.submissions(link.prolific_study_id))
    by_pid = {
        p.external_id: p for p in Participation.objects.filter(
            study=study, platform=Platform.PROLIFIC,
            external_id__in=[s.participant_id for s in submissions],
        )
    }
    for submission in submissions:
        participation = by_pid.get(submission.participant_id)
        if participation is None:
            report.unmatched += 1
            continue
        report.matched += 1
        with transaction.atomic():
            _submission_store(participation, submission, now)
            moved = _flow_move(participation, submission.status, now)
        if moved:
            report.moved[moved] = report.moved.get(moved, 0) + 1
    ProlificStudy.objects.filter(pk=link.pk).update(synced_at=now)
    return report


def _submission_store(
    participation: Participation, submission: Submission, now: datetime
) -> None:
    ProlificSubmission.objects.update_or_create(
        participation=participation,
        defaults={"submission_id": submission.id, "status": submission.status,
                  "bonus_cents": submission.bonus_cents, "synced_at": now},
    )


def _flow_move(participation: Participation, prolific_status: str, now: datetime) -> str:
    target = _FLOW_STATUS.get(prolific_status)
    if target is None:
        return ""
    status, outcome, stamp = target
    # Only a participation still open in the app moves: a completed one keeps its data.
    moved = (
        Participation.objects.filter(pk=participation.pk)
        .exclude(status__in=TERMINAL_STATUSES)
        .update(status=status, outcome=outcome, **{stamp: now})
    )
    if not moved:
        return ""
    # Its permuted-block place goes to the next arrival, as for a time-out in the app.
    assignment_release(participation=participation)
    return str(status)


def prolific_submission_review(
    *, participation: Participation, client: ProlificClient
) -> str:
    """Approve or reject ``participation``'s submission as its recorded outcome says; returns
    the action. A submission already reviewed from here is not sent again."""
    submission = ProlificSubmission.objects.filter(participation=participation).first()
    if submission is None:
        raise ProlificSyncError("no Prolific submission imported for this participation")
    if submission.review_action:
        return submission.review_action
    action = REVIEW_FOR_OUTCOME.get(participation.outcome)
    if action is None:
        raise ProlificSyncError(f"outcome {participation.outcome or 'none'!r} is not reviewed")
    if submission.status != AWAITING_REVIEW:
        raise ProlificSyncError(f"the submission is {submission.status}, not awaiting review")
    client.transition(submission.submission_id, action=action, message=REJECTION_MESSAGE,
                      rejection_category=REJECTION_CATEGORY)
    submission.review_action = action
    submission.reviewed_at = timezone.now()
    submission.status = "APPROVED" if action == "APPROVE" else "REJECTED"
    submission.save(update_fields=["review_action", "reviewed_at", "status"])
    return action


def prolific_submissions_review(*, study: Study, client: ProlificClient) -> dict[str, int]:
    """Review every submission awaiting review whose participation has a reviewable outcome."""
    done: dict[str, int] = {}
    waiting = Participation.objects.filter(
        study=study, prolific_submission__status=AWAITING_REVIEW,
        prolific_submission__review_action="", outcome__in=list(REVIEW_FOR_OUTCOME),
    ).order_by("pk")
    for participation in waiting:
        action = prolific_submission_review(participation=participation, client=client)
        done[action] = done.get(action, 0) + 1
    return done


@dataclass
class PayReport:
    paid: list[int] = field(default_factory=list)  # batch ids paid (or confirmed paid)
    unconfirmed: list[int] = field(default_factory=list)  # pay sent, not yet seen on Prolific
    failed: list[str] = field(default_factory=list)


def prolific_bonuses_pay(*, study: Study, client: ProlificClient) -> PayReport:
    """Pay every unpaid Prolific bonus of ``study`` through the bulk-bonus API.

    Must run outside a transaction: each state is committed before the call that follows it.
    A pay call without an answer is never repeated; its batch is confirmed later from the
    bonuses Prolific reports on the submissions.
    """
    if connection.in_atomic_block:
        raise ProlificSyncError("pay bonuses outside a transaction: each step must commit")
    link = _link(study)
    report = PayReport()
    _confirm_sent(study, client, link, report)
    bonus_batch_create(study=study, pay_state=PayState.NEW)
    for batch in BonusBatch.objects.filter(study=study, pay_state=PayState.NEW).order_by("pk"):
        try:
            payment_id = client.bonus_set_up(link.prolific_study_id, bonus_batch_rows(batch=batch))
        except ProlificError as exc:
            report.failed.append(f"batch {batch.pk}: set-up failed: {exc}")
            continue
        BonusBatch.objects.filter(pk=batch.pk, pay_state=PayState.NEW).update(
            pay_state=PayState.SET_UP, prolific_payment_id=payment_id)
    for batch in BonusBatch.objects.filter(study=study, pay_state=PayState.SET_UP).order_by("pk"):
        _pay_once(batch, client, link, report)
    return report


def _pay_once(batch: BonusBatch, client: ProlificClient, link: ProlificStudy,
              report: PayReport) -> None:
    claimed = BonusBatch.objects.filter(pk=batch.pk, pay_state=PayState.SET_UP).update(
        pay_state=PayState.PAY_SENT, pay_sent_at=timezone.now())
    if not claimed:
        return  # another worker sent it
    try:
        client.bonus_pay(batch.prolific_payment_id)
    except ProlificTimeout as exc:
        BonusBatch.objects.filter(pk=batch.pk).update(pay_error=str(exc))
        _confirm_sent(batch.study, client, link, report, only=[batch.pk])
        return
    except ProlificError as exc:
        if exc.status is not None and 400 <= exc.status < 500:
            # Prolific read the call and refused it: nothing was paid, so it may be sent again.
            BonusBatch.objects.filter(pk=batch.pk).update(
                pay_state=PayState.SET_UP, pay_sent_at=None, pay_error=str(exc))
        else:
            BonusBatch.objects.filter(pk=batch.pk).update(pay_error=str(exc))
            report.unconfirmed.append(batch.pk)
        report.failed.append(f"batch {batch.pk}: pay failed: {exc}")
        return
    BonusBatch.objects.filter(pk=batch.pk).update(pay_state=PayState.PAID, paid_at=timezone.now())
    report.paid.append(batch.pk)


def _confirm_sent(study: Study, client: ProlificClient, link: ProlificStudy, report: PayReport,
                  only: list[int] | None = None) -> None:
    """Mark PAID each sent batch whose bonuses Prolific shows on every submission it pays."""
    sent = BonusBatch.objects.filter(study=study, pay_state=PayState.PAY_SENT).order_by("pk")
    if only is not None:
        sent = sent.filter(pk__in=only)
    if not sent:
        return
    try:
        shown = {s.participant_id: s.bonus_cents
                 for s in client.submissions(link.prolific_study_id)}
    except ProlificError as exc:
        report.unconfirmed += [b.pk for b in sent if b.pk not in report.unconfirmed]
        report.failed.append(f"could not check sent bonuses: {exc}")
        return
    for batch in sent:
        if all(shown.get(pid, 0) >= _owed_cents(study, pid, batch) for pid, _ in
               bonus_batch_rows(batch=batch)):
            BonusBatch.objects.filter(pk=batch.pk).update(
                pay_state=PayState.PAID, paid_at=timezone.now())
            report.paid.append(batch.pk)
        else:
            report.unconfirmed.append(batch.pk)


def _owed_cents(study: Study, pid: str, batch: BonusBatch) -> int:
    """What Prolific should show as paid to ``pid`` once ``batch`` is: it and every batch
    already paid (by the API, or uploaded as a CSV)."""
    total = BonusLedgerEntry.objects.filter(
        participation__study=study, participation__external_id=pid,
        participation__platform=Platform.PROLIFIC,
    ).filter(
        Q(paid_batch=batch) | Q(paid_batch__pay_state__in=[PayState.PAID, PayState.CSV])
    ).aggregate(total=Sum("amount"))["total"] or Decimal(0)
    return int(total * 100)


@dataclass
class RecheckReport:
    paid: list[int] = field(default_factory=list)  # Prolific shows every bonus: marked paid
    released: list[int] = field(default_factory=list)  # Prolific shows none, long after: unpaid
    unconfirmed: list[int] = field(default_factory=list)  # too early, or only some shown


def prolific_batches_recheck(*, study: Study, client: ProlificClient) -> RecheckReport:
    """Read back the bonuses of every batch whose pay call went unanswered.

    A batch whose bonuses Prolific shows on every submission is marked paid. One of which it
    shows none, PROLIFIC_PAY_SETTLE_S after the call, was not paid: it goes back to NEW
    (its bulk id dropped), so the next pay sets it up afresh and pays it once. Anything else
    (too early, or only part shown) stays sent and is never paid again from here.
    """
    link = _link(study)
    report = RecheckReport()
    sent = list(BonusBatch.objects.filter(study=study, pay_state=PayState.PAY_SENT)
                .order_by("pk"))
    if not sent:
        return report
    shown = {s.participant_id: s.bonus_cents for s in client.submissions(link.prolific_study_id)}
    settled_before = timezone.now() - timedelta(seconds=settings.PROLIFIC_PAY_SETTLE_S)
    for batch in sent:
        rows = bonus_batch_rows(batch=batch)
        owed = {pid: _owed_cents(study, pid, batch) for pid, _ in rows}
        before = {pid: owed[pid] - int(amount * 100) for pid, amount in rows}
        if all(shown.get(pid, 0) >= owed[pid] for pid in owed):
            BonusBatch.objects.filter(pk=batch.pk, pay_state=PayState.PAY_SENT).update(
                pay_state=PayState.PAID, paid_at=timezone.now())
            report.paid.append(batch.pk)
        elif (batch.pay_sent_at is not None and batch.pay_sent_at <= settled_before
              and all(shown.get(pid, 0) <= before[pid] for pid in before)):
            released = BonusBatch.objects.filter(
                pk=batch.pk, pay_state=PayState.PAY_SENT
            ).update(
                pay_state=PayState.NEW, prolific_payment_id="", pay_sent_at=None,
                pay_error=(f"Not paid: Prolific showed none of bulk bonus "
                           f"{batch.prolific_payment_id} after {batch.pay_sent_at:%Y-%m-%d %H:%M}"
                           f" UTC; released to be set up and paid again."),
            )
            if released:
                report.released.append(batch.pk)
        else:
            report.unconfirmed.append(batch.pk)
    return report
