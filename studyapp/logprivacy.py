"""Keep what the consent promises out of the logs: no client addresses, no platform ids, no tokens.

``PrivacyFilter`` sits on every handler in settings ``LOGGING`` (uvicorn's access and error logs
and Django's request logging included). It rewrites each record before it is written: a client
address argument (``"203.0.113.7:51234"``, ``("203.0.113.7", 51234)``) becomes ``-``, and in
any text the values of query parameters that name a participant or carry a secret become
``[redacted]`` (``?PROLIFIC_PID=[redacted]&STUDY_ID=[redacted]``, ``?token=[redacted]``).
Arguments keep their position and type, so formatters that unpack them (uvicorn's access
formatter) still work.
"""

from __future__ import annotations

import ipaddress
import logging
import re
from typing import Any

REDACTED = "[redacted]"

# Parameter names (lowercase) that identify a participant or carry a credential.
SENSITIVE_PARAMS = frozenset(
    {
        "prolific_pid",
        "study_id",
        "session_id",
        "workerid",
        "assignmentid",
        "hitid",
        "turksubmitto",
        "participant_label",
        "pilot_key",
        "token",
    }
)
# Any other name containing one of these is treated the same, so a new id is redacted too.
SENSITIVE_PARTS = ("pid", "token", "key", "secret", "password", "session", "label", "worker")

_QUERY_PARAM = re.compile(r"(?P<lead>[?&;])(?P<name>[^=&;?#\s\"']+)=(?P<value>[^&;#\s\"']*)")
_PORT = re.compile(r"^(?P<host>.+):\d{1,5}$")


def _sensitive(name: str) -> bool:
    lowered = name.lower()
    return (
        lowered in SENSITIVE_PARAMS
        or lowered.endswith("id")
        or any(part in lowered for part in SENSITIVE_PARTS)
    )


def redact_query(text: str) -> str:
    """``text`` with the values of sensitive query parameters replaced by ``[redacted]``."""
    if "=" not in text:
        return text

    def replace(match: re.Match[str]) -> str:
        if not _sensitive(match["name"]) or not match["value"]:
            return match[0]
        return f"{match['lead']}{match['name']}={REDACTED}"

    return _QUERY_PARAM.sub(replace, text)


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return False
    return True


def is_client_address(value: Any) -> bool:
    """Whether a log argument is a peer's address: ``"ip:port"``, ``(ip, port)``, or IPv6."""
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], str):
        return _is_ip(value[0]) and isinstance(value[1], int)
    if not isinstance(value, str):
        return False
    with_port = _PORT.match(value)
    # uvicorn writes IPv6 peers as "host:port" without brackets: any IPv6 text is a peer.
    return bool(with_port and _is_ip(with_port["host"])) or (":" in value and _is_ip(value))


def _scrub(value: Any) -> Any:
    if is_client_address(value):
        return "-"
    if isinstance(value, str):
        return redact_query(value)
    return value


class PrivacyFilter(logging.Filter):
    """Rewrites records in place (never drops one): see the module docstring."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact_query(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(_scrub(arg) for arg in record.args)
        elif isinstance(record.args, dict):
            record.args = {key: _scrub(arg) for key, arg in record.args.items()}
        color = getattr(record, "color_message", None)
        if isinstance(color, str):
            record.color_message = redact_query(color)
        return True
