"""Referrals (推荐): who brought whom, and whether the reward was paid or taken back.

Writes go through ``members.services.referrals``.
"""

from django.db import models
from django.db.models import F, Q
from django.utils.translation import gettext_lazy as _

from members.models.core import Member, Order, TimeStampedModel
from members.models.points import PointsEntry

__all__ = ["Referral"]


class Referral(TimeStampedModel):
    """A member (the referee) registered with another member's code (the referrer's).

    ``pending`` until the referee's first qualifying order (``completed``, both sides rewarded);
    ``reversed`` when that order is refunded in full within the reversal period.
    """

    class Status(models.TextChoices):
        PENDING = "pending", _("Pending")
        COMPLETED = "completed", _("Completed")
        REVERSED = "reversed", _("Reversed")

    referrer = models.ForeignKey(
        Member, verbose_name=_("referrer"), on_delete=models.PROTECT, related_name="referrals_made"
    )
    referee = models.OneToOneField(Member, verbose_name=_("referee"), on_delete=models.PROTECT, related_name="referral")
    code = models.CharField(_("code used"), max_length=16)
    status = models.CharField(_("status"), max_length=20, choices=Status.choices, default=Status.PENDING)
    qualifying_order = models.OneToOneField(
        Order,
        verbose_name=_("qualifying order"),
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="completed_referral",
    )
    completed_at = models.DateTimeField(_("completed at"), null=True, blank=True)
    reversed_at = models.DateTimeField(_("reversed at"), null=True, blank=True)
    referrer_entry = models.ForeignKey(
        PointsEntry,
        verbose_name=_("referrer's reward"),
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
    )
    referee_entry = models.ForeignKey(
        PointsEntry,
        verbose_name=_("referee's reward"),
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
    )
    reward_note = models.CharField(_("reward"), max_length=200, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("referral")
        verbose_name_plural = _("referrals")
        indexes = [models.Index(fields=["referrer", "status"], name="referral_referrer_status")]
        constraints = [
            models.CheckConstraint(condition=~Q(referrer=F("referee")), name="referral_not_self"),
            models.CheckConstraint(
                condition=Q(status="pending") | Q(qualifying_order__isnull=False, completed_at__isnull=False),
                name="referral_completed_has_order",
            ),
            models.CheckConstraint(
                condition=~Q(status="reversed") | Q(reversed_at__isnull=False), name="referral_reversed_has_time"
            ),
        ]

    def __str__(self):
        return f"{self.referrer_id} → {self.referee_id} ({self.get_status_display()})"
