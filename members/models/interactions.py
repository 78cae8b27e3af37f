"""Interactions (关键互动): what a member does besides paying — a page viewed in the mini-program, a
share, a check-in (签到), a service used or an activity joined at a store (seed 001 lets R count
some of them; seeds 001 and 002 measure 活跃度 by them).

Tens of millions a month must stay cheap, so a row is compact: small-integer ``kind`` and
``source``, no ``updated_at``, a short ``detail``; the member's events are found through the
``(member, event_id)`` unique index (member first), periods through a BRIN index on
``occurred_at`` (a few pages for a whole table, as rows arrive in time order). Rows older than
``HUIYUAN_INTERACTION_KEEP_DAYS`` are pruned daily (``members.services.interactions``).

``event_id`` is the client's id of the event: the same event sent twice (a retried batch) is
stored once.
"""

from django.contrib.postgres.indexes import BrinIndex
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from members.models.core import Member, Store

__all__ = ["Interaction"]


class Interaction(models.Model):
    class Kind(models.IntegerChoices):
        PAGE_VIEW = 1, _("Page view")
        SHARE = 2, _("Share")
        CHECK_IN = 3, _("Check-in")
        SERVICE_USED = 4, _("Service used")
        ACTIVITY_JOINED = 5, _("Activity joined")

    class Source(models.IntegerChoices):
        MINI_PROGRAM = 1, _("Mini-program")
        POS = 2, _("Store (POS)")

    id = models.BigAutoField(primary_key=True)
    member = models.ForeignKey(
        Member, verbose_name=_("member"), on_delete=models.PROTECT, related_name="interactions", db_index=False
    )
    kind = models.PositiveSmallIntegerField(_("kind"), choices=Kind.choices)
    source = models.PositiveSmallIntegerField(_("source"), choices=Source.choices)
    occurred_at = models.DateTimeField(_("occurred at"))
    received_at = models.DateTimeField(_("received at"), default=timezone.now)
    store = models.ForeignKey(
        Store,
        verbose_name=_("store"),
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        db_index=False,
    )
    event_id = models.CharField(_("event id"), max_length=64, help_text=_("The client's id of the event."))
    detail = models.CharField(_("detail"), max_length=200, blank=True, help_text=_("E.g. the page or the activity."))

    class Meta:
        ordering = ["-occurred_at", "-id"]
        verbose_name = _("interaction")
        verbose_name_plural = _("interactions")
        indexes = [BrinIndex(fields=["occurred_at"], name="interaction_occurred_brin")]
        constraints = [
            models.UniqueConstraint(fields=["member", "event_id"], name="interaction_member_event_id"),
        ]

    def __str__(self):
        return f"{self.get_kind_display()} {self.occurred_at:%Y-%m-%d %H:%M}"
