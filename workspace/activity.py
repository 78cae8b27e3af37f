"""Activity metrics for operators (issue #19): daily and weekly active members and the retention of
new members, overall and per segment, read live in a few set-based statements.

Definitions (the report page and the dashboard card say the same in words):

- **Active** on a day: the member paid an order that day that was not refunded in full, *or* had
  any interaction that day (``members.Interaction``: page view, share, check-in/签到, service used,
  activity joined — every kind counts, whichever the scheme lets R count). Days are calendar days
  in ``settings.TIME_ZONE``. **DAU** is the number of members active on a day; **WAU** the number
  active on at least one day of a calendar week (Monday to Sunday) — a member active on three days
  of a week counts once in its WAU.
- **New members** of day D: the members who *registered* on D (``Member.registered_at``). The
  registration is the first contact the product records for every member, whatever the channel; a
  member imported with an old registration date is not new.
- **Retention** of D's new members: *next-day* (次日留存) — active on D + 1; *7-day* — active on
  at least one day from D + 1 to D + 7; *30-day* — from D + 1 to D + 30. Activity on the day of
  registration itself does not count. A cohort's figure is shown once its last day has been
  observed (read live: once it has begun, today counting as far as it has gone; from the rollup:
  up to yesterday); before that it is None. The rate over a period of N days adds the retained
  and the new members of the N latest cohorts whose figure is shown — for the next-day rate the N
  days up to the day before the last observed one, for the 30-day rate the N days ending 30 days
  before it — so that every rate is complete and the 30-day one is not empty (``cohorts``).
- **Per segment**: the member's *current* segment (``MemberRfm``, as the member list filters);
  members without a current result are counted under None ("no segment").

Cost: read live (``daily_active``, ``weekly_active``, ``retention``: one statement each), orders
go through ``order_paid_at`` (by day) and ``order_member_paid_at_cover`` (per cohort member),
interactions through their BRIN index on ``occurred_at`` and their unique (member, event id) index —
still seconds to tens of seconds at a few million interactions a month (``bench/activity.py``:
200,000 members, 1,000,000 orders and 6,000,000 interactions over 90 days: 30 days of DAU 4 s,
12 weeks of WAU 12 s, 30 days of cohorts 7 s). So the pages, the dashboard and the API read
``activity_report``: the nightly rollup (``workspace.activity_rollup``, the same statements over
the days that ended; 4 s a night) and today's DAU live — 0.2 s in all; the dashboard also keeps the
card's figures in the cache for ``CACHE_SECONDS``. Nothing here writes.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.db.models import Q
from django.utils import timezone

from members.models import Interaction, Member, Order
from members.money import ratio
from segmentation.models import MemberRfm
from workspace.models import ActivityRollup, RetentionRollup

DEFAULT_DAYS = 30
DEFAULT_WEEKS = 12
MAX_DAYS = 366
MAX_WEEKS = 104
RETENTION_DAYS = (1, 7, 30)
CACHE_SECONDS = 10 * 60

_ORDER = Order._meta.db_table
_INTERACTION = Interaction._meta.db_table
_MEMBER = Member._meta.db_table
_RFM = MemberRfm._meta.db_table


def _day_start(day: dt.date) -> dt.datetime:
    return timezone.make_aware(dt.datetime.combine(day, dt.time.min), timezone.get_default_timezone())


@dataclass
class Bucket:
    """One day (or week, starting on its Monday) of the series: active members, in all and per
    current segment id (None: no segment)."""

    start: dt.date
    active: int = 0
    by_segment: dict = field(default_factory=dict)


def _active_sql(unit: str) -> str:
    """Active members per (day or week, current segment) between ``%(start)s`` and ``%(end)s``.
    The UNION removes a member's repeated activities of a day before anything is counted."""
    counted = "COUNT(*)" if unit == "day" else "COUNT(DISTINCT a.member_id)"
    return f"""
        WITH acts AS (
            SELECT o.member_id, CAST(o.paid_at AT TIME ZONE %(tz)s AS DATE) AS day
            FROM {_ORDER} o
            WHERE o.paid_at >= %(start)s AND o.paid_at < %(end)s AND o.refunded_amount < o.amount
            UNION
            SELECT i.member_id, CAST(i.occurred_at AT TIME ZONE %(tz)s AS DATE) AS day
            FROM {_INTERACTION} i
            WHERE i.occurred_at >= %(start)s AND i.occurred_at < %(end)s
        )
        SELECT CAST(date_trunc('{unit}', a.day) AS DATE) AS bucket, r.segment_id, {counted}
        FROM acts a LEFT JOIN {_RFM} r ON r.member_id = a.member_id
        GROUP BY 1, 2
    """  # noqa: S608


def _series(unit: str, first: dt.date, last: dt.date, step: int, *, until: dt.date | None = None) -> list[Bucket]:
    """Buckets from ``first`` to ``last`` (their starts), counting activity before ``until`` (a
    day; by default the end of the last bucket)."""
    buckets = {}
    day = first
    while day <= last:  # one bucket per day or week of the range, empty ones too
        buckets[day] = Bucket(start=day)
        day += dt.timedelta(days=step)
    params = {
        "tz": settings.TIME_ZONE,
        "start": _day_start(first),
        "end": _day_start(min(until or last + dt.timedelta(days=step), last + dt.timedelta(days=step))),
    }
    with connection.cursor() as cursor:
        cursor.execute(_active_sql(unit), params)
        for start, segment_id, n in cursor.fetchall():
            bucket = buckets.get(start)
            if bucket is None:
                continue
            bucket.active += n
            bucket.by_segment[segment_id] = bucket.by_segment.get(segment_id, 0) + n
    return list(buckets.values())


def daily_active(*, days: int = DEFAULT_DAYS, today: dt.date | None = None) -> list[Bucket]:
    """DAU for each of the last ``days`` days, today included (so far), oldest first."""
    today = today or timezone.localdate()
    return _series("day", today - dt.timedelta(days=days - 1), today, 1)


def weekly_active(*, weeks: int = DEFAULT_WEEKS, today: dt.date | None = None) -> list[Bucket]:
    """WAU for each of the last ``weeks`` calendar weeks (Monday first), this week included (so far)."""
    today = today or timezone.localdate()
    monday = today - dt.timedelta(days=today.weekday())
    return _series("week", monday - dt.timedelta(weeks=weeks - 1), monday, 7)


_RETENTION_SQL = f"""
    WITH cohort AS (
        SELECT m.id AS member_id, CAST(m.registered_at AT TIME ZONE %(tz)s AS DATE) AS day, r.segment_id
        FROM {_MEMBER} m LEFT JOIN {_RFM} r ON r.member_id = m.id
        WHERE m.registered_at >= %(start)s AND m.registered_at < %(end)s
    )
    SELECT c.day, c.segment_id, COUNT(*),
           COUNT(*) FILTER (WHERE back.first_day = c.day + 1),
           COUNT(*) FILTER (WHERE back.first_day <= c.day + 7),
           COUNT(*) FILTER (WHERE back.first_day <= c.day + 30)
    FROM cohort c
    LEFT JOIN LATERAL (
        SELECT MIN(x.day) AS first_day FROM (
            SELECT CAST(MIN(o.paid_at) AT TIME ZONE %(tz)s AS DATE) AS day
            FROM {_ORDER} o
            WHERE o.member_id = c.member_id AND o.refunded_amount < o.amount
              AND o.paid_at >= CAST(c.day + 1 AS TIMESTAMP) AT TIME ZONE %(tz)s
              AND o.paid_at < CAST(c.day + 31 AS TIMESTAMP) AT TIME ZONE %(tz)s AND o.paid_at < %(until)s
            UNION ALL
            SELECT CAST(MIN(i.occurred_at) AT TIME ZONE %(tz)s AS DATE)
            FROM {_INTERACTION} i
            WHERE i.member_id = c.member_id
              AND i.occurred_at >= CAST(c.day + 1 AS TIMESTAMP) AT TIME ZONE %(tz)s
              AND i.occurred_at < CAST(c.day + 31 AS TIMESTAMP) AT TIME ZONE %(tz)s AND i.occurred_at < %(until)s
        ) x
    ) back ON TRUE
    GROUP BY c.day, c.segment_id
"""  # noqa: S608 — the first day back after registration decides all three figures


@dataclass
class Cohort:
    """The new members of one day (or of one segment over the period) and how many came back:
    ``retained[n]`` for n in ``RETENTION_DAYS``, None while the cohort's day + n has not begun."""

    key: object  # the day, or the segment id
    new: int = 0
    retained: dict = field(default_factory=dict)
    observed: dict = field(default_factory=dict)  # n → new members whose +n figure is shown

    def rate(self, n: int) -> Decimal | None:
        if self.retained.get(n) is None:
            return None
        return ratio(self.retained[n], self.observed[n])


def retention_rows(*, first: dt.date, last: dt.date, observed_until: dt.date) -> list[tuple]:
    """``(day, segment id, new, back next day, back within 7, back within 30)`` for the members who
    registered from ``first`` to ``last``, counting activity up to the end of ``observed_until``."""
    params = {
        "tz": settings.TIME_ZONE,
        "start": _day_start(first),
        "end": _day_start(last + dt.timedelta(days=1)),
        "until": _day_start(observed_until + dt.timedelta(days=1)),
    }
    with connection.cursor() as cursor:
        cursor.execute(_RETENTION_SQL, params)
        return cursor.fetchall()


def cohort_span(days: int) -> int:
    """How many registration days a report of ``days`` days reads: each rate covers ``days``
    days of cohorts, the 30-day one the ``days`` days that ended 30 days before the others'."""
    return days + max(RETENTION_DAYS)


def retention(*, days: int = DEFAULT_DAYS, today: dt.date | None = None) -> dict:
    """Retention read live, counting activity up to now (today included): see ``cohorts``."""
    today = today or timezone.localdate()
    first, last = today - dt.timedelta(days=cohort_span(days)), today - dt.timedelta(days=1)
    rows = retention_rows(first=first, last=last, observed_until=today)
    return cohorts(rows, first=first, last=last, days=days, observed_until=today)


def cohorts(rows, *, first: dt.date, last: dt.date, days: int, observed_until: dt.date) -> dict:
    """``retention_rows``' rows (or the rollup's) as ``Cohort``s: per registration day from
    ``first`` to ``last`` (a +n figure shown once day + n is at most ``observed_until``), and per
    segment and in all, where each rate covers the ``days`` latest registration days whose +n
    figure is shown — the next-day rate the days up to ``observed_until`` − 1, the 30-day rate
    those up to ``observed_until`` − 30 — and ``new`` counts the members registered in the
    ``days`` days up to ``last``."""
    span = (last - first).days + 1
    by_day = {first + dt.timedelta(days=i): Cohort(key=first + dt.timedelta(days=i)) for i in range(span)}
    rows = [row for row in rows if row[0] in by_day]
    by_segment: dict = {}
    total = Cohort(key="total")
    newest = last - dt.timedelta(days=days)
    for day, segment_id, new, *back in rows:
        segment = by_segment.setdefault(segment_id, Cohort(key=segment_id))
        cohort = by_day[day]
        cohort.new += new
        if day > newest:
            segment.new += new
            total.new += new
        for n, kept in zip(RETENTION_DAYS, back, strict=True):
            observable = observed_until - dt.timedelta(days=n)
            if day > observable:
                continue
            cohort.retained[n] = cohort.retained.get(n, 0) + kept
            cohort.observed[n] = cohort.observed.get(n, 0) + new
            if day > observable - dt.timedelta(days=days):
                for group in (segment, total):
                    group.retained[n] = group.retained.get(n, 0) + kept
                    group.observed[n] = group.observed.get(n, 0) + new
    for cohort in by_day.values():  # a cohort without new members: 0 of 0 once observable
        for n in RETENTION_DAYS:
            if cohort.key + dt.timedelta(days=n) <= observed_until:
                cohort.retained.setdefault(n, 0)
                cohort.observed.setdefault(n, 0)
    return {"first": first, "last": last, "days": list(by_day.values()), "segments": by_segment, "total": total}


def live_activity_report(*, days: int = DEFAULT_DAYS, weeks: int = DEFAULT_WEEKS, today: dt.date | None = None) -> dict:
    """DAU, WAU and retention read live from orders and interactions (three statements; seconds
    at scale — what the nightly rollup runs, and what tests compare it with)."""
    today = today or timezone.localdate()
    return {
        "today": today,
        "days": days,
        "weeks": weeks,
        "daily": daily_active(days=days, today=today),
        "weekly": weekly_active(weeks=weeks, today=today),
        "retention": retention(days=days, today=today),
        "rolled_up_at": None,
    }


def activity_report(*, days: int = DEFAULT_DAYS, weeks: int = DEFAULT_WEEKS, today: dt.date | None = None) -> dict:
    """What the report page, the dashboard and the API show, in four small statements: the days
    and weeks that have ended and the cohorts from the nightly rollup (``workspace.models``), and
    today's DAU read live (one day of orders and interactions). The current week counts its
    days up to yesterday; retention counts activity up to the rollup's last day."""
    today = today or timezone.localdate()
    yesterday = today - dt.timedelta(days=1)
    first_day = today - dt.timedelta(days=days - 1)
    monday = today - dt.timedelta(days=today.weekday())
    first_week = monday - dt.timedelta(weeks=weeks - 1)
    daily = {first_day + dt.timedelta(days=i): Bucket(start=first_day + dt.timedelta(days=i)) for i in range(days)}
    weekly = {
        first_week + dt.timedelta(weeks=i): Bucket(start=first_week + dt.timedelta(weeks=i)) for i in range(weeks)
    }
    stamps = []
    rows = ActivityRollup.objects.filter(
        Q(period=ActivityRollup.Period.DAY, start__gte=first_day, start__lte=yesterday)
        | Q(period=ActivityRollup.Period.WEEK, start__gte=first_week, start__lte=monday)
    ).values_list("period", "start", "segment_id", "active", "computed_at")
    for period, start, segment_id, active, computed_at in rows:
        bucket = (daily if period == ActivityRollup.Period.DAY else weekly).get(start)
        if bucket is not None:
            bucket.active += active
            bucket.by_segment[segment_id] = bucket.by_segment.get(segment_id, 0) + active
            stamps.append(computed_at)
    daily[today] = _series("day", today, today, 1)[0]
    first_cohort = today - dt.timedelta(days=cohort_span(days))
    kept = list(
        RetentionRollup.objects.filter(day__gte=first_cohort, day__lte=yesterday).values_list(
            "day",
            "segment_id",
            "new_members",
            "retained_1",
            "retained_7",
            "retained_30",
            "observed_until",
            "computed_at",
        )
    )
    observed_until = max((row[6] for row in kept), default=yesterday)
    stamps += [row[7] for row in kept]
    return {
        "today": today,
        "days": days,
        "weeks": weeks,
        "daily": list(daily.values()),
        "weekly": list(weekly.values()),
        "retention": cohorts(
            [row[:6] for row in kept], first=first_cohort, last=yesterday, days=days, observed_until=observed_until
        ),
        "rolled_up_at": max(stamps, default=None),
    }


def dashboard_activity(*, run_id: int | None = None) -> dict:
    """The dashboard card's figures (the last ``DEFAULT_DAYS`` days and ``DEFAULT_WEEKS`` weeks),
    kept in the cache for up to ``CACHE_SECONDS`` — within a ten-minute slot, and afresh when the
    current run (``run_id``, which decides the segments) changes."""
    now = timezone.now()
    today = timezone.localdate(now)
    slot = int(now.timestamp()) // CACHE_SECONDS
    key = f"workspace:dashboard:activity:{today.isoformat()}:{run_id}:{slot}"
    data = cache.get(key)
    if data is None:
        data = activity_report(days=DEFAULT_DAYS, weeks=DEFAULT_WEEKS, today=today)
        cache.set(key, data, CACHE_SECONDS)
    return data
