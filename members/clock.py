"""The moment a periodic task acts as of.

Scheduled tasks run "now", but an operator (or a test) may replay one as of an earlier or later
time: the task takes that time as an ISO 8601 string (ids and strings only cross the broker), and
``task_moment`` turns it into an aware datetime.
"""

from datetime import datetime

from django.utils import timezone


def task_moment(as_of: str | None) -> datetime:
    """``as_of`` (ISO 8601; naive means the brand's time zone) or now."""
    moment = datetime.fromisoformat(as_of) if as_of else timezone.now()
    return timezone.make_aware(moment) if timezone.is_naive(moment) else moment
