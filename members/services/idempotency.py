"""The API's idempotency records (``ApiIdempotencyRecord``, written by ``members.apis.idempotency``):
kept ``HUIYUAN_IDEMPOTENCY_KEEP_DAYS`` days, then purged daily (``idempotency_records_purge_task``)."""

from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from members.models import ApiIdempotencyRecord

PURGE_CHUNK = 10_000


def idempotency_records_purge(*, older_than: timedelta | None = None) -> int:
    """Delete the records created more than ``older_than`` ago (default: the setting), in chunks of
    ``PURGE_CHUNK`` rows, each its own short statement; returns how many were deleted."""
    if older_than is None:
        older_than = timedelta(days=settings.HUIYUAN_IDEMPOTENCY_KEEP_DAYS)
    cutoff = timezone.now() - older_than
    deleted = 0
    while True:
        ids = list(
            ApiIdempotencyRecord.objects.filter(created_at__lt=cutoff)
            .order_by("created_at")
            .values_list("id", flat=True)[:PURGE_CHUNK]
        )
        if not ids:
            return deleted
        deleted += ApiIdempotencyRecord.objects.filter(id__in=ids).delete()[0]
