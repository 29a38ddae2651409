"""studyapp/realtime/outage.py: Redis away is one WARNING per outage, other errors are not it."""

from __future__ import annotations

import logging

from redis.exceptions import ConnectionError as RedisConnectionError

from studyapp.realtime import outage
from studyapp.realtime.outage import Outage, redis_unavailable

log = logging.getLogger("tests.outage")


def _levels(caplog) -> list[str]:
    return [r.levelname for r in caplog.records if r.name == log.name]


def test_an_outage_is_one_warning_then_one_line_when_redis_is_back(caplog):
    caplog.set_level(logging.DEBUG, logger=log.name)
    component = Outage(log, "replies")
    component.ok()  # nothing to say while Redis is up
    for _ in range(50):
        component.failed(ConnectionError("cannot use Redis"))
    component.ok()
    component.failed(RedisConnectionError("Error 111"))  # the next outage is said again
    assert _levels(caplog) == ["WARNING", *["DEBUG"] * 49, "INFO", "WARNING"]
    assert all(r.exc_info is None for r in caplog.records)


def test_a_long_outage_is_named_again_now_and_then(caplog, monkeypatch):
    caplog.set_level(logging.INFO, logger=log.name)
    component = Outage(log, "replies")
    component.failed(ConnectionError("down"))
    monkeypatch.setattr(outage, "REPEAT_S", 0.0)
    component.failed(ConnectionError("still down"))
    assert _levels(caplog) == ["WARNING", "WARNING"]


def test_only_connection_failures_and_timeouts_count_as_redis_away():
    assert redis_unavailable(ConnectionRefusedError())
    assert redis_unavailable(RedisConnectionError())
    assert redis_unavailable(TimeoutError())
    assert not redis_unavailable(ValueError("a bug"))
    assert not redis_unavailable(KeyError("a bug"))
