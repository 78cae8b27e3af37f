"""Segment offers: stored-value top-up offers and referral reward rules, both by segment (seed 002).

- ``TopUpOffer`` — "top up at least X, get Y bonus" (plus, optionally, a points multiplier for some
  days and a product restriction: its bonus is then a restricted bonus, usable only on products
  with one of ``product_tags`` or in one of ``product_categories``), for members of
  the chosen segments (none chosen: everyone), in a window, a limited number of times per member.
- ``OfferTopUp`` — one use of an offer: the wallet top-up it made. ``(offer, member, sequence)`` is
  unique with ``sequence ≤ per_member_limit``, so the limit holds under concurrency. Like its
  ``bonus``, the use keeps the offer's product restriction as it was when the use was claimed: the
  top-up (and any retry of it) grants exactly that, whatever the operator changes on the offer later.
- ``ReferralRewardRule`` — what a completed referral gives both sides, by the referrer's segment
  (no segment: the default rule); at most one active rule per segment and one active default.

Writes go through ``campaigns.services.offers``.
"""

from decimal import Decimal

from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import F, Q
from django.utils.translation import gettext_lazy as _

from campaigns.models.bilingual import LocalTexts, english_description, english_name
from members.formatting import local_name
from members.models import MONEY, Member, ProductRestricted, TimeStampedModel, WalletEntry

__all__ = ["OfferTopUp", "ReferralRewardRule", "TopUpOffer"]


class TopUpOffer(LocalTexts, ProductRestricted, TimeStampedModel):
    name = models.CharField(_("name"), max_length=200)
    name_en = english_name()
    code = models.SlugField(
        _("code"), max_length=64, unique=True, help_text=_("Carried on the wallet bonus as its offer code.")
    )
    description = models.TextField(_("description"), blank=True)
    description_en = english_description()
    segments = models.ManyToManyField(
        "segmentation.Segment",
        verbose_name=_("segments"),
        blank=True,
        related_name="+",
        help_text=_("Members of these segments qualify; leave empty for everyone."),
    )
    min_amount = models.DecimalField(_("top up at least"), validators=[MinValueValidator(Decimal("0.01"))], **MONEY)
    bonus_amount = models.DecimalField(
        _("bonus"),
        validators=[MinValueValidator(Decimal("0.00"))],
        help_text=_("Added to the wallet's bonus."),
        **MONEY,
    )
    points_multiplier = models.DecimalField(
        _("points multiplier"),
        max_digits=4,
        decimal_places=2,
        null=True,
        blank=True,
        validators=[MinValueValidator(Decimal("1.01"))],
        help_text=_("Optional: 2.00 doubles the points of the member's orders for the days below."),
    )
    multiplier_days = models.PositiveSmallIntegerField(
        _("multiplier for (days)"), null=True, blank=True, validators=[MinValueValidator(1)]
    )
    restriction_note = models.TextField(
        _("restriction"), blank=True, help_text=_("E.g. the bonus is usable only on the chosen wake-up products.")
    )
    restriction_note_en = models.TextField(
        _("restriction (English)"), blank=True, help_text=_("Shown on English pages; empty: the restriction above.")
    )
    valid_from = models.DateTimeField(_("valid from"), null=True, blank=True)
    valid_until = models.DateTimeField(_("valid until"), null=True, blank=True)
    per_member_limit = models.PositiveSmallIntegerField(
        _("uses per member"), null=True, blank=True, default=1, help_text=_("Empty: no limit.")
    )
    is_active = models.BooleanField(_("active"), default=True)

    class Meta:
        ordering = ["min_amount", "id"]
        verbose_name = _("top-up offer")
        verbose_name_plural = _("top-up offers")
        constraints = [
            models.CheckConstraint(condition=Q(min_amount__gt=0), name="topupoffer_min_amount_gt_0"),
            models.CheckConstraint(condition=Q(bonus_amount__gte=0), name="topupoffer_bonus_gte_0"),
            models.CheckConstraint(
                condition=Q(points_multiplier__isnull=True) | Q(points_multiplier__gt=1, multiplier_days__gte=1),
                name="topupoffer_multiplier_has_days",
                violation_error_message=_("A points multiplier needs a number of days."),
            ),
            models.CheckConstraint(
                condition=Q(valid_from__isnull=True) | Q(valid_until__isnull=True) | Q(valid_until__gt=F("valid_from")),
                name="topupoffer_valid_range",
            ),
            models.CheckConstraint(
                condition=Q(per_member_limit__isnull=True) | Q(per_member_limit__gte=1),
                name="topupoffer_limit_gte_1",
            ),
        ]

    def __str__(self):
        return self.display_name

    @property
    def display_restriction(self) -> str:
        return local_name(self.restriction_note, self.restriction_note_en)


class OfferTopUp(ProductRestricted, TimeStampedModel):
    """One use of a top-up offer by a member. ``wallet_entry`` is empty only until the top-up is recorded.

    ``bonus`` and the restriction (``product_tags``, ``product_categories``) are the offer's when the
    use was claimed: what the top-up grants, also when it is retried after the offer was edited."""

    offer = models.ForeignKey(TopUpOffer, verbose_name=_("offer"), on_delete=models.PROTECT, related_name="uses")
    member = models.ForeignKey(Member, verbose_name=_("member"), on_delete=models.PROTECT, related_name="+")
    sequence = models.PositiveSmallIntegerField(_("use number"))
    amount_paid = models.DecimalField(_("amount paid"), **MONEY)
    bonus = models.DecimalField(_("bonus"), **MONEY)
    wallet_entry = models.OneToOneField(
        WalletEntry,
        verbose_name=_("wallet entry"),
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="offer_use",
    )
    idempotency_key = models.CharField(_("idempotency key"), max_length=100, unique=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("offer top-up")
        verbose_name_plural = _("offer top-ups")
        constraints = [
            models.UniqueConstraint(fields=["offer", "member", "sequence"], name="offertopup_sequence_unique"),
            models.CheckConstraint(condition=Q(sequence__gte=1), name="offertopup_sequence_gte_1"),
        ]

    def __str__(self):
        return f"{self.offer_id} / {self.member_id} #{self.sequence}"


class ReferralRewardRule(TimeStampedModel):
    name = models.CharField(_("name"), max_length=200)
    name_en = english_name()
    slug = models.SlugField(_("slug"), max_length=64, unique=True)
    referrer_segment = models.ForeignKey(
        "segmentation.Segment",
        verbose_name=_("referrer's segment"),
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        help_text=_("Empty: the default rule, for referrers in any other segment."),
    )
    referrer_coupon_template = models.ForeignKey(
        "campaigns.CouponTemplate",
        verbose_name=_("referrer's coupon"),
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
    )
    referee_coupon_template = models.ForeignKey(
        "campaigns.CouponTemplate",
        verbose_name=_("new member's coupon"),
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
    )
    referrer_points = models.PositiveIntegerField(_("referrer's points"), default=0)
    referee_points = models.PositiveIntegerField(_("new member's points"), default=0)
    referrer_extra_template = models.ForeignKey(
        "campaigns.CouponTemplate",
        verbose_name=_("referrer's extra pack"),
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        help_text=_("An extra coupon for the referrer, e.g. an activation pack for sleeping members."),
    )
    is_active = models.BooleanField(_("active"), default=False)

    class Meta:
        ordering = ["referrer_segment", "id"]
        verbose_name = _("referral reward rule")
        verbose_name_plural = _("referral reward rules")
        constraints = [
            models.UniqueConstraint(
                fields=["referrer_segment"],
                condition=Q(is_active=True, referrer_segment__isnull=False),
                name="referralrule_one_active_per_segment",
                violation_error_message=_("Another active rule already covers this segment."),
            ),
            models.UniqueConstraint(
                fields=["is_active"],
                condition=Q(is_active=True, referrer_segment__isnull=True),
                name="referralrule_one_active_default",
                violation_error_message=_("Another active rule is already the default."),
            ),
        ]

    def __str__(self):
        return self.display_name

    @property
    def display_name(self) -> str:
        return local_name(self.name, self.name_en)
