"""Tiers (会员等级): ordered levels with benefits and qualification rules.

A member qualifies for a tier when **any** of its active rules holds, and a rule holds when **all**
of its conditions hold: net spend and/or paid-order count over a rolling window of ``window_days``
days, and/or an RFM score (from the provider segmentation registers; without one, an RFM condition
is never met). The entry level (rank 0) needs no rules: every member qualifies for it.

Upgrades happen on the qualifying order; downgrades on a schedule, once a member has not qualified
for ``Tier.retention_days`` days. ``TierChange`` keeps every change; ``MemberTierStatus`` remembers
when the member last qualified for their current tier. Writes go through ``members.services.tiers``.
"""

from decimal import Decimal

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import F, Q
from django.utils.translation import gettext_lazy as _

from members.models.core import MONEY, Member, Order, TimeStampedModel

__all__ = ["MemberRfmScore", "MemberTierStatus", "Tier", "TierChange", "TierRule"]


class Tier(TimeStampedModel):
    """A level. ``rank`` orders them: 0 is the entry level, higher is better."""

    code = models.SlugField(_("code"), max_length=32, unique=True)
    name = models.CharField(_("name"), max_length=50)
    rank = models.PositiveSmallIntegerField(
        _("rank"), unique=True, help_text=_("0 is the entry level; higher is better.")
    )
    points_multiplier = models.DecimalField(
        _("points multiplier"),
        max_digits=4,
        decimal_places=2,
        default=Decimal("1.00"),
        validators=[MinValueValidator(Decimal("0"))],
    )
    birthday_points_multiplier = models.DecimalField(
        _("birthday points multiplier"),
        max_digits=4,
        decimal_places=2,
        default=Decimal("1.00"),
        validators=[MinValueValidator(Decimal("0"))],
        help_text=_("Applied on top of the tier multiplier to orders paid on the member's birthday."),
    )
    discount_rate = models.DecimalField(
        _("discount rate"),
        max_digits=3,
        decimal_places=2,
        default=Decimal("1.00"),
        validators=[MinValueValidator(Decimal("0.01")), MaxValueValidator(Decimal("1.00"))],
        help_text=_("Price factor: 0.95 means 5% off."),
    )
    free_shipping = models.BooleanField(_("free shipping"), default=False)
    priority_service = models.BooleanField(_("priority service"), default=False)
    retention_days = models.PositiveSmallIntegerField(
        _("retention (days)"),
        default=90,
        help_text=_("How long a member keeps this tier after they stop qualifying for it, before a downgrade."),
    )
    is_active = models.BooleanField(
        _("active"),
        default=True,
        help_text=_(
            "Inactive tiers are never given automatically and their rules are ignored; "
            "members on one move down after the retention period."
        ),
    )

    class Meta:
        ordering = ["rank"]
        verbose_name = _("tier")
        verbose_name_plural = _("tiers")
        constraints = [
            models.CheckConstraint(condition=Q(points_multiplier__gte=0), name="tier_points_multiplier_gte_0"),
            models.CheckConstraint(
                condition=Q(discount_rate__gt=0) & Q(discount_rate__lte=1), name="tier_discount_rate_range"
            ),
        ]

    def __str__(self):
        return self.name


class TierRule(TimeStampedModel):
    """One way to qualify for a tier; every condition that is set must hold.

    Spend is the sum of ``amount - refunded_amount`` and the count excludes fully refunded orders,
    over orders paid in ``(as_of - window_days, as_of]``. ``min_rfm_score`` compares with the
    member's ``MemberRfmScore`` (kept by segmentation from the next RFM run on).
    """

    tier = models.ForeignKey(Tier, verbose_name=_("tier"), on_delete=models.CASCADE, related_name="rules")
    window_days = models.PositiveSmallIntegerField(
        _("window (days)"),
        default=365,
        validators=[MinValueValidator(1), MaxValueValidator(3650)],
        help_text=_("Spend and orders count over the last N days."),
    )
    min_spend = models.DecimalField(
        _("minimum spend"),
        null=True,
        blank=True,
        validators=[MinValueValidator(Decimal("0.01"))],
        help_text=_("Net of refunds, in yuan."),
        **MONEY,
    )
    min_orders = models.PositiveIntegerField(
        _("minimum orders"), null=True, blank=True, validators=[MinValueValidator(1)]
    )
    min_rfm_score = models.PositiveSmallIntegerField(
        _("minimum RFM score"),
        null=True,
        blank=True,
        help_text=_("Met only when the segmentation app provides RFM scores."),
    )

    class Meta:
        ordering = ["tier__rank", "id"]
        verbose_name = _("tier rule")
        verbose_name_plural = _("tier rules")
        constraints = [
            models.CheckConstraint(
                condition=Q(min_spend__isnull=False) | Q(min_orders__isnull=False) | Q(min_rfm_score__isnull=False),
                name="tierrule_has_a_condition",
                violation_error_message=_("A rule needs at least one condition: spend, orders or RFM score."),
            ),
            models.CheckConstraint(condition=Q(window_days__gte=1), name="tierrule_window_days_gte_1"),
            models.CheckConstraint(
                condition=Q(min_spend__isnull=True) | Q(min_spend__gt=0), name="tierrule_min_spend_positive"
            ),
            models.CheckConstraint(
                condition=Q(min_orders__isnull=True) | Q(min_orders__gte=1), name="tierrule_min_orders_gte_1"
            ),
        ]

    def __str__(self):
        conditions = []
        if self.min_spend is not None:
            conditions.append(_("spend ≥ ¥%(amount)s") % {"amount": self.min_spend})
        if self.min_orders is not None:
            conditions.append(_("≥ %(count)s orders") % {"count": self.min_orders})
        if self.min_rfm_score is not None:
            conditions.append(_("RFM score ≥ %(score)s") % {"score": self.min_rfm_score})
        return _("%(conditions)s in %(days)s days") % {
            "conditions": _(" and ").join(conditions),
            "days": self.window_days,
        }


class TierChange(TimeStampedModel):
    """One change of a member's tier. Every change is kept; rows are never edited."""

    class Reason(models.TextChoices):
        INITIAL = "initial", _("Initial tier")
        UPGRADE_ON_ORDER = "upgrade_on_order", _("Upgrade on order")
        UPGRADE_ON_SCORE = "upgrade_on_score", _("Upgrade on RFM score")
        SCHEDULED_DOWNGRADE = "scheduled_downgrade", _("Scheduled downgrade")
        MANUAL = "manual", _("Set by staff")

    member = models.ForeignKey(Member, verbose_name=_("member"), on_delete=models.PROTECT, related_name="tier_changes")
    from_tier = models.ForeignKey(
        Tier, verbose_name=_("from tier"), on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    to_tier = models.ForeignKey(
        Tier, verbose_name=_("to tier"), on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    reason = models.CharField(_("reason"), max_length=32, choices=Reason.choices)
    detail = models.TextField(_("detail"), blank=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("changed by"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    order = models.ForeignKey(
        Order, verbose_name=_("order"), on_delete=models.PROTECT, null=True, blank=True, related_name="tier_changes"
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("tier change")
        verbose_name_plural = _("tier changes")
        permissions = [("set_member_tier", _("Can set a member's tier manually"))]
        indexes = [
            models.Index(fields=["member", "created_at"], name="tierchange_member_created"),
            models.Index(fields=["created_at"], name="tierchange_created"),
        ]
        constraints = [
            # The idempotency key of ``tier_evaluate_for_order``: one order changes a tier at most once.
            models.UniqueConstraint(
                fields=["order"], condition=Q(order__isnull=False), name="tierchange_once_per_order"
            ),
            models.CheckConstraint(condition=~Q(from_tier=F("to_tier")), name="tierchange_changes_tier"),
        ]

    def __str__(self):
        return f"{self.member_id}: {self.from_tier or '—'} → {self.to_tier or '—'}"


class MemberTierStatus(TimeStampedModel):
    """When the member was last seen qualifying for ``tier``, their current tier (or a better one).

    Set when a tier is given, refreshed by every qualifying order and by every scheduled run while
    the member still qualifies; the retention period of a downgrade counts from it. A row whose
    ``tier`` is not the member's current tier (the tier was changed outside the tier services) is
    reset by the next scheduled run, which starts the retention clock then.
    """

    member = models.OneToOneField(
        Member, verbose_name=_("member"), on_delete=models.CASCADE, related_name="tier_status"
    )
    tier = models.ForeignKey(Tier, verbose_name=_("tier"), on_delete=models.CASCADE, related_name="+")
    last_qualified_at = models.DateTimeField(_("last qualified at"))

    class Meta:
        ordering = ["member_id"]
        verbose_name = _("member tier status")
        verbose_name_plural = _("member tier statuses")

    def __str__(self):
        return f"{self.member_id}: {self.tier_id} @ {self.last_qualified_at:%Y-%m-%d %H:%M}"


class MemberRfmScore(models.Model):
    """R + F + M of the member's current RFM run: data the segmentation app keeps (every run and
    live refresh) while an active tier has a rule with an RFM condition
    (``members.services.tiers.rfm_scores_wanted``), and tier rules read. No
    row: no score (an RFM condition does not hold). A new RFM condition applies from the next run.
    A narrow table of its own, so that keeping it never rewrites (or waits for) member rows."""

    member = models.OneToOneField(
        Member, verbose_name=_("member"), primary_key=True, on_delete=models.CASCADE, related_name="+"
    )
    score = models.PositiveSmallIntegerField(_("RFM score"))

    class Meta:
        verbose_name = _("RFM score")
        verbose_name_plural = _("RFM scores")

    def __str__(self):
        return f"{self.member_id}: {self.score}"
