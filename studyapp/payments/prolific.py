"""Prolific's researcher API, through httpx: the only place this project talks to Prolific.

Four calls: list a study's submissions, approve or reject one, set up a bulk bonus, pay it.
The token comes from ``PROLIFIC_API_TOKEN`` (or ``PROLIFIC_API_TOKEN_FILE``); without one the
lab pays by CSV (``manage.py bonus_csv``) as before.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx
from django.conf import settings


class ProlificError(Exception):
    """Prolific answered with an error (``status``), or could not be reached (None)."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class ProlificTimeout(ProlificError):
    """No answer in time: the request may or may not have been carried out."""


class ProlificNotConfigured(ProlificError):
    """No API token: this lab uses the CSV route."""


@dataclass(frozen=True)
class Submission:
    id: str
    participant_id: str
    status: str
    bonus_cents: int


def _submission(raw: dict[str, Any]) -> Submission:
    bonuses = raw.get("bonus_payments") or []
    return Submission(
        id=str(raw["id"]),
        participant_id=str(raw.get("participant_id") or raw.get("participant") or ""),
        status=str(raw.get("status") or ""),
        bonus_cents=round(sum(float(b) for b in bonuses)),
    )


class ProlificClient:
    def __init__(self, *, token: str, base_url: str, timeout: float = 30.0) -> None:
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"), timeout=timeout,
            headers={"Authorization": f"Token {token}", "Accept": "application/json"},
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ProlificClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, method: str, url: str, **kwargs: Any) -> Any:
        try:
            response = self._http.request(method, url, **kwargs)
        except httpx.TimeoutException as exc:
            raise ProlificTimeout(f"{method} {url}: no answer in time") from exc
        except httpx.HTTPError as exc:
            raise ProlificError(f"{method} {url}: {exc}") from exc
        if response.is_error:
            raise ProlificError(f"{method} {url}: {response.status_code} {response.text[:300]}",
                                status=response.status_code)
        return response.json() if response.content else {}

    def submissions(self, study_id: str) -> Iterator[Submission]:
        """Every submission of the study, following Prolific's pagination links."""
        url: str | None = f"/api/v1/studies/{study_id}/submissions/"
        while url:
            page = self._call("GET", url)
            yield from (_submission(raw) for raw in page.get("results", []))
            url = ((page.get("_links") or {}).get("next") or {}).get("href")

    def transition(self, submission_id: str, *, action: str, message: str = "",
                   rejection_category: str = "") -> None:
        body: dict[str, str] = {"action": action}
        if action == "REJECT":
            body |= {"message": message, "rejection_category": rejection_category}
        self._call("POST", f"/api/v1/submissions/{submission_id}/transition/", json=body)

    def bonus_set_up(self, study_id: str, rows: list[tuple[str, Decimal]]) -> str:
        """Create (not pay) a bulk bonus; returns its id. Harmless to repeat: nothing is paid."""
        csv = "\n".join(f"{pid},{amount:.2f}" for pid, amount in rows)
        created = self._call("POST", "/api/v1/submissions/bonus-payments/",
                             json={"study_id": study_id, "csv_bonuses": csv})
        return str(created["id"])

    def bonus_pay(self, payment_id: str) -> None:
        """Pay a bulk bonus. NOT idempotent on Prolific's side: call once per id, ever."""
        self._call("POST", f"/api/v1/bulk-bonus-payments/{payment_id}/pay/")


def prolific_client() -> ProlificClient:
    token = settings.PROLIFIC_API_TOKEN
    if not token:
        raise ProlificNotConfigured("PROLIFIC_API_TOKEN is not set: pay with manage.py bonus_csv")
    return ProlificClient(token=token, base_url=settings.PROLIFIC_API_URL,
                          timeout=settings.PROLIFIC_API_TIMEOUT)
