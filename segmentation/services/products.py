"""Product preference, computed set-based in the nightly run: ``product_preferences_recompute``.

Two results, each one ``INSERT … SELECT`` into a temporary table and two statements that make the
stored table equal to it (delete the rows no longer there, upsert the rest, writing only what
changed), in one transaction under an advisory lock — readers see the previous night's rows until
the commit, never a half-written table, and the number of queries does not depend on members,
orders or products:

- **favourite categories** (``MemberCategory``): per member, net spend on order lines paid in the
  last ``days`` days (365) by product category, top three. A line's net is its amount less what
  refunds naming it gave back, less its share of the order's refunds that named no line (spread
  over what the order has left, pro rata — as ``members.selectors.member_top_categories`` does for
  the 360): ``(amount − refunded) × (order − order refunded) ÷ (order − Σ lines refunded)``.
  Orders refunded in full count nowhere.
- **related products** (``RelatedProduct``): per product A, the products B most bought by the
  members who bought A — a member "bought" a product when they have a line of it, not refunded in
  full, in an order paid in the window and not refunded in full. ``support`` = members who bought
  both, ``lift`` = support × buyers ÷ (buyers of A × buyers of B); pairs with support below
  ``min_support`` are left out, the rest ranked by lift, then support, then B's id; the first
  ``top`` kept (``HUIYUAN_RELATED_PRODUCTS_MIN_SUPPORT``, 3, and ``HUIYUAN_RELATED_PRODUCTS_TOP``, 5).

Scheduled nightly after the RFM recompute (``segmentation.tasks.product_preferences_task``); safe to
run twice or concurrently (a second run waits for the first, then finds nothing to change).
"""

from __future__ import annotations

import datetime as dt
from typing import NamedTuple

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from members.advisory_locks import namespace_key
from members.models import Order, OrderLine, Product
from segmentation.models import MemberCategory, RelatedProduct

__all__ = [
    "FAVOURITE_CATEGORIES",
    "PREFERENCE_DAYS",
    "PreferenceCounts",
    "product_preferences_recompute",
]

PREFERENCE_DAYS = 365
FAVOURITE_CATEGORIES = 3
LOCK_KEY = namespace_key("segmentation.product_preferences")

LINES = OrderLine._meta.db_table
ORDERS = Order._meta.db_table
PRODUCTS = Product._meta.db_table
CATEGORIES = MemberCategory._meta.db_table
RELATED = RelatedProduct._meta.db_table


class PreferenceCounts(NamedTuple):
    members: int  # members with at least one favourite category
    related: int  # (product, related product) rows kept


def _settings_int(name: str, default: int) -> int:
    value = int(getattr(settings, name, default))
    if value < 1:
        raise ValueError(f"{name} must be 1 or more")
    return value


# Each member's categories by net spend: the inner select nets every line of the window's orders
# (the order's named refunds summed with a window function, no second pass over the lines).
FAVOURITES_SQL = f"""
    SELECT member_id, rank, category, net_amount FROM (
        SELECT member_id, category, ROUND(SUM(net), 2) AS net_amount,
               ROW_NUMBER() OVER (PARTITION BY member_id ORDER BY SUM(net) DESC, category) AS rank
        FROM (
            SELECT o.member_id, p.category,
                   (l.amount - l.refunded_amount) * (o.amount - o.refunded_amount)
                   / NULLIF(o.amount - SUM(l.refunded_amount) OVER (PARTITION BY l.order_id), 0) AS net
            FROM {LINES} l
            JOIN {ORDERS} o ON o.id = l.order_id
            JOIN {PRODUCTS} p ON p.id = l.product_id
            WHERE o.paid_at > %(since)s AND o.paid_at <= %(until)s AND o.refunded_amount < o.amount
        ) lines
        GROUP BY member_id, category
        HAVING ROUND(SUM(net), 2) > 0
    ) ranked
    WHERE rank <= %(top)s
"""  # noqa: S608 (table names from the models; values are parameters)

# Who bought what (once per member and product), then pairs of one member's products.
RELATED_SQL = f"""
    WITH bought AS (
        SELECT DISTINCT o.member_id, l.product_id
        FROM {LINES} l
        JOIN {ORDERS} o ON o.id = l.order_id
        WHERE o.paid_at > %(since)s AND o.paid_at <= %(until)s AND o.refunded_amount < o.amount
          AND l.refunded_quantity < l.quantity AND l.refunded_amount < l.amount
    ),
    buyers AS (SELECT product_id, COUNT(*) AS n FROM bought GROUP BY product_id),
    everyone AS (SELECT COUNT(DISTINCT member_id) AS n FROM bought),
    pairs AS (
        SELECT a.product_id, b.product_id AS related_id, COUNT(*) AS support
        FROM bought a JOIN bought b ON b.member_id = a.member_id AND b.product_id <> a.product_id
        GROUP BY a.product_id, b.product_id
        HAVING COUNT(*) >= %(min_support)s
    ),
    scored AS (
        SELECT pairs.product_id, pairs.related_id, pairs.support,
               pairs.support::float8 * everyone.n / (ba.n::float8 * bb.n) AS lift
        FROM pairs
        JOIN buyers ba ON ba.product_id = pairs.product_id
        JOIN buyers bb ON bb.product_id = pairs.related_id
        CROSS JOIN everyone
    )
    SELECT product_id, rank, related_id, support, lift FROM (
        SELECT scored.*, ROW_NUMBER() OVER (
            PARTITION BY product_id ORDER BY lift DESC, support DESC, related_id
        ) AS rank
        FROM scored
    ) ranked
    WHERE rank <= %(top)s
"""  # noqa: S608


def _replace(cursor, *, table: str, key: tuple[str, str], values: tuple[str, ...], select_sql: str, params: dict, now):
    """Make ``table`` hold exactly the rows of ``select_sql`` (columns ``key + values``), writing
    only the rows that change. Three statements, whatever the number of rows."""
    columns = ", ".join((*key, *values))
    cursor.execute("DROP TABLE IF EXISTS preference_next")
    cursor.execute(f"CREATE TEMPORARY TABLE preference_next ON COMMIT DROP AS {select_sql}", params)
    cursor.execute(
        f"""DELETE FROM {table} t WHERE NOT EXISTS (
                SELECT 1 FROM preference_next n WHERE n.{key[0]} = t.{key[0]} AND n.{key[1]} = t.{key[1]})"""  # noqa: S608
    )
    changed = " OR ".join(f"{table}.{column} IS DISTINCT FROM EXCLUDED.{column}" for column in values)
    updates = ", ".join(f"{column} = EXCLUDED.{column}" for column in (*values, "computed_at"))
    cursor.execute(
        f"""INSERT INTO {table} ({columns}, computed_at)
            SELECT {columns}, %s FROM preference_next
            ON CONFLICT ({", ".join(key)}) DO UPDATE SET {updates} WHERE {changed}""",  # noqa: S608
        [now],
    )
    cursor.execute("DROP TABLE preference_next")


def product_preferences_recompute(
    *,
    now: dt.datetime | None = None,
    days: int = PREFERENCE_DAYS,
    min_support: int | None = None,
    top: int | None = None,
) -> PreferenceCounts:
    """Recompute every member's favourite categories and every product's related products as of
    ``now`` (default: now) over the last ``days`` days; see the module docstring. Returns the counts."""
    now = now or timezone.now()
    min_support = min_support or _settings_int("HUIYUAN_RELATED_PRODUCTS_MIN_SUPPORT", 3)
    top = top or _settings_int("HUIYUAN_RELATED_PRODUCTS_TOP", 5)
    window = {"since": now - dt.timedelta(days=days), "until": now}
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s, 0)", [LOCK_KEY])
        _replace(
            cursor,
            table=CATEGORIES,
            key=("member_id", "rank"),
            values=("category", "net_amount"),
            select_sql=FAVOURITES_SQL,
            params={**window, "top": FAVOURITE_CATEGORIES},
            now=now,
        )
        _replace(
            cursor,
            table=RELATED,
            key=("product_id", "rank"),
            values=("related_id", "support", "lift"),
            select_sql=RELATED_SQL,
            params={**window, "min_support": min_support, "top": top},
            now=now,
        )
        cursor.execute(
            f"SELECT (SELECT COUNT(*) FROM {CATEGORIES} WHERE rank = 1), (SELECT COUNT(*) FROM {RELATED})"  # noqa: S608
        )
        members, related = cursor.fetchone()
    return PreferenceCounts(members=members, related=related)
