"""The base of the services' "the rules refuse this request" exceptions."""

from __future__ import annotations

from typing import Any


class Refused(Exception):
    """``code`` is the protocol's error code; ``message`` is for people.

    Pickled with both, so that it reaches the socket intact from a database worker process
    (studyapp/realtime/dbcalls.py).
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.code, self.message))
