"""Redis being away, logged as what it is: an expected condition, not a fault.

While Redis restarts every call on the real-time path fails the same way, many times a second.
Each component that meets it keeps an :class:`Outage`: the first failure is one WARNING line
(no traceback), the ones after it DEBUG, and the first success after them one INFO line. Any
other exception is not an outage and stays an ERROR with its traceback, at its caller.
"""

from __future__ import annotations

import logging
import time

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

# A long outage is still named every so often, so the log shows it is not over.
REPEAT_S = 60.0


def redis_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` says Redis could not be reached or did not answer (the script pipe's
    ``ConnectionError``/``CallTimeout`` are ``OSError``s; redis-py has its own)."""
    return isinstance(exc, OSError | TimeoutError | RedisConnectionError | RedisTimeoutError)


class Outage:
    """Whether one component currently finds Redis away, and the log lines that says."""

    def __init__(self, log: logging.Logger, what: str) -> None:
        self.log = log
        self.what = what
        self.since: float | None = None
        self.warned_at = 0.0

    def failed(self, exc: BaseException) -> None:
        now = time.monotonic()
        if self.since is None or now - self.warned_at >= REPEAT_S:
            self.since = self.since if self.since is not None else now
            self.warned_at = now
            self.log.warning("%s: Redis unavailable (%s: %s)", self.what, type(exc).__name__, exc)
        else:
            self.log.debug("%s: Redis still unavailable (%s)", self.what, exc)

    def ok(self) -> None:
        if self.since is not None:
            down_s = time.monotonic() - self.since
            self.since = None
            self.log.info("%s: Redis available again after %.1f s", self.what, down_s)
