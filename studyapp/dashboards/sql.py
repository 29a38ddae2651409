"""Database expressions the dashboards aggregate with (PostgreSQL first, SQLite for the demo)."""

from __future__ import annotations

from typing import Any

import numpy as np
from django.db import connection
from django.db.models import Aggregate, F, FloatField, Func, IntegerField, QuerySet


class WordCount(Func):
    """Whitespace-separated words in a text column (0 for empty text)."""

    output_field = IntegerField()

    def as_postgresql(self, compiler: Any, connection: Any, **extra: Any) -> tuple[str, list]:
        sql, params = compiler.compile(self.source_expressions[0])
        # NULLIF turns blank text into NULL so that it counts as 0 words, not one empty word.
        return (
            f"COALESCE(cardinality(regexp_split_to_array(NULLIF(btrim({sql}), ''), '\\s+')), 0)",
            params,
        )

    def as_sql(self, compiler: Any, connection: Any, **extra: Any) -> tuple[str, list]:
        # Portable approximation (SQLite demo): spaces + 1, which ignores tabs and newlines.
        sql, params = compiler.compile(self.source_expressions[0])
        trimmed = f"TRIM({sql})"
        return (
            f"(CASE WHEN {trimmed} = '' THEN 0 ELSE "
            f"LENGTH({trimmed}) - LENGTH(REPLACE({trimmed}, ' ', '')) + 1 END)",
            [*params, *params, *params],
        )


class Percentile(Aggregate):
    """PostgreSQL's ``percentile_cont`` (linear interpolation, like numpy's default)."""

    function = "percentile_cont"
    template = "%(function)s(%(fraction)s) WITHIN GROUP (ORDER BY %(expressions)s)"
    output_field = FloatField()

    def __init__(self, expression: Any, fraction: float, **extra: Any) -> None:
        if not 0 <= fraction <= 1:
            raise ValueError("fraction must lie in [0, 1]")
        super().__init__(expression, fraction=repr(float(fraction)), **extra)


def percentiles_by(
    qs: QuerySet, *, group: str, value: str, fractions: dict[str, float]
) -> dict[Any, dict[str, float | None]]:
    """Percentiles of ``value`` per ``group``: ``{group: {name: value}}``.

    On PostgreSQL this is one aggregate query; elsewhere (the SQLite demo) the values are read
    and numpy interpolates the same way.
    """
    qs = qs.filter(**{f"{value}__isnull": False})
    if connection.vendor == "postgresql":
        rows = qs.values(key=F(group)).annotate(
            **{name: Percentile(value, fraction) for name, fraction in fractions.items()}
        )
        return {row.pop("key"): row for row in rows.order_by()}
    values: dict[Any, list[float]] = {}
    for key, number in qs.values_list(group, value).order_by():
        values.setdefault(key, []).append(number)
    return {
        key: {name: float(np.quantile(numbers, f)) for name, f in fractions.items()}
        for key, numbers in values.items()
    }
