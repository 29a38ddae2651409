"""ASGI entry point: HTTP through Django, WebSockets through Channels."""

import os
from typing import Any
from urllib.parse import ParseResult, urlparse

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "studyapp.settings")
django_asgi_app = get_asgi_application()

from django.conf import settings  # noqa: E402

from studyapp.env import require_secret_key  # noqa: E402

# The server signs sessions and socket tokens: with DEBUG off it starts only on a real key.
require_secret_key(settings.SECRET_KEY, debug=settings.DEBUG)

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import (  # noqa: E402
    AllowedHostsOriginValidator,
    OriginValidator,
    WebsocketDenier,
)

from studyapp.realtime.lifespan import lifespan  # noqa: E402
from studyapp.writing.consumers import NO_CHANNEL_LAYER  # noqa: E402
from studyapp.writing.routing import websocket_urlpatterns  # noqa: E402


class _Denier(WebsocketDenier):
    # Channels' own denier listens on the default (Redis) channel layer, whose receive never
    # ended, so one refused handshake held up the server's shutdown for good.
    channel_layer_alias = NO_CHANNEL_LAYER


class _OriginGuard(OriginValidator):
    """Channels' Origin check, refusing with a consumer that has no channel layer."""

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if not self.valid_origin(_origin(scope)):
            return await _Denier()(scope, receive, send)
        return await self.application(scope, receive, send)


def _origin(scope: dict[str, Any]) -> ParseResult | None:
    """The handshake's Origin header, parsed as channels parses it (None when absent)."""
    values = [value for name, value in scope.get("headers", []) if name == b"origin"]
    return urlparse(values[-1].decode("latin1")) if values else None


application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": _OriginGuard(
            URLRouter(websocket_urlpatterns),
            AllowedHostsOriginValidator(None).allowed_origins,
        ),
        "lifespan": lifespan,
    }
)
