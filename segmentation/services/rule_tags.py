"""Rule tags, computed set-based in the nightly run: ``rule_tags_recompute``.

Each active ``members.TagRule`` gives its tag to the members who qualify as of ``now`` (the brand's
local date for months and weekdays) and takes it off those who no longer do; an inactive or deleted
rule's tags go. Per rule, one ``SELECT`` into a temporary table of (member, tag) and two statements
that make the rule's ``MemberTag`` rows equal to it — delete what is no longer there, insert what is
new with ``ON CONFLICT DO NOTHING`` — so the number of queries depends on the rules, never on
members or orders, and rows that do not change are not written (the audit trail and the caches see
only changes). A manual tag of the same name is kept as it is: the insert skips it and the delete
touches only the rule's own rows.

What qualifies (orders count when paid in the last ``window_days`` days and not refunded in full;
an order's amount is net of refunds):

- **birthday month** (生日月) — active members whose birthday falls in the current month;
- **high average order** (高客单) — at least ``min_orders`` orders whose average amount is at least
  ``average_at_least``;
- **weekend** (周末客) — at least ``min_orders`` orders, of which at least ``weekend_share_at_least``
  per cent were paid on a Saturday or Sunday;
- **favourite category** — the member's favourite category of the nightly product preference
  (``MemberCategory`` rank 1), as the rule's name followed by the category (偏好· + 果茶), cut to
  the tag length, with , ; | replaced (they separate tags).

Scheduled after the product preference (``segmentation.tasks.rule_tags_task``); one advisory lock
per run, so two runs never interleave; a second run finds nothing to change.
"""

from __future__ import annotations

import datetime as dt
from typing import NamedTuple

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from members.advisory_locks import namespace_key
from members.models import Member, MemberTag, Order, TagRule
from members.models.tags import TAG_NAME_MAX_LENGTH
from segmentation.models import MemberCategory

__all__ = ["RuleTagCounts", "rule_tags_recompute"]

LOCK_KEY = namespace_key("segmentation.rule_tags")
TAGS = MemberTag._meta.db_table
MEMBERS = Member._meta.db_table
ORDERS = Order._meta.db_table
CATEGORIES = MemberCategory._meta.db_table
RULES = TagRule._meta.db_table
Kind = TagRule.Kind

# The orders of the window per member, net of refunds; weekdays in the brand's time zone.
_ORDER_STATS = f"""
    SELECT o.member_id, COUNT(*) AS orders, AVG(o.amount - o.refunded_amount) AS average,
           COUNT(*) FILTER (WHERE EXTRACT(ISODOW FROM o.paid_at AT TIME ZONE %(tz)s) IN (6, 7)) AS weekend
    FROM {ORDERS} o
    WHERE o.paid_at > %(since)s AND o.paid_at <= %(until)s AND o.refunded_amount < o.amount
    GROUP BY o.member_id
"""  # noqa: S608 (table names from the models; values are parameters)

QUALIFYING_SQL = {
    Kind.BIRTHDAY_MONTH: f"""
        SELECT m.id AS member_id, %(name)s::varchar AS name FROM {MEMBERS} m
        WHERE m.is_active AND EXTRACT(MONTH FROM m.birthday) = %(month)s
    """,  # noqa: S608
    Kind.HIGH_AVERAGE_ORDER: f"""
        SELECT s.member_id, %(name)s::varchar AS name FROM ({_ORDER_STATS}) s
        WHERE s.orders >= %(min_orders)s AND s.average >= %(average)s
    """,  # noqa: S608
    Kind.WEEKEND: f"""
        SELECT s.member_id, %(name)s::varchar AS name FROM ({_ORDER_STATS}) s
        WHERE s.orders >= %(min_orders)s AND s.weekend * 100 >= %(share)s * s.orders
    """,  # noqa: S608
    Kind.FAVOURITE_CATEGORY: f"""
        SELECT c.member_id,
               LEFT(%(name)s || TRANSLATE(c.category, ',，;；|', '     '), {TAG_NAME_MAX_LENGTH})::varchar AS name
        FROM {CATEGORIES} c
        WHERE c.rank = 1 AND TRIM(c.category) <> ''
    """,  # noqa: S608
}


class RuleTagCounts(NamedTuple):
    rules: int  # active rules computed
    added: int  # tags given
    removed: int  # tags taken off (members who no longer qualify, inactive or renamed rules)


def _sync_rule(cursor, rule: TagRule, *, now: dt.datetime) -> tuple[int, int, int]:
    """Make ``rule``'s tags equal to the members who qualify. Returns (added, removed, members)."""
    params = {
        "name": rule.name,
        "month": timezone.localdate(now).month,
        "since": now - dt.timedelta(days=rule.window_days),
        "until": now,
        "tz": settings.TIME_ZONE,
        "min_orders": rule.min_orders,
        "average": rule.average_at_least,
        "share": rule.weekend_share_at_least,
    }
    cursor.execute("DROP TABLE IF EXISTS rule_tags_next")
    cursor.execute(
        f"CREATE TEMPORARY TABLE rule_tags_next ON COMMIT DROP AS {QUALIFYING_SQL[rule.kind]}",
        params,
    )
    cursor.execute(
        f"""DELETE FROM {TAGS} t WHERE t.rule_id = %s AND NOT EXISTS (
                SELECT 1 FROM rule_tags_next n WHERE n.member_id = t.member_id AND n.name = t.name)""",  # noqa: S608
        [rule.pk],
    )
    removed = cursor.rowcount
    cursor.execute(
        f"""INSERT INTO {TAGS} (member_id, name, rule_id, added_by_id, created_at, updated_at)
            SELECT member_id, name, %s, NULL, %s, %s FROM rule_tags_next
            ON CONFLICT (member_id, name) DO NOTHING""",  # noqa: S608
        [rule.pk, now, now],
    )
    added = cursor.rowcount
    cursor.execute(f"SELECT COUNT(*) FROM {TAGS} WHERE rule_id = %s", [rule.pk])  # noqa: S608
    members = cursor.fetchone()[0]
    cursor.execute("DROP TABLE rule_tags_next")
    return added, removed, members


def rule_tags_recompute(*, now: dt.datetime | None = None) -> RuleTagCounts:
    """Recompute every rule's tags as of ``now`` (default: now); see the module docstring."""
    now = now or timezone.now()
    added = removed = 0
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s, 0)", [LOCK_KEY])
        cursor.execute(
            f"DELETE FROM {TAGS} t USING {RULES} r WHERE r.id = t.rule_id AND NOT r.is_active"  # noqa: S608
        )
        removed += cursor.rowcount
        rules = list(TagRule.objects.filter(is_active=True).order_by("pk"))
        for rule in rules:
            rule_added, rule_removed, members = _sync_rule(cursor, rule, now=now)
            added, removed = added + rule_added, removed + rule_removed
            TagRule.objects.filter(pk=rule.pk).update(member_count=members, computed_at=now)
        TagRule.objects.filter(is_active=False).exclude(member_count=0).update(member_count=0)
    return RuleTagCounts(rules=len(rules), added=added, removed=removed)
