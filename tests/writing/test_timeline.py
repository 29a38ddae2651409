"""The relay's optional timeline (bench/relay.py --timeline): off by default, JSON lines when on."""

from __future__ import annotations

import json
import time

from studyapp.realtime import timeline


def _wait_for_lines(path, count: int, limit_s: float = 5.0) -> list:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if path.exists() and len(lines := path.read_text().splitlines()) >= count:
            return [json.loads(line) for line in lines]
        time.sleep(0.02)
    raise AssertionError(f"fewer than {count} lines in {path}")


def test_marks_are_dropped_when_off(monkeypatch):
    monkeypatch.setattr(timeline, "_path", "")
    before = len(timeline._kept)
    timeline.mark("send_received", "p1")
    assert len(timeline._kept) == before


def test_marks_are_written_in_order_with_one_clock(monkeypatch, tmp_path):
    path = tmp_path / "marks.jsonl"
    monkeypatch.setattr(timeline, "_path", str(path))
    monkeypatch.setattr(timeline, "FLUSH_S", 0.05)
    started = time.perf_counter()
    timeline.mark("send_received", "p1")
    timeline.mark("delta_sent", "p1")
    events = _wait_for_lines(path, 2)
    steps = [(step, key) for step, key, _ in events]
    assert steps == [("send_received", "p1"), ("delta_sent", "p1")]
    assert started <= events[0][2] <= events[1][2] <= time.perf_counter()
