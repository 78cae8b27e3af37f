"""The set-based SQL of a recompute: per-member aggregates, scores and segments for everyone at once.

Two ways to aggregate, one way to score:

- ``aggregate_sql_postgres`` — PostgreSQL: ``FILTER`` aggregates, exact ``numeric`` money, the
  local date of the last and first order with ``AT TIME ZONE``. Used by recomputes on PostgreSQL.
- ``aggregate_sql_portable`` — any backend Django supports with window functions (SQLite for the
  embedded default, PostgreSQL in tests): ``CASE`` aggregates, money summed in integer cents (SQLite
  has no exact decimals), local dates through Django's own ``datetime_cast_date_sql``.

Both read orders with ``paid_at`` in ``[window.start, window.end)`` as instants (the local-day
boundaries are computed once in Python with zoneinfo, see ``segmentation.scoring.window_for``), so
no order is converted to a local date; only each member's first and last order are.

``scored_sql`` wraps either into ``SELECT member_id, recency_days, first_order_days, frequency,
monetary, r_score, f_score, m_score, segment_id``. Quintile scores are rank-based so that equal
values always get equal scores; among the members who bought in the window (F ≥ 1), ``n`` of them::

    score = 1 + floor(5 * (rank - 1) / n)

where ``rank`` is SQL ``RANK()`` (ties share the lowest rank; 1 = worst: the largest R, the
smallest F or M). So a value scores by the share of buyers strictly worse than it: 0–20 % → 1,
20–40 % → 2, … 80–100 % → 5. Members with F = 0 (lapsed or never bought) score 1 everywhere. In
thresholds mode the scores are 1 (H) or 0 (L): R ≤ r_max_days, F ≥ f_min, M ≥ m_min; F = 0 gives
L everywhere.
"""

from __future__ import annotations

from decimal import Decimal

from django.db import connection as default_connection

from members.models import Member, Order
from segmentation.rules import segment_case_sql
from segmentation.scoring import THRESHOLDS, SchemeSpec, Window

MEMBER_TABLE = Member._meta.db_table
ORDER_TABLE = Order._meta.db_table

# Days from a local date expression to the as-of date (a %s parameter, ISO text).
_DAYS_TO_AS_OF = {
    "postgresql": "(CAST(%s AS DATE) - {date})",
    "sqlite": "CAST(julianday(%s) - julianday({date}) AS INTEGER)",
}


def _range_sql(column: str, member_range: tuple[int, int] | None) -> tuple[str, list]:
    if member_range is None:
        return "", []
    return f" AND {column} BETWEEN %s AND %s", [member_range[0], member_range[1]]


def aggregate_sql_postgres(*, window: Window, member_range: tuple[int, int] | None = None) -> tuple[str, list]:
    """Per member registered by the end of the as-of date: R (days), days since the first order,
    F and M (``money``, exact numeric), over orders not refunded in full."""
    from segmentation.scoring import brand_timezone

    tz = str(brand_timezone())
    as_of = window.as_of.isoformat()
    range_o, range_o_params = _range_sql("o.member_id", member_range)
    range_m, range_m_params = _range_sql("m.id", member_range)
    sql = f"""
        SELECT m.id AS member_id,
               CAST(%s AS DATE) - CAST((a.last_paid_at AT TIME ZONE %s) AS DATE) AS recency_days,
               CAST(%s AS DATE) - CAST((a.first_paid_at AT TIME ZONE %s) AS DATE) AS first_order_days,
               COALESCE(a.frequency, 0) AS frequency,
               COALESCE(a.money, 0) AS money
        FROM {MEMBER_TABLE} m
        LEFT JOIN (
            SELECT o.member_id,
                   MAX(o.paid_at) AS last_paid_at,
                   MIN(o.paid_at) AS first_paid_at,
                   COUNT(*) FILTER (WHERE o.paid_at >= %s) AS frequency,
                   SUM(o.amount - o.refunded_amount) FILTER (WHERE o.paid_at >= %s) AS money
            FROM {ORDER_TABLE} o
            WHERE o.paid_at < %s AND o.refunded_amount < o.amount{range_o}
            GROUP BY o.member_id
        ) a ON a.member_id = m.id
        WHERE m.registered_at < %s{range_m}
    """  # noqa: S608 - table names come from model metadata, values are parameters
    params = [as_of, tz, as_of, tz, window.start, window.start, window.end, *range_o_params, window.end]
    return sql, [*params, *range_m_params]


def aggregate_sql_portable(
    *, window: Window, member_range: tuple[int, int] | None = None, connection=None
) -> tuple[str, list]:
    """The same aggregates in SQL that SQLite and PostgreSQL both run; ``money`` is in cents."""
    from segmentation.scoring import brand_timezone

    connection = connection or default_connection
    ops = connection.ops
    days = _DAYS_TO_AS_OF[connection.vendor]
    tz = str(brand_timezone())
    as_of = window.as_of.isoformat()
    last_sql, last_params = ops.datetime_cast_date_sql("MAX(o.paid_at)", (), tz)
    first_sql, first_params = ops.datetime_cast_date_sql("MIN(o.paid_at)", (), tz)
    start = ops.adapt_datetimefield_value(window.start)
    end = ops.adapt_datetimefield_value(window.end)
    range_m, range_params = _range_sql("m.id", member_range)
    sql = f"""
        SELECT m.id AS member_id,
               {days.format(date=last_sql)} AS recency_days,
               {days.format(date=first_sql)} AS first_order_days,
               COUNT(CASE WHEN o.paid_at >= %s THEN 1 END) AS frequency,
               COALESCE(SUM(CASE WHEN o.paid_at >= %s
                                 THEN CAST(ROUND((o.amount - o.refunded_amount) * 100) AS BIGINT) END), 0) AS money
        FROM {MEMBER_TABLE} m
        LEFT JOIN {ORDER_TABLE} o
               ON o.member_id = m.id AND o.paid_at < %s AND o.refunded_amount < o.amount
        WHERE m.registered_at < %s{range_m}
        GROUP BY m.id
    """  # noqa: S608
    params = [as_of, *last_params, as_of, *first_params, start, start, end, end, *range_params]
    return sql, params


def staging_sql(*, run_id: int) -> tuple[str, list]:
    """Aggregates a split run's chunks left in the staging table (``money`` exact numeric)."""
    from segmentation.models import RfmStagingRow

    sql = f"""
        SELECT member_id, recency_days, first_order_days, frequency, monetary AS money
        FROM {RfmStagingRow._meta.db_table} WHERE run_id = %s
    """  # noqa: S608
    return sql, [run_id]


def _decimal_literal(value: Decimal) -> str:
    return format(Decimal(value), "f")


def scored_sql(spec: SchemeSpec, aggregate: tuple[str, list], *, money_in_cents: bool = False) -> tuple[str, list]:
    """Scores and segment of every row of ``aggregate`` (see the module docstring)."""
    agg_sql, agg_params = aggregate
    if money_in_cents:
        m_min = str(int(Decimal(spec.m_min) * 100))
        money_out = "s.money / 100.0"
    else:
        m_min = _decimal_literal(spec.m_min)
        money_out = "s.money"
    if spec.mode == THRESHOLDS:
        r_expr = f"CASE WHEN a.frequency = 0 THEN 0 WHEN a.recency_days <= {int(spec.r_max_days)} THEN 1 ELSE 0 END"
        f_expr = f"CASE WHEN a.frequency >= {int(spec.f_min)} THEN 1 ELSE 0 END"
        m_expr = f"CASE WHEN a.frequency > 0 AND a.money >= {m_min} THEN 1 ELSE 0 END"
    else:
        buyers = "PARTITION BY CASE WHEN a.frequency > 0 THEN 1 ELSE 0 END"

        def quintile(order_by: str) -> str:
            return (
                f"CASE WHEN a.frequency = 0 THEN 1 ELSE "
                f"1 + (5 * (RANK() OVER ({buyers} ORDER BY {order_by}) - 1)) / (COUNT(*) OVER ({buyers})) END"
            )

        r_expr = quintile("a.recency_days DESC")
        f_expr = quintile("a.frequency ASC")
        m_expr = quintile("a.money ASC")
    case = segment_case_sql(spec.rules, high_level=spec.high_level, alias="s")
    # PostgreSQL would otherwise pull the subqueries up and evaluate every score (and every local
    # date) once per reference in the segment CASE; OFFSET 0 computes each once per member.
    fence = " OFFSET 0" if default_connection.vendor == "postgresql" else ""
    sql = f"""
        SELECT s.member_id, s.recency_days, s.first_order_days, s.frequency, {money_out} AS monetary,
               s.r_score, s.f_score, s.m_score, {case} AS segment_id
        FROM (
            SELECT a.member_id, a.recency_days, a.first_order_days, a.frequency, a.money,
                   {r_expr} AS r_score, {f_expr} AS f_score, {m_expr} AS m_score
            FROM ({agg_sql}{fence}) a{fence}
        ) s
    """  # noqa: S608
    return sql, list(agg_params)


def cut_points_sql(table: str) -> str:
    """One row: for s = 2..5 the least good R, F and M that still score ≥ s, the buyer count."""
    parts = []
    for dim, column, agg in (("r", "recency_days", "MAX"), ("f", "frequency", "MIN"), ("m", "monetary", "MIN")):
        parts += [f"{agg}(CASE WHEN {dim}_score >= {s} THEN {column} END)" for s in range(2, 6)]
    return f"SELECT {', '.join(parts)}, COUNT(*) FROM {table} WHERE frequency > 0"  # noqa: S608


def segment_stats_sql(table: str) -> str:
    return f"""
        SELECT segment_id, COUNT(*), AVG(recency_days), AVG(frequency), AVG(monetary),
               SUM(CASE WHEN frequency > 0 THEN 1 ELSE 0 END)
        FROM {table} GROUP BY segment_id
    """  # noqa: S608


def stats_and_snapshot_sql_postgres(table: str, snapshot_table: str) -> str:
    """``segment_stats_sql`` and ``snapshot_insert_sql`` in one pass (PostgreSQL).
    Parameters: run id, created_at, updated_at."""
    return f"""
        WITH g AS (
            SELECT segment_id, COUNT(*) AS members, AVG(recency_days) AS avg_r, AVG(frequency) AS avg_f,
                   AVG(monetary) AS avg_m, SUM(CASE WHEN frequency > 0 THEN 1 ELSE 0 END) AS buyers,
                   CAST(json_agg(member_id) AS TEXT) AS ids
            FROM {table} GROUP BY segment_id
        ), snapshot AS (
            INSERT INTO {snapshot_table} (run_id, segment_id, member_count, member_ids, created_at, updated_at)
            SELECT %s, segment_id, members, ids, %s, %s FROM g
        )
        SELECT segment_id, members, avg_r, avg_f, avg_m, buyers FROM g
    """  # noqa: S608


_JSON_IDS = {
    "postgresql": "CAST(json_agg(member_id) AS TEXT)",
    "sqlite": "json_group_array(member_id)",
}


def snapshot_insert_sql(table: str, snapshot_table: str, vendor: str) -> str:
    """Insert one snapshot row per segment: run, segment, count, JSON array of member ids (the set
    is what counts; the ids are in no particular order — sorting them would cost a sort of
    everyone). Parameters: run id, created_at, updated_at."""
    return f"""
        INSERT INTO {snapshot_table} (run_id, segment_id, member_count, member_ids, created_at, updated_at)
        SELECT %s, segment_id, COUNT(*), {_JSON_IDS[vendor]}, %s, %s FROM {table} GROUP BY segment_id
    """  # noqa: S608


def transitions_insert_sql(table: str, current_table: str, transition_table: str, *, skip_fresh: bool) -> str:
    """Every member whose segment differs from the current result (or who is new to it); with
    ``skip_fresh``, not those whose row an order refreshed since the run started (parameter 4).
    Parameters: run id, created_at, updated_at[, run start]."""
    fresh = " AND (o.member_id IS NULL OR o.updated_at < %s)" if skip_fresh else ""
    return f"""
        INSERT INTO {transition_table} (run_id, member_id, from_segment_id, to_segment_id, source,
                                        created_at, updated_at)
        SELECT %s, n.member_id, o.segment_id, n.segment_id, 'run', %s, %s
        FROM {table} n LEFT JOIN {current_table} o ON o.member_id = n.member_id
        WHERE COALESCE(o.segment_id, 0) <> COALESCE(n.segment_id, 0){fresh}
    """  # noqa: S608


def member_score_exprs(spec: SchemeSpec, cut_points: dict, *, alias: str = "a") -> tuple[str, str, str]:
    """R, F, M score expressions for rows that already have a run's cut points (the per-order
    refresh): ``1 + the number of cut points reached`` in quintile mode, the thresholds otherwise.
    Over columns ``recency_days``, ``frequency`` and ``money`` (exact numeric) of ``alias``."""
    a = alias
    if spec.mode == THRESHOLDS:
        return (
            f"CASE WHEN {a}.frequency = 0 THEN 0 WHEN {a}.recency_days <= {int(spec.r_max_days)} THEN 1 ELSE 0 END",
            f"CASE WHEN {a}.frequency >= {int(spec.f_min)} THEN 1 ELSE 0 END",
            f"CASE WHEN {a}.frequency > 0 AND {a}.money >= {_decimal_literal(spec.m_min)} THEN 1 ELSE 0 END",
        )

    def reached(column: str, cuts, operator: str, literal) -> str:
        steps = [
            f"CASE WHEN {a}.{column} {operator} {literal(cut)} THEN 1 ELSE 0 END" for cut in cuts if cut is not None
        ]
        return f"CASE WHEN {a}.frequency = 0 THEN 1 ELSE {' + '.join(['1', *steps])} END"

    return (
        reached("recency_days", cut_points.get("r", []), "<=", int),
        reached("frequency", cut_points.get("f", []), ">=", int),
        reached("money", cut_points.get("m", []), ">=", lambda cut: _decimal_literal(Decimal(cut))),
    )
