"""The nightly rollup of the activity metrics (``workspace.models``; issue #19).

``activity_rollup(days=2)`` rewrites, for the ``days`` days that ended last (yesterday and the day
before by default, so that events the tills send late are counted the next night):

- each day's active members per segment (``workspace.activity.daily_active``'s statement);
- each calendar week touching those days, counting its days up to yesterday;
- the cohorts of new members of those days and of the 30 days before them — their 7- and 30-day
  figures change until their 30th day has passed.

Everything is written by the same set-based statements the live reads use, the old rows of the
range deleted and the new ones inserted in one transaction under an advisory lock: running it twice
(or two beats at once) leaves the same rows; the second waits for nothing and skips. The segment is
the members' current segment when the rollup runs. ``python manage.py rollup_activity --days 90``
fills the history after a first install.
"""

from __future__ import annotations

import datetime as dt

from django.db import transaction
from django.utils import timezone

from members.advisory_locks import namespace_key, try_xact_lock
from workspace import activity
from workspace.models import ActivityRollup, RetentionRollup

LOCK = namespace_key("workspace.activity_rollup")


def activity_rollup(*, days: int = 2, today: dt.date | None = None) -> dict:
    """Rewrite the rollup for the ``days`` days before ``today``; the counts of rows written (or
    ``{"skipped": True}`` while another rollup holds the lock)."""
    today = today or timezone.localdate()
    last = today - dt.timedelta(days=1)
    first = today - dt.timedelta(days=days)
    first_monday = first - dt.timedelta(days=first.weekday())
    last_monday = last - dt.timedelta(days=last.weekday())
    first_cohort = first - dt.timedelta(days=max(activity.RETENTION_DAYS))
    now = timezone.now()
    with transaction.atomic():
        if not try_xact_lock(LOCK):
            return {"skipped": True}
        day_rows = _rollup_rows(ActivityRollup.Period.DAY, activity._series("day", first, last, 1), now)
        week_rows = _rollup_rows(
            ActivityRollup.Period.WEEK, activity._series("week", first_monday, last_monday, 7, until=today), now
        )
        ActivityRollup.objects.filter(period=ActivityRollup.Period.DAY, start__gte=first, start__lte=last).delete()
        ActivityRollup.objects.filter(
            period=ActivityRollup.Period.WEEK, start__gte=first_monday, start__lte=last_monday
        ).delete()
        ActivityRollup.objects.bulk_create(day_rows + week_rows)
        cohorts = [
            RetentionRollup(
                day=day,
                segment_id=segment_id,
                new_members=new,
                retained_1=back_1,
                retained_7=back_7,
                retained_30=back_30,
                observed_until=last,
                computed_at=now,
            )
            for day, segment_id, new, back_1, back_7, back_30 in activity.retention_rows(
                first=first_cohort, last=last, observed_until=last
            )
        ]
        RetentionRollup.objects.filter(day__gte=first_cohort, day__lte=last).delete()
        RetentionRollup.objects.bulk_create(cohorts)
    return {"days": len(day_rows), "weeks": len(week_rows), "cohorts": len(cohorts)}


def _rollup_rows(period: str, buckets: list, now: dt.datetime) -> list[ActivityRollup]:
    """One row per bucket and segment with active members (a bucket without any has no row)."""
    return [
        ActivityRollup(period=period, start=bucket.start, segment_id=segment_id, active=active, computed_at=now)
        for bucket in buckets
        for segment_id, active in bucket.by_segment.items()
    ]
