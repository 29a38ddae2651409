"""Database expressions the dashboards aggregate with (PostgreSQL first, SQLite for the demo)."""

from __future__ import annotations

from typing import Any

import numpy as np
from django.db import connection
from django.db.models import Aggregate, F, FloatField, QuerySet


class Percentile(Aggregate):
    """PostgreSQL's ``percentile_cont`` (linear interpolation, like numpy's default)."""

    function = "percentile_cont"
    template = "%(function)s(%(fraction)s) WITHIN GROUP (ORDER BY %(expressions)s)"
    output_field = FloatField()

    def __init__(self, expression: Any, fraction: float, **extra: Any) -> None:
        if not 0 <= fraction <= 1:
            raise ValueError("fraction must lie in [0, 1]")
        super().__init__(expression, fraction=repr(float(fraction)), **extra)


def aggregate_with_percentiles(
    qs: QuerySet,
    *,
    group: Any,
    value: str,
    fractions: dict[str, float],
    aggregates: dict[str, Aggregate],
) -> dict[Any, dict[str, Any]]:
    """``aggregates`` and percentiles of ``value`` per ``group``: ``{group: {name: number}}``.

    On PostgreSQL this is one query (percentile_cont skips NULLs, like every aggregate);
    elsewhere (the SQLite demo) the values are read and numpy interpolates the same way.
    """
    key = F(group) if isinstance(group, str) else group
    grouped = qs.values(key=key).order_by()
    if connection.vendor == "postgresql":
        percentiles = {name: Percentile(value, f) for name, f in fractions.items()}
        rows = grouped.annotate(**aggregates, **percentiles)
        return {row.pop("key"): row for row in rows}
    out = {row.pop("key"): row for row in grouped.annotate(**aggregates)}
    values: dict[Any, list[float]] = {}
    pairs = qs.filter(**{f"{value}__isnull": False}).values_list(key, value).order_by()
    for key, number in pairs:
        values.setdefault(key, []).append(number)
    for key, row in out.items():
        numbers = values.get(key)
        for name, f in fractions.items():
            row[name] = float(np.quantile(numbers, f)) if numbers else None
    return out
