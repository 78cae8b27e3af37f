"""Interactions: recording a batch of a member's events, and pruning old ones.

``interactions_record`` takes up to ``MAX_BATCH`` events of one member from one source: each has
the client's ``event_id`` (unique per member: a retried batch, or an event sent twice, is stored
once and counted as a duplicate), a kind the source may send (the mini-program: page views,
shares, check-ins, activities joined; a store: check-ins, services used, activities joined), a time
no more than ``FUTURE_TOLERANCE`` ahead and not older than the retention, and an optional short
detail. The batch is checked whole first (errors keyed ``events.<index>.<field>``): nothing of a bad
batch is stored. One ``INSERT … ON CONFLICT DO NOTHING RETURNING`` stores it.

Stored events are published (``interactions_recorded``, after commit), so that a scheme whose R
counts them refreshes the member's segment as after an order.

``interactions_prune`` deletes rows older than ``HUIYUAN_INTERACTION_KEEP_DAYS``, in chunks of
``PRUNE_CHUNK`` by id, each its own short statement (the BRIN index on ``occurred_at`` finds them).
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from members.events import interactions_recorded
from members.models import Interaction, Member, Store
from members.services.orders import FUTURE_TOLERANCE
from members.services.wallet import member_active_check

__all__ = [
    "KINDS_BY_SOURCE",
    "MAX_BATCH",
    "EventIn",
    "RecordedBatch",
    "interactions_prune",
    "interactions_record",
]

MAX_BATCH = 100
PRUNE_CHUNK = 10_000
Kind, Source = Interaction.Kind, Interaction.Source
KINDS_BY_SOURCE = {
    Source.MINI_PROGRAM: frozenset({Kind.PAGE_VIEW, Kind.SHARE, Kind.CHECK_IN, Kind.ACTIVITY_JOINED}),
    Source.POS: frozenset({Kind.CHECK_IN, Kind.SERVICE_USED, Kind.ACTIVITY_JOINED}),
}


@dataclass(frozen=True, slots=True)
class EventIn:
    event_id: str
    kind: int
    occurred_at: datetime
    detail: str = ""


@dataclass(frozen=True, slots=True)
class RecordedBatch:
    accepted: int  # stored now
    duplicates: int  # already stored (or sent twice in the batch)


def interactions_record(
    *, member: Member, events: Sequence[EventIn], source: int, store: Store | None = None
) -> RecordedBatch:
    """Store ``events`` of ``member`` from ``source`` (at ``store``), each once: see the module's doc."""
    member_active_check(member)
    rows = _checked(events, source=source)
    if not rows:
        return RecordedBatch(accepted=0, duplicates=0)
    now = timezone.now()
    values = ", ".join(["(%s, %s, %s, %s, %s, %s, %s, %s)"] * len(rows))
    params = []
    for event in rows.values():
        params += [member.pk, event.kind, source, event.occurred_at, now, store.pk if store else None]
        params += [event.event_id, event.detail]
    table = Interaction._meta.db_table
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            # The table name comes from the model, the placeholders from the batch's size; values are parameters.
            f"INSERT INTO {table} (member_id, kind, source, occurred_at, received_at, store_id, event_id, detail) "  # noqa: S608
            f"VALUES {values} ON CONFLICT (member_id, event_id) DO NOTHING RETURNING kind",
            params,
        )
        stored = cursor.fetchall()
        kinds = sorted({row[0] for row in stored})
        if stored:  # after commit: segmentation refreshes R when its scheme counts these kinds
            interactions_recorded.publish(member_id=member.pk, kinds=kinds)
    return RecordedBatch(accepted=len(stored), duplicates=len(events) - len(stored))


def _checked(events: Sequence[EventIn], *, source: int) -> dict[str, EventIn]:
    """The batch's events by id (the first of an id sent twice), or a ``ValidationError`` for all."""
    if len(events) > MAX_BATCH:
        raise ValidationError(
            {"events": ValidationError(_("At most %(max)s events per batch.") % {"max": MAX_BATCH}, code="max_length")}
        )
    now = timezone.now()
    oldest = now - timedelta(days=settings.HUIYUAN_INTERACTION_KEEP_DAYS)
    allowed = KINDS_BY_SOURCE[source]
    errors, rows = {}, {}
    for index, event in enumerate(events):
        problems = {}
        event_id = (event.event_id or "").strip()
        if not event_id:
            problems["event_id"] = ValidationError(_("An event id is required."), code="required")
        if event.kind not in allowed:
            problems["kind"] = ValidationError(
                _("This kind of event cannot be sent from here: %(kinds)s.")
                % {"kinds": ", ".join(Kind(kind).label for kind in sorted(allowed))},
                code="invalid_choice",
            )
        if event.occurred_at > now + FUTURE_TOLERANCE:
            problems["occurred_at"] = ValidationError(_("This time is in the future."), code="future")
        elif event.occurred_at < oldest:
            problems["occurred_at"] = ValidationError(
                _("Events older than %(days)s days are not kept.") % {"days": settings.HUIYUAN_INTERACTION_KEEP_DAYS},
                code="too_old",
            )
        if problems:
            errors[f"events.{index}"] = problems
        else:
            rows.setdefault(event_id, EventIn(event_id, event.kind, event.occurred_at, (event.detail or "")[:200]))
    if errors:
        raise ValidationError(
            {f"{prefix}.{field}": problem for prefix, problems in errors.items() for field, problem in problems.items()}
        )
    return rows


def interactions_prune(*, keep_days: int | None = None, now: datetime | None = None) -> int:
    """Delete interactions that occurred more than ``keep_days`` ago (default: the setting), in chunks.
    Returns how many were deleted. Safe to run twice at once (each deletes what is still there)."""
    keep_days = settings.HUIYUAN_INTERACTION_KEEP_DAYS if keep_days is None else keep_days
    cutoff = (now or timezone.now()) - timedelta(days=keep_days)
    deleted = 0
    while True:
        ids = list(
            Interaction.objects.filter(occurred_at__lt=cutoff).order_by().values_list("id", flat=True)[:PRUNE_CHUNK]
        )
        if not ids:
            return deleted
        deleted += Interaction.objects.filter(id__in=ids).delete()[0]
