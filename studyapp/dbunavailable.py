"""Pages while PostgreSQL cannot be reached: a short page that says so, at once.

The connection timeouts (``DB_CONNECT_TIMEOUT`` in studyapp/settings.py) bound how long a
request waits for a connection; the error that ends the wait becomes a 503 with
``Retry-After``, which browsers and proxies understand as "try again soon", instead of a 500
that says the page is broken. The writing socket refuses its connect the same way
(docs/protocol.md §1).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse
from django.template.loader import render_to_string
from psycopg_pool import PoolTimeout

log = logging.getLogger(__name__)

# What the database layer raises when it cannot be reached (PoolTimeout is wrapped by Django
# as OperationalError; named too for calls made outside Django's wrapper).
UNAVAILABLE_ERRORS = (OperationalError, InterfaceError, PoolTimeout)
RETRY_AFTER_S = 30


def unavailable_page() -> HttpResponse:
    """The 503 page, rendered without the request: its context processors read the database."""
    response = HttpResponse(render_to_string("503.html"), status=503)
    response["Retry-After"] = str(RETRY_AFTER_S)
    return response


class DatabaseUnavailableMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not isinstance(exception, UNAVAILABLE_ERRORS):
            return None
        # One line, no traceback: the cause is outside this process and says so itself.
        log.warning(
            "%s %s answered 503, the database is unavailable: %s",
            request.method,
            request.path,
            type(exception).__name__,
        )
        return unavailable_page()
