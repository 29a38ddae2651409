"""Letting named sites show the study in an iframe (MTurk shows an ExternalQuestion in one).

With ``FRAME_ANCESTORS`` set, the participant's pages (under ``/study/``) name those origins in
the Content-Security-Policy's ``frame-ancestors`` directive instead of sending ``X-Frame-Options``,
so they may be framed by them and by nobody else; researchers' pages stay unframeable. The
settings pair it with ``SameSite=None; Secure`` cookies: inside a third-party frame a browser
sends no other kind, and without the session cookie a participant would lose their place on
the next page.
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

FRAMED_PREFIX = "/study/"


class FrameAncestorsMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if settings.FRAME_ANCESTORS and request.path.startswith(FRAMED_PREFIX):
            response.xframe_options_exempt = True  # read by XFrameOptionsMiddleware
            # Added to the page's policy by django-csp's middleware, which runs after this one.
            response._csp_update = {"frame-ancestors": ["'self'", *settings.FRAME_ANCESTORS]}
        return response
