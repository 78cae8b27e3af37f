"""Campaigns (精准营销): who is targeted, when, with what budget, and what they get.

- ``Campaign`` — targets one or more segments, or a *transition* into a segment, optionally narrowed
  by home store, tier, registration date, the member's current CLV scores (P(alive), CLV; a
  member without scores is left out when such a narrowing is set) and favourite product category
  (``segmentation.MemberCategory`` rank 1, from the nightly run); runs in a window; carries a budget (money and/or
  count, with ``spent_*`` counters backed by ``CheckConstraint``) and a per-member cap; holds out a
  control group (a percentage, stable per member and campaign) that gets nothing.
- ``CampaignBenefit`` — what a treated member gets: a coupon, points, a points multiplier for some
  days, a stored-value offer, free shipping, a staff follow-up task, a message.
- ``CampaignGrant`` — one grant (or, for control members, one hold-out) of a campaign to a member,
  for one *cause* (the batch run, a transition…). ``(campaign, member, cause)`` is unique, so a
  cause grants once; ``(campaign, member, sequence)`` is unique with ``1 ≤ sequence ≤ cap``, so the
  per-member cap holds under concurrency.

A points-multiplier benefit writes a ``members.MemberPointsMultiplier`` row: data the points
earning in ``members`` reads (no callback into this app).

Writes go through ``campaigns.services.campaigns``.
"""

import hashlib
from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import F, Q
from django.utils.translation import gettext_lazy as _

from campaigns.models.bilingual import LocalTexts, english_description, english_name
from members.formatting import local_name
from members.models import MONEY, Member, Store, Tier, TimeStampedModel

__all__ = [
    "POINT_VALUE",
    "Campaign",
    "CampaignBenefit",
    "CampaignGrant",
    "in_control_group",
]

# What one point costs the brand, for cost estimates (yuan).
POINT_VALUE = Decimal("0.01")


def in_control_group(*, campaign_id: int, member_id: int, percent: int) -> bool:
    """Whether the member is held out: a hash of (campaign, member), so stable and independent per campaign."""
    if percent <= 0:
        return False
    digest = hashlib.sha256(f"{campaign_id}:{member_id}".encode()).hexdigest()
    return int(digest[:8], 16) % 10000 < percent * 100


class Campaign(LocalTexts, TimeStampedModel):
    class Status(models.TextChoices):
        DRAFT = "draft", _("Draft")
        SCHEDULED = "scheduled", _("Scheduled")
        RUNNING = "running", _("Running")
        PAUSED = "paused", _("Paused")
        ENDED = "ended", _("Ended")

    class TargetKind(models.TextChoices):
        SEGMENT = "segment", _("Members in the segments")
        TRANSITION = "transition", _("Members entering a segment")

    name = models.CharField(_("name"), max_length=200)
    name_en = english_name()
    slug = models.SlugField(_("slug"), max_length=64, unique=True)
    description = models.TextField(_("description"), blank=True)
    description_en = english_description()
    status = models.CharField(_("status"), max_length=20, choices=Status.choices, default=Status.DRAFT)
    starts_at = models.DateTimeField(_("starts at"), null=True, blank=True, help_text=_("Empty: at launch."))
    ends_at = models.DateTimeField(_("ends at"), null=True, blank=True, help_text=_("Empty: until ended."))
    target_kind = models.CharField(_("target"), max_length=20, choices=TargetKind.choices, default=TargetKind.SEGMENT)
    segments = models.ManyToManyField(
        "segmentation.Segment",
        verbose_name=_("segments"),
        blank=True,
        related_name="+",
        help_text=_("Members currently in any of these segments."),
    )
    target_transition_to = models.ForeignKey(
        "segmentation.Segment",
        verbose_name=_("entering segment"),
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        help_text=_("Members who move into this segment while the campaign runs."),
    )
    stores = models.ManyToManyField(
        Store, verbose_name=_("home stores"), blank=True, related_name="+", help_text=_("Empty: any store.")
    )
    tiers = models.ManyToManyField(
        Tier, verbose_name=_("tiers"), blank=True, related_name="+", help_text=_("Empty: any tier.")
    )
    registered_after = models.DateField(_("registered on or after"), null=True, blank=True)
    registered_before = models.DateField(_("registered before"), null=True, blank=True)
    p_alive_below = models.DecimalField(
        _("P(alive) below"),
        max_digits=4,
        decimal_places=3,
        null=True,
        blank=True,
        validators=[MinValueValidator(Decimal("0")), MaxValueValidator(Decimal("1"))],
        help_text=_("Only members whose P(alive) from the current CLV run is below this (0–1). Empty: any."),
    )
    p_alive_at_least = models.DecimalField(
        _("P(alive) at least"),
        max_digits=4,
        decimal_places=3,
        null=True,
        blank=True,
        validators=[MinValueValidator(Decimal("0")), MaxValueValidator(Decimal("1"))],
        help_text=_("Only members whose P(alive) is at least this (0–1). Empty: any."),
    )
    clv_at_least = models.DecimalField(
        _("CLV at least (yuan)"),
        null=True,
        blank=True,
        validators=[MinValueValidator(Decimal("0.00"))],
        help_text=_("Only members whose CLV from the current CLV run is at least this. Empty: any."),
        **MONEY,
    )
    favourite_categories = models.CharField(
        _("favourite product category"),
        max_length=200,
        blank=True,
        help_text=_(
            "Comma-separated categories, e.g. 果茶, 奶茶: only members whose favourite category (from the "
            "nightly run) is one of them. Empty: any."
        ),
    )
    member_tags = models.CharField(
        _("member tags"),
        max_length=200,
        blank=True,
        help_text=_(
            "Comma-separated tags staff gave members, e.g. 企业客户: only members with one of them. Empty: any."
        ),
    )
    budget_money = models.DecimalField(
        _("budget (yuan)"), null=True, blank=True, validators=[MinValueValidator(Decimal("0.00"))], **MONEY
    )
    budget_count = models.PositiveIntegerField(_("budget (grants)"), null=True, blank=True)
    spent_money = models.DecimalField(_("spent (yuan)"), default=Decimal("0.00"), editable=False, **MONEY)
    spent_count = models.PositiveIntegerField(_("grants made"), default=0, editable=False)
    per_member_cap = models.PositiveSmallIntegerField(
        _("grants per member"), default=1, validators=[MinValueValidator(1), MaxValueValidator(100)]
    )
    control_percent = models.PositiveSmallIntegerField(
        _("control group (%)"),
        default=0,
        validators=[MaxValueValidator(50)],
        help_text=_("Members held out at random (stable per member) to measure the effect; 0–50."),
    )
    strategy = models.TextField(_("strategy"), blank=True)
    strategy_en = models.TextField(
        _("strategy (English)"), blank=True, help_text=_("Shown on English pages; empty: the strategy above.")
    )
    launched_at = models.DateTimeField(_("launched at"), null=True, blank=True, editable=False)
    ended_at = models.DateTimeField(_("ended at"), null=True, blank=True, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("created by"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        editable=False,
        related_name="+",
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("campaign")
        verbose_name_plural = _("campaigns")
        indexes = [models.Index(fields=["status", "target_kind"], name="campaign_status_target")]
        constraints = [
            models.CheckConstraint(
                condition=Q(control_percent__gte=0, control_percent__lte=50), name="campaign_control_0_50"
            ),
            models.CheckConstraint(condition=Q(per_member_cap__gte=1), name="campaign_cap_gte_1"),
            models.CheckConstraint(
                condition=Q(budget_count__isnull=True) | Q(spent_count__lte=F("budget_count")),
                name="campaign_count_within_budget",
            ),
            models.CheckConstraint(
                condition=Q(budget_money__isnull=True) | Q(spent_money__lte=F("budget_money")),
                name="campaign_money_within_budget",
            ),
            models.CheckConstraint(condition=Q(spent_money__gte=0), name="campaign_spent_money_gte_0"),
            models.CheckConstraint(
                condition=Q(starts_at__isnull=True) | Q(ends_at__isnull=True) | Q(ends_at__gt=F("starts_at")),
                name="campaign_window_order",
                violation_error_message=_("The end must be after the start."),
            ),
            models.CheckConstraint(
                condition=~Q(target_kind="transition") | Q(target_transition_to__isnull=False),
                name="campaign_transition_has_segment",
                violation_error_message=_("Choose the segment members enter."),
            ),
        ]

    def __str__(self):
        return self.display_name

    @property
    def display_strategy(self) -> str:
        return local_name(self.strategy, self.strategy_en)


class CampaignBenefit(TimeStampedModel):
    class Kind(models.TextChoices):
        COUPON = "coupon", _("Coupon")
        POINTS = "points", _("Points")
        POINTS_MULTIPLIER = "points_multiplier", _("Points multiplier for some days")
        TOP_UP_OFFER = "top_up_offer", _("Stored-value offer")
        FREE_SHIPPING = "free_shipping", _("Free shipping")
        FOLLOW_UP = "follow_up", _("Staff follow-up task")
        MESSAGE = "message", _("Message")

    campaign = models.ForeignKey(
        Campaign, verbose_name=_("campaign"), on_delete=models.CASCADE, related_name="benefits"
    )
    kind = models.CharField(_("kind"), max_length=20, choices=Kind.choices)
    coupon_template = models.ForeignKey(
        "campaigns.CouponTemplate",
        verbose_name=_("coupon template"),
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        help_text=_("Coupon and free shipping benefits."),
    )
    points = models.PositiveIntegerField(_("points"), null=True, blank=True)
    multiplier = models.DecimalField(
        _("multiplier"),
        max_digits=4,
        decimal_places=2,
        null=True,
        blank=True,
        validators=[MinValueValidator(Decimal("1.01"))],
        help_text=_("2.00 doubles the points of orders paid in the period."),
    )
    multiplier_days = models.PositiveSmallIntegerField(
        _("for (days)"), null=True, blank=True, validators=[MinValueValidator(1)]
    )
    top_up_offer = models.ForeignKey(
        "campaigns.TopUpOffer",
        verbose_name=_("stored-value offer"),
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        help_text=_("Made available to the member, whatever their segment."),
    )
    follow_up_reason = models.CharField(_("follow-up reason"), max_length=200, blank=True)
    follow_up_due_days = models.PositiveSmallIntegerField(_("follow-up due in (days)"), default=3)
    message_template = models.CharField(
        _("message template"), max_length=100, blank=True, help_text=_("The name of the outbox message template.")
    )
    message_channel = models.CharField(_("channel"), max_length=30, blank=True, help_text=_("Empty: the default."))
    message_link = models.URLField(
        _("message link"),
        max_length=500,
        blank=True,
        help_text=_(
            "A page the message points to (<code>link</code> in its payload). Sent as a tracked link: "
            "opens and clicks show in the effect report."
        ),
    )
    unit_cost = models.DecimalField(
        _("cost per member (yuan)"),
        null=True,
        blank=True,
        validators=[MinValueValidator(Decimal("0.00"))],
        help_text=_("Empty: the coupon's face value, or the points at ¥0.01 each."),
        **MONEY,
    )

    class Meta:
        ordering = ["campaign", "id"]
        verbose_name = _("benefit")
        verbose_name_plural = _("benefits")
        constraints = [
            models.CheckConstraint(
                condition=~Q(kind__in=["coupon", "free_shipping"]) | Q(coupon_template__isnull=False),
                name="campaignbenefit_coupon_has_template",
                violation_error_message=_("Choose the coupon template."),
            ),
            models.CheckConstraint(
                condition=~Q(kind="points") | Q(points__gte=1),
                name="campaignbenefit_points_positive",
                violation_error_message=_("Give the number of points."),
            ),
            models.CheckConstraint(
                condition=~Q(kind="points_multiplier") | Q(multiplier__gt=1, multiplier_days__gte=1),
                name="campaignbenefit_multiplier_complete",
                violation_error_message=_("Give the multiplier (above 1) and the number of days."),
            ),
            models.CheckConstraint(
                condition=~Q(kind="top_up_offer") | Q(top_up_offer__isnull=False),
                name="campaignbenefit_offer_has_offer",
                violation_error_message=_("Choose the stored-value offer."),
            ),
            models.CheckConstraint(
                condition=~Q(kind="message") | ~Q(message_template=""),
                name="campaignbenefit_message_has_template",
                violation_error_message=_("Give the message template."),
            ),
        ]

    def __str__(self):
        return f"{self.get_kind_display()}: {self.describe()}"

    def clean(self):
        template = self.coupon_template if self.coupon_template_id else None
        if template is not None:
            is_shipping = template.kind == template.Kind.FREE_SHIPPING
            if self.kind == self.Kind.FREE_SHIPPING and not is_shipping:
                raise ValidationError({"coupon_template": _("Choose a free shipping coupon template.")})
            if self.kind == self.Kind.COUPON and is_shipping:
                raise ValidationError({"kind": _("A free shipping template is given as the free shipping benefit.")})

    def describe(self) -> str:
        if self.kind in (self.Kind.COUPON, self.Kind.FREE_SHIPPING) and self.coupon_template_id:
            return str(self.coupon_template)
        if self.kind == self.Kind.POINTS:
            return str(_("%(n)s points") % {"n": self.points})
        if self.kind == self.Kind.POINTS_MULTIPLIER:
            return str(_("×%(m)s for %(d)s days") % {"m": self.multiplier, "d": self.multiplier_days})
        if self.kind == self.Kind.TOP_UP_OFFER and self.top_up_offer_id:
            return str(self.top_up_offer)
        if self.kind == self.Kind.FOLLOW_UP:
            return self.follow_up_reason
        if self.kind == self.Kind.MESSAGE:
            return self.message_template
        return ""

    @property
    def cost(self) -> Decimal:
        """The estimated cost of giving this benefit to one member (yuan)."""
        if self.unit_cost is not None:
            return self.unit_cost
        if self.kind in (self.Kind.COUPON, self.Kind.FREE_SHIPPING) and self.coupon_template_id:
            return self.coupon_template.face_value
        if self.kind == self.Kind.POINTS and self.points:
            return (Decimal(self.points) * POINT_VALUE).quantize(Decimal("0.01"))
        return Decimal("0.00")


class CampaignGrant(TimeStampedModel):
    """A campaign given (or, for the control group, held out) to a member for one cause."""

    campaign = models.ForeignKey(Campaign, verbose_name=_("campaign"), on_delete=models.PROTECT, related_name="grants")
    member = models.ForeignKey(Member, verbose_name=_("member"), on_delete=models.PROTECT, related_name="+")
    cause = models.CharField(
        _("cause"), max_length=100, help_text=_("What caused it: the batch run, a segment transition…")
    )
    sequence = models.PositiveSmallIntegerField(_("grant number"), help_text=_("1 for the member's first grant."))
    is_control = models.BooleanField(_("control group"), default=False, help_text=_("Held out: got nothing."))
    granted_at = models.DateTimeField(_("granted at"))
    cost = models.DecimalField(_("cost"), default=Decimal("0.00"), **MONEY)
    details = models.JSONField(_("details"), default=dict, blank=True, help_text=_("What was given: ids by kind."))

    class Meta:
        ordering = ["-granted_at", "-id"]
        verbose_name = _("campaign grant")
        verbose_name_plural = _("campaign grants")
        indexes = [
            models.Index(fields=["member", "granted_at"], name="campaigngrant_member_granted"),
            models.Index(fields=["campaign", "is_control"], name="campaigngrant_campaign_control"),
        ]
        constraints = [
            models.UniqueConstraint(fields=["campaign", "member", "cause"], name="campaigngrant_once_per_cause"),
            models.UniqueConstraint(fields=["campaign", "member", "sequence"], name="campaigngrant_sequence_unique"),
            models.CheckConstraint(condition=Q(sequence__gte=1), name="campaigngrant_sequence_gte_1"),
            models.CheckConstraint(condition=Q(cost__gte=0), name="campaigngrant_cost_gte_0"),
            models.CheckConstraint(
                condition=Q(is_control=False) | Q(cost=0), name="campaigngrant_control_costs_nothing"
            ),
        ]

    def __str__(self):
        label = _("control") if self.is_control else _("granted")
        return f"{self.campaign_id} → {self.member_id} #{self.sequence} ({label})"
