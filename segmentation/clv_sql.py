"""The set-based SQL of a CLV run: purchase-day summaries for everyone in one statement, and the
swap of the new scores into ``MemberClv``.

**Summaries** (PRODUCT.md, *Customer lifetime value*), as of local date D (the brand's time zone,
D inclusive): a *purchase day* is a local date with at least one paid order on or before D not
refunded in full; its total is the sum of ``amount − refunded_amount`` of those orders. Per member
with at least one purchase day::

    frequency     = purchase days − 1
    recency_days  = last purchase day − first purchase day
    age_days      = D − first purchase day
    monetary_mean = mean total of the purchase days after the first (NULL when frequency = 0)

Only orders are read (by ``paid_at < local midnight after D``, one index range), each converted to
its local date once. Refunds are taken as they are now, as in the RFM recompute.

**Calibration** (``calibration_sql``): the same summaries as of D − H (H the holdout days) for the
members who had bought by then, with ``holdout_purchases``: their purchase days in (D − H, D].
Fitting on the first and comparing the expected purchases in H days with the second, grouped by
the calibration frequency, is the classic check of Fader, Hardie & Lee (2005, figure 4).
"""

from __future__ import annotations

import datetime as dt

from members.models import Member, Order
from segmentation.models import MemberClv
from segmentation.scoring import brand_timezone

ORDER_TABLE = Order._meta.db_table
MEMBER_TABLE = Member._meta.db_table
CLV_TABLE = MemberClv._meta.db_table
NEXT_TABLE = f"{CLV_TABLE}_next"
COLUMNS = (
    "member_id",
    "run_id",
    "frequency",
    "recency_days",
    "age_days",
    "monetary_mean",
    "p_alive",
    "expected_purchases_30",
    "expected_purchases_90",
    "expected_purchases_365",
    "expected_spend",
    "clv",
)


def local_midnight_after(day: dt.date) -> dt.datetime:
    """The instant the local day after ``day`` starts (orders paid before it are on or before ``day``)."""
    return dt.datetime.combine(day + dt.timedelta(days=1), dt.time.min, tzinfo=brand_timezone()).astimezone(dt.UTC)


def _days_cte() -> str:
    return f"""
        days AS (
            SELECT o.member_id, CAST(o.paid_at AT TIME ZONE %(tz)s AS DATE) AS day,
                   SUM(o.amount - o.refunded_amount) AS total
            FROM {ORDER_TABLE} o
            WHERE o.paid_at < %(end)s AND o.refunded_amount < o.amount
            GROUP BY 1, 2
        ),
        marked AS (
            SELECT member_id, day, total, MIN(day) OVER (PARTITION BY member_id) AS first_day FROM days
        )"""  # noqa: S608 - a table name from model metadata


def summaries_sql(*, as_of: dt.date) -> tuple[str, dict]:
    """``member_id, frequency, recency_days, age_days, monetary_mean`` per member who bought by ``as_of``."""
    sql = f"""
        WITH {_days_cte()}
        SELECT member_id,
               COUNT(*) - 1 AS frequency,
               MAX(day) - MIN(day) AS recency_days,
               CAST(%(as_of)s AS DATE) - MIN(day) AS age_days,
               ROUND(AVG(total) FILTER (WHERE day > first_day), 2) AS monetary_mean
        FROM marked
        GROUP BY member_id
        ORDER BY member_id
    """  # noqa: S608 - no value is formatted in, only the CTE
    return sql, {"tz": str(brand_timezone()), "end": local_midnight_after(as_of), "as_of": as_of}


def calibration_sql(*, as_of: dt.date, holdout_days: int) -> tuple[str, dict]:
    """``frequency, recency_days, age_days, monetary_mean`` as of D − ``holdout_days`` and
    ``holdout_purchases`` in (D − holdout, D], per member who bought by D − holdout."""
    cut = as_of - dt.timedelta(days=holdout_days)
    sql = f"""
        WITH {_days_cte()}
        SELECT member_id,
               COUNT(*) FILTER (WHERE day <= %(cut)s) - 1 AS frequency,
               MAX(day) FILTER (WHERE day <= %(cut)s) - MIN(day) AS recency_days,
               CAST(%(cut)s AS DATE) - MIN(day) AS age_days,
               ROUND(AVG(total) FILTER (WHERE day > first_day AND day <= %(cut)s), 2) AS monetary_mean,
               COUNT(*) FILTER (WHERE day > %(cut)s) AS holdout_purchases
        FROM marked
        GROUP BY member_id
        HAVING MIN(day) <= %(cut)s
        ORDER BY member_id
    """  # noqa: S608 - no value is formatted in, only the CTE
    return sql, {"tz": str(brand_timezone()), "end": local_midnight_after(as_of), "as_of": as_of, "cut": cut}


def swap_statements() -> list[str]:
    """Replace the live table by the one just filled (same transaction): readers wait only for this."""
    return [
        f"ALTER TABLE {NEXT_TABLE} ADD CONSTRAINT {NEXT_TABLE}_pkey PRIMARY KEY (member_id)",
        f"LOCK TABLE {CLV_TABLE} IN ACCESS EXCLUSIVE MODE",
        f"DROP TABLE {CLV_TABLE}",
        f"ALTER TABLE {NEXT_TABLE} RENAME TO {CLV_TABLE}",
        f"ALTER TABLE {CLV_TABLE} RENAME CONSTRAINT {NEXT_TABLE}_pkey TO {CLV_TABLE}_pkey",
    ]


def create_next_statements() -> list[str]:
    return [
        f"DROP TABLE IF EXISTS {NEXT_TABLE}",
        f"CREATE TABLE {NEXT_TABLE} (LIKE {CLV_TABLE} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)",
    ]


def copy_statement() -> str:
    return f"COPY {NEXT_TABLE} ({', '.join(COLUMNS)}) FROM STDIN WITH (FORMAT csv)"
