"""Short statements for the hot path of an order: insert a row, update a few columns, lock a row.

What ``Model.save()``, ``QuerySet.create()`` and ``select_for_update().get()`` do for one row, but
with the SQL built once per model and kept, so a statement costs one round trip and a few
microseconds of Python rather than an ORM query compilation (~0.3–0.5 ms each, the larger part of
an order's time before).

Every statement here runs through ``fetch_prepared``: a server-side prepared
statement, parsed and planned once per connection instead of on every request — for the profile
and the live RFM refresh, planning cost more than running.

The row helpers send no model signals: use them only for models nothing listens to (ledger rows, orders,
accounts) — ``members.caching`` watches settings models, which never go through here.
"""

from __future__ import annotations

import time
from functools import cache

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connection, connections
from django.db.models import Model


@cache
def _insert_sql(
    model: type[Model], conflict: tuple[str, ...], lock_parent: str | None
) -> tuple[str, tuple, int | None]:
    """The INSERT, its fields, and the index among them of the ``lock_parent`` foreign key, whose
    value the statement takes from its row lock instead of a parameter of its own."""
    meta = model._meta
    fields = tuple(field for field in meta.concrete_fields if not (field.primary_key and field.auto_created))
    quote = connection.ops.quote_name
    placeholders = ["%s"] * len(fields)
    prefix, parent_index = "", None
    if lock_parent:
        foreign_key = meta.get_field(lock_parent)
        parent_table = quote(foreign_key.related_model._meta.db_table)
        parent_column = quote(foreign_key.target_field.column)
        prefix = (
            f"WITH parent AS (SELECT {parent_column} FROM {parent_table} "  # noqa: S608
            f"WHERE {parent_column} = %s FOR NO KEY UPDATE) "
        )
        parent_index = fields.index(foreign_key)
        placeholders[parent_index] = f"(SELECT {parent_column} FROM parent)"  # noqa: S608
    sql = (
        f"{prefix}INSERT INTO {quote(meta.db_table)} ({', '.join(quote(f.column) for f in fields)}) "  # noqa: S608
        f"VALUES ({', '.join(placeholders)})"
    )
    if conflict:
        sql += f" ON CONFLICT ({', '.join(quote(meta.get_field(name).column) for name in conflict)}) DO NOTHING"
    return sql + f" RETURNING {quote(meta.pk.column)}", fields, parent_index


def insert(instance: Model, *, unless_conflict_on: tuple[str, ...] = (), lock_parent: str | None = None) -> bool:
    """INSERT ``instance`` (defaults and ``auto_now`` filled in as ``save()`` would) and set its pk.

    With ``unless_conflict_on`` (unique fields), ``… ON CONFLICT (…) DO NOTHING``: returns False,
    and leaves the instance unsaved, when a row with those values exists already (a concurrent
    insert of the same values is waited for). True when the row was inserted.

    With ``lock_parent`` (a foreign key's name), the same statement first locks the row it points
    to (``FOR NO KEY UPDATE``, as ``members.lock_objects`` locks members): inserts for one parent
    then follow each other, and whatever the transaction reads next sees every row inserted for
    that parent before it — an order's tier scan counts a concurrent order.
    """
    db = connections[DEFAULT_DB_ALIAS]  # once: each ``connection.x`` looks the connection up again
    sql, fields, parent_index = _insert_sql(type(instance), tuple(unless_conflict_on), lock_parent)
    values = [field.get_db_prep_save(field.pre_save(instance, add=True), db) for field in fields]
    if parent_index is not None:
        values = [values.pop(parent_index), *values]
    found = fetch_prepared(sql, values)
    if not found:
        return False
    row = found[0]
    instance.pk = row[0]
    instance._state.adding = False
    instance._state.db = db.alias
    return True


@cache
def _update_sql(model: type[Model], names: tuple[str, ...]) -> tuple[str, tuple]:
    meta = model._meta
    fields = tuple(meta.get_field(name) for name in names)
    updated_at = next((f for f in meta.concrete_fields if f.name == "updated_at"), None)
    if updated_at is not None and updated_at not in fields:
        fields += (updated_at,)
    quote = connection.ops.quote_name
    sets = ", ".join(f"{quote(f.column)} = %s" for f in fields)
    return f"UPDATE {quote(meta.db_table)} SET {sets} WHERE {quote(meta.pk.column)} = %s", fields  # noqa: S608


def update(instance: Model, *names: str) -> None:
    """UPDATE the columns ``names`` of a saved ``instance`` (and ``updated_at``, if the model has it)."""
    db = connections[DEFAULT_DB_ALIAS]
    sql, fields = _update_sql(type(instance), names)
    values = [field.get_db_prep_save(field.pre_save(instance, add=False), db) for field in fields]
    fetch_prepared(sql, [*values, instance.pk])


@cache
def _select_sql(model: type[Model], by: str, lock: bool) -> tuple[str, tuple, tuple]:
    meta = model._meta
    fields = tuple(meta.concrete_fields)
    quote = connection.ops.quote_name
    sql = (
        f"SELECT {', '.join(quote(f.column) for f in fields)} FROM {quote(meta.db_table)} "  # noqa: S608
        f"WHERE {quote(meta.get_field(by).column)} = %s"
    )
    if lock:
        sql += " FOR UPDATE"
    converters = []
    for field in fields:
        column = field.get_col(meta.db_table)
        found = connection.ops.get_db_converters(column) + field.get_db_converters(connection)
        converters.append((column, tuple(found)))
    return sql, tuple(f.attname for f in fields), tuple(converters)


def get(model: type[Model], *, by: str, value, lock: bool = False) -> Model | None:
    """The row of ``model`` whose unique field ``by`` equals ``value`` (locked FOR UPDATE with ``lock``), or None."""
    db = connections[DEFAULT_DB_ALIAS]
    sql, attnames, converters = _select_sql(model, by, lock)
    found = fetch_prepared(sql, [value])
    if not found:
        return None
    row = found[0]
    values = []
    for raw, (column, functions) in zip(row, converters, strict=True):
        for function in functions:
            raw = function(raw, column, db)
        values.append(raw)
    return model.from_db(db.alias, attnames, values)


_TUPLES_OK = 2  # psycopg.pq.ExecStatus.TUPLES_OK, without importing psycopg where it is not used


def fetch_prepared(sql: str, params: dict | list) -> list[tuple]:
    """The rows of ``sql`` (none for a statement without results), as a prepared statement (see
    the module doc).

    Django leaves psycopg's prepared statements off (its cursors bind parameters client-side);
    this asks for them explicitly, per statement (``prepare=True``), and nothing else on the
    connection changes. Set ``HUIYUAN_PREPARE_STATEMENTS = False`` behind a PgBouncer in transaction
    mode without prepared-statement support: the statements then run as usual.
    """
    db = connections[DEFAULT_DB_ALIAS]  # once: each ``connection.x`` looks the connection up again
    if not settings.HUIYUAN_PREPARE_STATEMENTS:
        with db.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchall() if cursor.description else []
    db.ensure_connection()
    pg = db.connection
    cursor = getattr(pg, "_huiyuan_cursor", None)
    if cursor is None or cursor.closed:
        import psycopg

        if pg.prepare_threshold is None:
            pg.prepare_threshold = 2**31 - 1  # prepared statements on, but only when asked for
        cursor = pg._huiyuan_cursor = psycopg.Cursor(pg)  # one per connection, reused
    started = time.monotonic()
    with db.wrap_database_errors:
        cursor.execute(sql, params, prepare=True)
        # Whether rows came back, without ``cursor.description`` (which builds column objects).
        result = cursor.pgresult
        found = cursor.fetchall() if result is not None and result.status == _TUPLES_OK else []
    if db.queries_logged:  # as Django's debug cursor does: query counts in tests see it
        db.queries_log.append({"sql": sql, "time": f"{time.monotonic() - started:.3f}"})
    return found
