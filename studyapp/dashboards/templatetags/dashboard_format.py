"""Number formatting for the dashboards: missing or undefined values show as an en dash."""

import math

from django import template

register = template.Library()
MISSING = "\u2013"


def _ok(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


@register.filter
def num(value, digits: int = 2) -> str:
    return f"{value:.{int(digits)}f}" if _ok(value) else MISSING


@register.filter
def pvalue(value) -> str:
    if not _ok(value):
        return MISSING
    return "<0.001" if value < 0.001 else f"{value:.3f}"


@register.filter
def pct(value, digits: int = 0) -> str:
    return f"{100 * value:.{int(digits)}f}%" if _ok(value) else MISSING


@register.filter
def seconds(value) -> str:
    """Seconds as m:ss (or h:mm:ss)."""
    if not _ok(value):
        return MISSING
    total = round(value)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
