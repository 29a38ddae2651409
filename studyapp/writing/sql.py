"""Database expressions the writing models compute columns with (PostgreSQL first, SQLite for
the demo)."""

from __future__ import annotations

from typing import Any

from django.db.models import Func, IntegerField


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
