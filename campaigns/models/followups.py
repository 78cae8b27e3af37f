"""Follow-up tasks: the staff to-do list ("call this member, they used to buy every week").

Created by triggers and campaigns (``campaigns.services.followups.followup_create``), idempotent
on ``dedupe_key``; worked through in the admin by the staff of the member's home store.
"""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from members.models import Member, Store, TimeStampedModel

__all__ = ["FollowUpTask"]


class FollowUpTask(TimeStampedModel):
    class Status(models.TextChoices):
        OPEN = "open", _("Open")
        DONE = "done", _("Done")
        CANCELLED = "cancelled", _("Cancelled")

    member = models.ForeignKey(Member, verbose_name=_("member"), on_delete=models.CASCADE, related_name="followups")
    store = models.ForeignKey(
        Store,
        verbose_name=_("store"),
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="followups",
        help_text=_("Whose staff follows up; the member's home store by default."),
    )
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("assignee"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="followups",
    )
    reason = models.CharField(_("reason"), max_length=200)
    due_date = models.DateField(_("due date"))
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.OPEN)
    outcome = models.TextField(_("outcome"), blank=True)
    completed_at = models.DateTimeField(_("completed at"), null=True, blank=True)
    completed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("completed by"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    campaign = models.ForeignKey(
        "campaigns.Campaign",
        verbose_name=_("campaign"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="followups",
    )
    dedupe_key = models.CharField(_("deduplication key"), max_length=200, unique=True)

    class Meta:
        ordering = ["due_date", "id"]
        verbose_name = _("follow-up task")
        verbose_name_plural = _("follow-up tasks")
        indexes = [
            models.Index(fields=["store", "status", "due_date"], name="followup_store_status_due"),
            models.Index(fields=["assignee", "status", "due_date"], name="followup_assignee_status_due"),
            models.Index(fields=["status", "due_date"], name="followup_status_due"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(status="open") | Q(completed_at__isnull=False), name="followup_closed_has_time"
            ),
        ]

    def __str__(self):
        return f"{self.reason} — {self.member_id} ({self.get_status_display()})"
