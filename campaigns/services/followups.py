"""Follow-up tasks for store staff: create (idempotent), add by hand, complete, cancel.

``followup_create`` is the path of triggers and campaigns: idempotent on the caller's
``dedupe_key``. ``followup_add_by_hand`` is the staff's (the admin's "add"): every call is a new
task. Both give the task to the member's home store when no store is chosen.

``followup_complete`` records what came of a task: a ``FollowUpResult`` (called, reached, visited,
declined — what the member 360's form asks) and/or a note. The result is written at the head of
the task's ``outcome`` text in the brand's language (``settings.LANGUAGE_CODE``), so every list
and export reads the same words whoever recorded it.
"""

from __future__ import annotations

import datetime as dt
import uuid

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone, translation
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from campaigns.models import FollowUpTask
from members.models import Member, Store

Status = FollowUpTask.Status


class FollowUpResult(models.TextChoices):
    """What came of contacting the member."""

    CALLED = "called", pgettext_lazy("follow-up result", "Called, not reached")
    REACHED = "reached", pgettext_lazy("follow-up result", "Reached")
    VISITED = "visited", pgettext_lazy("follow-up result", "Came to the store")
    DECLINED = "declined", pgettext_lazy("follow-up result", "Declined")


def followup_create(
    *,
    member: Member,
    reason: str,
    due_date: dt.date,
    dedupe_key: str,
    store: Store | None = None,
    assignee=None,
    campaign=None,
) -> FollowUpTask:
    """A task for ``store``'s staff (default: the member's home store), in the current transaction.

    Idempotent on ``dedupe_key``: a second call returns the first task unchanged
    (``INSERT ... ON CONFLICT DO NOTHING``, then read).
    """
    if not dedupe_key:
        raise ValidationError({"dedupe_key": _("A deduplication key is required.")})
    reason = (reason or "").strip()[:200]
    if not reason:
        raise ValidationError({"reason": _("Say why the member should be contacted.")})
    FollowUpTask.objects.bulk_create(
        [
            FollowUpTask(
                member=member,
                store=store if store is not None else member.home_store,
                assignee=assignee,
                reason=reason,
                due_date=due_date,
                campaign=campaign,
                dedupe_key=dedupe_key,
            )
        ],
        ignore_conflicts=True,
    )
    return FollowUpTask.objects.get(dedupe_key=dedupe_key)


def followup_add_by_hand(
    *,
    member: Member,
    reason: str,
    due_date: dt.date,
    store: Store | None = None,
    assignee=None,
    campaign=None,
) -> FollowUpTask:
    """A task a staff member adds themselves: never a duplicate of another (its key is new)."""
    return followup_create(
        member=member,
        reason=reason,
        due_date=due_date,
        dedupe_key=f"admin:{uuid.uuid4()}",
        store=store,
        assignee=assignee,
        campaign=campaign,
    )


def followup_complete(*, task: FollowUpTask, outcome: str, actor, result: str = "") -> FollowUpTask:
    """Mark an open task done with what came of it: ``result`` (a ``FollowUpResult``, optional)
    and the ``outcome`` note. Completing a done task again changes nothing; a cancelled task cannot
    be completed. One conditional UPDATE, so two clicks cannot both win."""
    outcome = (outcome or "").strip()
    if result:
        if result not in FollowUpResult.values:
            raise ValidationError({"result": _("Choose what came of it.")})
        with translation.override(settings.LANGUAGE_CODE):
            label = str(FollowUpResult(result).label)
        outcome = f"{label}: {outcome}" if outcome else label
    now = timezone.now()
    updated = FollowUpTask.objects.filter(pk=task.pk, status=Status.OPEN).update(
        status=Status.DONE,
        outcome=outcome,
        completed_at=now,
        completed_by=actor if getattr(actor, "pk", None) else None,
        updated_at=now,
    )
    task.refresh_from_db()
    if not updated and task.status == Status.CANCELLED:
        raise ValidationError(_("This task was cancelled."))
    return task


def followup_cancel(*, task: FollowUpTask, actor, note: str = "") -> FollowUpTask:
    """Cancel an open task (the member came back by themselves, or left for good)."""
    now = timezone.now()
    updated = FollowUpTask.objects.filter(pk=task.pk, status=Status.OPEN).update(
        status=Status.CANCELLED,
        outcome=(note or "").strip(),
        completed_at=now,
        completed_by=actor if getattr(actor, "pk", None) else None,
        updated_at=now,
    )
    task.refresh_from_db()
    if not updated and task.status == Status.DONE:
        raise ValidationError(_("This task is already done."))
    return task
