"""A loopback server that behaves like Prolific's researcher API, for the parts this app uses.

It keeps submissions, applies approve/reject transitions, sets up bulk bonuses and pays them;
paying is not idempotent (a second pay of the same id pays again), as Prolific documents.
``hang_next_pay`` makes the next pay call be carried out and then left unanswered, as when
the connection drops after Prolific accepted it; ``pay_visible_later`` keeps the paid bonuses
off the submissions until ``publish_payments()`` (Prolific pays "in the following minutes").
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

TOKEN = "test-token"
PAGE_SIZE = 2


class FakeProlific:
    def __init__(self) -> None:
        self.submissions: dict[str, dict[str, Any]] = {}
        self.setups: dict[str, dict[str, Any]] = {}
        self.pay_calls: Counter[str] = Counter()
        self.transitions: list[tuple[str, str, dict[str, Any]]] = []
        self.hang_next_pay = False
        self.pay_visible_later = False
        self._pending: list[tuple[str, int]] = []
        self._release = threading.Event()
        self._lock = threading.Lock()
        self.url = ""

    def add_submission(self, participant_id: str, status: str) -> str:
        sid = uuid.uuid4().hex[:24]
        self.submissions[sid] = {"id": sid, "participant_id": participant_id,
                                 "status": status, "bonus_payments": []}
        return sid

    def paid_cents(self, participant_id: str) -> int:
        return sum(sum(s["bonus_payments"]) for s in self.submissions.values()
                   if s["participant_id"] == participant_id)

    def publish_payments(self) -> None:
        with self._lock:
            for pid, cents in self._pending:
                self._credit(pid, cents)
            self._pending.clear()

    def _credit(self, pid: str, cents: int) -> None:
        submission = next(s for s in self.submissions.values() if s["participant_id"] == pid)
        submission["bonus_payments"].append(cents)

    # --- request handling (runs on the server's threads) ---
    def handle(self, method: str, path: str, body: dict[str, Any]) -> tuple[int, Any]:
        with self._lock:
            if m := re.fullmatch(r"/api/v1/studies/([\w-]+)/submissions/", path.split("?")[0]):
                return self._list(m.group(1), path)
            if m := re.fullmatch(r"/api/v1/submissions/(\w+)/transition/", path):
                return self._transition(m.group(1), body)
            if path == "/api/v1/submissions/bonus-payments/" and method == "POST":
                return self._set_up(body)
            if m := re.fullmatch(r"/api/v1/bulk-bonus-payments/(\w+)/pay/", path):
                return self._pay(m.group(1))
        return 404, {"error": "not found"}

    def _list(self, study_id: str, path: str) -> tuple[int, Any]:
        page = int(re.search(r"page=(\d+)", path).group(1)) if "page=" in path else 1
        rows = list(self.submissions.values())
        chunk = rows[(page - 1) * PAGE_SIZE: page * PAGE_SIZE]
        more = page * PAGE_SIZE < len(rows)
        nxt = f"{self.url}/api/v1/studies/{study_id}/submissions/?page={page + 1}" if more else None
        return 200, {"results": chunk, "_links": {"next": {"href": nxt}},
                     "meta": {"count": len(rows)}}

    def _transition(self, sid: str, body: dict[str, Any]) -> tuple[int, Any]:
        submission = self.submissions.get(sid)
        if submission is None or submission["status"] != "AWAITING REVIEW":
            return 400, {"error": "cannot transition"}
        action = body["action"]
        if action == "REJECT" and (len(body.get("message", "")) < 100
                                   or not body.get("rejection_category")):
            return 400, {"error": "a rejection needs a message of 100 characters and a category"}
        submission["status"] = {"APPROVE": "APPROVED", "REJECT": "REJECTED"}[action]
        self.transitions.append((sid, action, body))
        return 200, submission

    def _set_up(self, body: dict[str, Any]) -> tuple[int, Any]:
        rows = []
        for line in body["csv_bonuses"].strip().splitlines():
            pid, amount = line.split(",")
            rows.append((pid, int(Decimal(amount) * 100)))
        payment_id = uuid.uuid4().hex[:24]
        self.setups[payment_id] = {"study_id": body["study_id"], "rows": rows}
        return 201, {"id": payment_id, "study": body["study_id"],
                     "amount": sum(c for _, c in rows)}

    def _pay(self, payment_id: str) -> tuple[int, Any]:
        if payment_id not in self.setups:
            return 404, {"error": "no such bulk bonus"}
        self.pay_calls[payment_id] += 1
        for pid, cents in self.setups[payment_id]["rows"]:
            if self.pay_visible_later:
                self._pending.append((pid, cents))
            else:
                self._credit(pid, cents)
        if self.hang_next_pay:
            self.hang_next_pay = False
            return -1, None  # carried out; the answer never comes
        return 202, {}

    @contextlib.contextmanager
    def running(self) -> Iterator[FakeProlific]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                if self.headers.get("Authorization") != f"Token {TOKEN}":
                    self._send(401, {"error": "bad token"})
                    return
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                status, payload = fake.handle(self.command, self.path, body)
                if status == -1:
                    fake._release.wait(10)
                    return
                self._send(status, payload)

            def _send(self, status: int, payload: Any) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = _serve

            def log_message(self, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        self.url = f"http://127.0.0.1:{server.server_address[1]}"
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._release.set()
            server.shutdown()
            server.server_close()
