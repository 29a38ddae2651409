"""ORM-equivalent statements without the ORM's per-query work.

Django builds the SQL of every query anew (compilation, joins, column lists) and makes model
instances of the rows: several times the CPU of running the query. That is fine for pages, not
for the statements every chat message runs on its ASGI process's database worker
(studyapp/writing/rows.py, bench/README.md Relay). These helpers build such
statements once per process from the models' table and column names, and run them through
Django's connection: transactions, error translation (``IntegrityError``) and query logging
work as for the ORM. With ``WRITING_FAST_SQL`` off (:func:`enabled`) their callers use the ORM.
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Iterator, Sequence
from typing import Any, cast

import psycopg
from django.conf import settings
from django.db import connection, models


def enabled() -> bool:
    return bool(settings.WRITING_FAST_SQL)


class _PreparedCursor:
    """A PostgreSQL cursor whose statements are prepared on their connection the first time
    and only executed after that (see :func:`cursor`)."""

    def __init__(self, cursor: Any) -> None:
        self.cursor = cursor

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        connection.validate_no_broken_transaction()
        started = time.monotonic()
        with connection.wrap_database_errors:
            # psycopg prepares nothing on a connection whose threshold is None, whatever is
            # asked here: DB_PREPARED_STATEMENTS=0 (studyapp/settings.py).
            self.cursor.execute(sql, params, prepare=True)
        if connection.queries_logged:  # as Django's own cursor logs (tests count statements)
            duration = time.monotonic() - started
            connection.queries_log.append({"sql": sql, "time": f"{duration:.3f}"})

    def fetchone(self) -> Any:
        return self.cursor.fetchone()

    def fetchall(self) -> list[Any]:
        rows: list[Any] = self.cursor.fetchall()
        return rows


@contextlib.contextmanager
def cursor() -> Iterator[Any]:
    """A cursor for the statements every chat message runs.

    On PostgreSQL they are prepared once per connection: Django binds parameters on the
    client, so each call would reach the server as new text to parse and plan, a large share of
    what a message costs PostgreSQL (bench/README.md, Relay). Elsewhere (SQLite), Django's
    cursor. It takes part in the connection's transaction as Django's does, and its errors are
    Django's.
    """
    if connection.vendor != "postgresql":
        with connection.cursor() as django_cursor:
            yield django_cursor
        return
    connection.ensure_connection()
    with psycopg.Cursor(connection.connection) as raw:
        yield _PreparedCursor(raw)


def table(model: type[models.Model]) -> str:
    return connection.ops.quote_name(model._meta.db_table)


def column(model: type[models.Model], name: str) -> str:
    return connection.ops.quote_name(_column(_field(model, name)))


def json_value(model: type[models.Model], name: str, value: Any) -> Any:
    # Only the fields that convert what the database returns (JSON) define from_db_value.
    field: Any = _field(model, name)
    return field.from_db_value(value, None, connection)


def _field(model: type[models.Model], name: str) -> models.Field[Any, Any]:
    # The helpers name concrete fields only, never a reverse relation.
    return cast("models.Field[Any, Any]", model._meta.get_field(name))


def _column(field: models.Field[Any, Any]) -> str:
    # A concrete field always has a column; the stubs allow None for the others.
    return cast(str, field.column)


@functools.cache
def _insert_plan(model: type[models.Model]) -> tuple[str, tuple[models.Field[Any, Any], ...]]:
    meta = model._meta
    fields = tuple(f for f in meta.concrete_fields if not f.generated and f is not meta.auto_field)
    columns = ", ".join(connection.ops.quote_name(_column(f)) for f in fields)
    marks = ", ".join(["%s"] * len(fields))
    returning = connection.ops.quote_name(_column(meta.pk))
    sql = f"INSERT INTO {table(model)} ({columns}) VALUES ({marks}) RETURNING {returning}"  # noqa: S608 (quoted names from the models, values bound)
    return sql, fields


def insert_statement(obj: models.Model) -> tuple[str, list[Any]]:
    """The INSERT ``obj.save()`` would run for a new row (defaults, ``auto_now_add``, the
    fields' database preparation), returning the new pk, and its parameters."""
    sql, fields = _insert_plan(type(obj))
    return sql, [f.get_db_prep_save(f.pre_save(obj, True), connection) for f in fields]


def insert(obj: models.Model) -> None:
    """INSERT ``obj`` as a new row and set its pk (as ``obj.save()``, but neither the model's
    ``save`` nor signals run: callers set what ``save`` would derive)."""
    if not enabled():
        obj.save(force_insert=True)
        return
    sql, values = insert_statement(obj)
    with cursor() as hot:
        hot.execute(sql, values)
        obj.pk = hot.fetchone()[0]
    obj._state.adding = False
    obj._state.db = connection.alias
