"""Coupons (优惠券): templates operators define, and the coupons granted to members from them.

A ``CouponTemplate`` says what a coupon is worth (a fixed amount, a percentage with a cap, free
shipping or a gift), where and from what spend it can be used, how long it stays valid (fixed dates,
or a number of days after it is granted) and how many may be issued (``issue_limit``, counted in
``issued_count`` under a database ``CheckConstraint``). A ``Coupon`` is one grant to one member:
``issued`` until it is ``redeemed`` (once, against an order or an amount at a store), ``expired``
or ``revoked``. A template may be limited to products (``product_tags``, ``product_categories``):
its coupons then discount only the eligible lines of an order. Writes go through
``campaigns.services.coupons``.
"""

import secrets
from decimal import Decimal

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import F, Q
from django.utils.translation import gettext_lazy as _

from campaigns.models.bilingual import LocalTexts, english_description, english_name
from members.formatting import local_name
from members.models import MONEY, Member, Order, ProductRestricted, Store, TimeStampedModel

__all__ = ["Coupon", "CouponTemplate", "new_coupon_code"]

CODE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
CODE_LENGTH = 12


def new_coupon_code() -> str:
    """A 12-character code without characters people confuse (0/O, 1/I/L): ~59 bits."""
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


class CouponTemplate(LocalTexts, ProductRestricted, TimeStampedModel):
    class Kind(models.TextChoices):
        FIXED_AMOUNT = "fixed_amount", _("Fixed amount off")
        PERCENTAGE = "percentage", _("Percentage off (with a cap)")
        FREE_SHIPPING = "free_shipping", _("Free shipping")
        GIFT_ITEM = "gift_item", _("Gift item")

    class Validity(models.TextChoices):
        FIXED_DATES = "fixed_dates", _("Between fixed dates")
        DAYS_AFTER_GRANT = "days_after_grant", _("A number of days after it is granted")

    name = models.CharField(_("name"), max_length=200)
    name_en = english_name()
    slug = models.SlugField(_("slug"), max_length=64, unique=True, help_text=_("A stable name for the template."))
    description = models.TextField(_("description"), blank=True)
    description_en = english_description()
    kind = models.CharField(_("kind"), max_length=20, choices=Kind.choices, default=Kind.FIXED_AMOUNT)
    amount = models.DecimalField(
        _("amount off"),
        null=True,
        blank=True,
        validators=[MinValueValidator(Decimal("0.01"))],
        help_text=_("Fixed amount coupons: yuan taken off the order."),
        **MONEY,
    )
    percent_off = models.PositiveSmallIntegerField(
        _("percent off"),
        null=True,
        blank=True,
        validators=[MinValueValidator(1), MaxValueValidator(100)],
        help_text=_("Percentage coupons: 10 means 10% off."),
    )
    max_discount = models.DecimalField(
        _("cap"),
        null=True,
        blank=True,
        validators=[MinValueValidator(Decimal("0.01"))],
        help_text=_("Percentage coupons: the most they take off, in yuan; empty for no cap."),
        **MONEY,
    )
    gift_description = models.CharField(_("gift"), max_length=200, blank=True)
    gift_description_en = models.CharField(
        _("gift (English)"), max_length=200, blank=True, help_text=_("Shown on English pages; empty: the gift above.")
    )
    min_spend = models.DecimalField(
        _("minimum spend"),
        default=Decimal("0.00"),
        validators=[MinValueValidator(Decimal("0.00"))],
        help_text=_("The order must be at least this amount (yuan)."),
        **MONEY,
    )
    stores = models.ManyToManyField(
        Store,
        verbose_name=_("valid at stores"),
        blank=True,
        related_name="+",
        help_text=_("Leave empty for every store."),
    )
    validity = models.CharField(
        _("validity"), max_length=20, choices=Validity.choices, default=Validity.DAYS_AFTER_GRANT
    )
    valid_from = models.DateTimeField(_("valid from"), null=True, blank=True)
    valid_until = models.DateTimeField(_("valid until"), null=True, blank=True)
    valid_days = models.PositiveSmallIntegerField(
        _("valid for (days)"), null=True, blank=True, default=30, validators=[MinValueValidator(1)]
    )
    issue_limit = models.PositiveIntegerField(
        _("issue limit"), null=True, blank=True, help_text=_("How many coupons may be issued; empty for no limit.")
    )
    issued_count = models.PositiveIntegerField(_("issued"), default=0, editable=False)
    is_active = models.BooleanField(_("active"), default=True, help_text=_("Inactive templates issue no coupons."))

    class Meta:
        ordering = ["name", "id"]
        verbose_name = _("coupon template")
        verbose_name_plural = _("coupon templates")
        constraints = [
            models.CheckConstraint(
                condition=Q(issue_limit__isnull=True) | Q(issued_count__lte=F("issue_limit")),
                name="coupontemplate_issued_within_limit",
                violation_error_message=_("More coupons issued than the limit allows."),
            ),
            models.CheckConstraint(
                condition=~Q(kind="fixed_amount") | Q(amount__gt=0),
                name="coupontemplate_fixed_has_amount",
                violation_error_message=_("A fixed amount coupon needs an amount."),
            ),
            models.CheckConstraint(
                condition=~Q(kind="percentage") | Q(percent_off__gte=1, percent_off__lte=100),
                name="coupontemplate_percentage_has_percent",
                violation_error_message=_("A percentage coupon needs a percentage between 1 and 100."),
            ),
            models.CheckConstraint(
                condition=~Q(validity="fixed_dates") | Q(valid_until__isnull=False),
                name="coupontemplate_fixed_dates_have_end",
                violation_error_message=_("Fixed dates need an end date."),
            ),
            models.CheckConstraint(
                condition=~Q(validity="days_after_grant") | Q(valid_days__gte=1),
                name="coupontemplate_days_after_grant_have_days",
                violation_error_message=_("Give the number of days a coupon stays valid."),
            ),
            models.CheckConstraint(
                condition=Q(valid_from__isnull=True) | Q(valid_until__isnull=True) | Q(valid_until__gt=F("valid_from")),
                name="coupontemplate_valid_range",
                violation_error_message=_("The end date must be after the start date."),
            ),
            models.CheckConstraint(condition=Q(min_spend__gte=0), name="coupontemplate_min_spend_gte_0"),
        ]

    def __str__(self):
        return self.display_name

    @property
    def display_gift(self) -> str:
        return local_name(self.gift_description, self.gift_description_en)

    @property
    def face_value(self) -> Decimal:
        """What one coupon is worth at most, for cost estimates: the amount, or the cap."""
        if self.kind == self.Kind.FIXED_AMOUNT and self.amount is not None:
            return self.amount
        if self.kind == self.Kind.PERCENTAGE and self.max_discount is not None:
            return self.max_discount
        return Decimal("0.00")


class Coupon(TimeStampedModel):
    class Status(models.TextChoices):
        ISSUED = "issued", _("Issued")
        REDEEMED = "redeemed", _("Redeemed")
        EXPIRED = "expired", _("Expired")
        REVOKED = "revoked", _("Revoked")

    template = models.ForeignKey(
        CouponTemplate, verbose_name=_("template"), on_delete=models.PROTECT, related_name="coupons"
    )
    member = models.ForeignKey(Member, verbose_name=_("member"), on_delete=models.PROTECT, related_name="coupons")
    code = models.CharField(_("code"), max_length=20, unique=True, default=new_coupon_code)
    status = models.CharField(_("status"), max_length=20, choices=Status.choices, default=Status.ISSUED)
    granted_at = models.DateTimeField(_("granted at"))
    valid_from = models.DateTimeField(_("valid from"))
    valid_until = models.DateTimeField(_("valid until"))
    source = models.CharField(_("source"), max_length=100, blank=True, help_text=_("What granted it."))
    campaign = models.ForeignKey(
        "campaigns.Campaign",
        verbose_name=_("campaign"),
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="coupons",
    )
    idempotency_key = models.CharField(_("idempotency key"), max_length=200, unique=True)
    redeemed_at = models.DateTimeField(_("redeemed at"), null=True, blank=True)
    order = models.ForeignKey(
        Order, verbose_name=_("order"), on_delete=models.PROTECT, null=True, blank=True, related_name="coupons"
    )
    redeemed_store = models.ForeignKey(
        Store, verbose_name=_("redeemed at store"), on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    order_amount = models.DecimalField(_("order amount"), null=True, blank=True, **MONEY)
    discount = models.DecimalField(_("discount applied"), null=True, blank=True, **MONEY)
    eligible_amount = models.DecimalField(
        _("eligible amount"),
        null=True,
        blank=True,
        help_text=_("For a coupon limited to some products: what its eligible lines came to."),
        **MONEY,
    )
    redeemed_lines = models.JSONField(
        _("lines"), default=list, blank=True, help_text=_("The lines the redemption named: [sku, amount] pairs.")
    )
    redemption_key = models.CharField(_("redemption idempotency key"), max_length=200, blank=True, default="")
    revoked_at = models.DateTimeField(_("revoked at"), null=True, blank=True)
    revoke_reason = models.CharField(_("revoke reason"), max_length=200, blank=True)

    class Meta:
        ordering = ["-granted_at", "-id"]
        verbose_name = _("coupon")
        verbose_name_plural = _("coupons")
        indexes = [
            models.Index(fields=["member", "status"], name="coupon_member_status"),
            models.Index(fields=["valid_until"], condition=Q(status="issued"), name="coupon_issued_valid_until"),
            models.Index(fields=["campaign", "status"], name="coupon_campaign_status"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["redemption_key"],
                condition=~Q(redemption_key=""),
                name="coupon_redemption_key_unique",
            ),
            models.CheckConstraint(
                condition=~Q(status="redeemed") | Q(redeemed_at__isnull=False, discount__isnull=False),
                name="coupon_redeemed_has_time_and_discount",
            ),
            models.CheckConstraint(
                condition=Q(status="redeemed") | Q(redeemed_at__isnull=True),
                name="coupon_only_redeemed_has_redeemed_at",
            ),
            models.CheckConstraint(condition=Q(valid_until__gt=F("valid_from")), name="coupon_valid_range"),
            models.CheckConstraint(
                condition=Q(discount__isnull=True) | Q(discount__gte=0), name="coupon_discount_gte_0"
            ),
        ]

    def __str__(self):
        return f"{self.code} ({self.get_status_display()})"
