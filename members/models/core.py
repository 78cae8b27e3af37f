"""Stores, members, orders and refunds: the data and its constraints, no workflows.

Writes go through ``members.services``; reads through ``members.selectors``.
"""

from decimal import Decimal

from django.db import models
from django.db.models import F, Q
from django.db.models.functions import Right
from django.utils.translation import gettext_lazy as _

from members.mobile import mask_mobile
from members.referral_codes import new_referral_code

MONEY = {"max_digits": 12, "decimal_places": 2}


class TimeStampedModel(models.Model):
    created_at = models.DateTimeField(_("created at"), auto_now_add=True, db_index=False)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        abstract = True


class Store(TimeStampedModel):
    code = models.CharField(_("store code"), max_length=32, unique=True)
    name = models.CharField(_("name"), max_length=100)
    city = models.CharField(_("city"), max_length=50, db_index=True)
    is_active = models.BooleanField(_("active"), default=True)
    # Stored-value ceilings for top-ups made at this store; empty: the brand's (``LoyaltyProgram``).
    top_up_max_amount = models.DecimalField(
        _("largest top-up"),
        null=True,
        blank=True,
        help_text=_("The most one top-up at this store may pay in (yuan). Empty: the brand's limit."),
        **MONEY,
    )
    wallet_max_balance = models.DecimalField(
        _("largest wallet balance"),
        null=True,
        blank=True,
        help_text=_(
            "A top-up at this store may not bring a wallet (principal plus bonus) above this (yuan). "
            "Empty: the brand's limit."
        ),
        **MONEY,
    )

    class Meta:
        ordering = ["code"]
        verbose_name = _("store")
        verbose_name_plural = _("stores")
        constraints = [
            models.CheckConstraint(
                condition=Q(top_up_max_amount__isnull=True) | Q(top_up_max_amount__gt=0),
                name="store_top_up_max_amount_gt_0",
            ),
            models.CheckConstraint(
                condition=Q(wallet_max_balance__isnull=True) | Q(wallet_max_balance__gt=0),
                name="store_wallet_max_balance_gt_0",
            ),
        ]

    def __str__(self):
        return f"{self.name} ({self.code})"


class Member(TimeStampedModel):
    class Gender(models.TextChoices):
        UNKNOWN = "unknown", _("Unknown")
        FEMALE = "female", _("Female")
        MALE = "male", _("Male")

    class Channel(models.TextChoices):
        STORE = "store", _("In store")
        MINI_PROGRAM = "mini_program", _("Mini-program")
        OFFICIAL_ACCOUNT = "official_account", _("Official account")
        POS = "pos", _("POS")
        IMPORT = "import", _("Import")
        OTHER = "other", _("Other")

    mobile = models.CharField(_("mobile"), max_length=11, unique=True, help_text=_("11 digits, canonical form."))
    name = models.CharField(_("name"), max_length=50, blank=True)
    gender = models.CharField(_("gender"), max_length=10, choices=Gender.choices, default=Gender.UNKNOWN)
    birthday = models.DateField(_("birthday"), null=True, blank=True)
    registered_at = models.DateTimeField(_("registered at"), db_index=True)
    channel = models.CharField(_("registration channel"), max_length=20, choices=Channel.choices, default=Channel.STORE)
    home_store = models.ForeignKey(
        Store, verbose_name=_("home store"), on_delete=models.PROTECT, null=True, blank=True, related_name="members"
    )
    openid = models.CharField(_("WeChat openid"), max_length=64, null=True, blank=True, unique=True)
    referral_code = models.CharField(_("referral code"), max_length=16, unique=True, default=new_referral_code)
    referrer = models.ForeignKey(
        "self", verbose_name=_("referred by"), on_delete=models.PROTECT, null=True, blank=True, related_name="referees"
    )
    tier = models.ForeignKey(
        "members.Tier", verbose_name=_("tier"), on_delete=models.PROTECT, null=True, blank=True, related_name="members"
    )
    # A blocked or erased member cannot log in, be served at a till, earn or spend (``members.services.privacy``).
    is_active = models.BooleanField(
        _("active"),
        default=True,
        db_default=True,
        help_text=_("A blocked member cannot log in, show a QR code, be served at a till, earn or spend."),
    )
    erased_at = models.DateTimeField(
        _("erased at"),
        null=True,
        blank=True,
        help_text=_("When the member's personal data was erased (PIPL): the member stays, anonymised."),
    )

    class Meta:
        ordering = ["-registered_at", "-id"]
        verbose_name = _("member")
        verbose_name_plural = _("members")
        constraints = [
            models.CheckConstraint(condition=~Q(referrer=F("id")), name="member_not_own_referrer"),
            models.CheckConstraint(
                condition=Q(erased_at__isnull=True) | Q(is_active=False), name="member_erased_inactive"
            ),
        ]
        indexes = [
            # 手机尾号: the last four digits, the most common lookup at a counter.
            models.Index(Right("mobile", 4), name="member_mobile_last4"),
        ]
        permissions = [
            ("view_full_mobile", _("Can see members' full mobile numbers")),
            ("view_all_stores", _("Can see the members of every store")),
            ("view_personal_data", _("Can see members' names and birthdays")),
            ("block_member", _("Can block and unblock members")),
            ("erase_member", _("Can export and erase members' personal data (PIPL)")),
        ]

    def __str__(self):
        """How a member is named wherever a row points at them (admin lists, links, history): the
        mobile number masked (PIPL: minimum necessary); the full number only where a role may see it."""
        return f"{self.name or '—'} {mask_mobile(self.mobile)}"


class Order(TimeStampedModel):
    class Status(models.TextChoices):
        PAID = "paid", _("Paid")
        PARTIALLY_REFUNDED = "partially_refunded", _("Partially refunded")
        REFUNDED = "refunded", _("Refunded")

    # Unique within its store (two stores' tills may number their orders alike): ``order_store_external_id``.
    external_id = models.CharField(_("external order id"), max_length=64)
    # Indexed by ``order_member_paid_at_cover`` and ``order_store_paid_at`` (member, store first): no
    # separate foreign-key indexes to write on every order.
    member = models.ForeignKey(
        Member, verbose_name=_("member"), on_delete=models.PROTECT, related_name="orders", db_index=False
    )
    store = models.ForeignKey(
        Store, verbose_name=_("store"), on_delete=models.PROTECT, related_name="orders", db_index=False
    )
    paid_at = models.DateTimeField(_("paid at"))
    amount = models.DecimalField(_("amount"), **MONEY)
    refunded_amount = models.DecimalField(_("refunded amount"), default=Decimal("0.00"), **MONEY)
    status = models.CharField(_("status"), max_length=20, choices=Status.choices, default=Status.PAID)

    class Meta:
        ordering = ["-paid_at", "-id"]
        verbose_name = _("order")
        verbose_name_plural = _("orders")
        indexes = [
            # Covering: the recompute's aggregate reads it alone, in member order (an index-only scan
            # merge-joined to the members, no hash table; ``bench/rfm.py``), as does a member's refresh.
            models.Index(
                fields=["member", "paid_at"], include=["amount", "refunded_amount"], name="order_member_paid_at_cover"
            ),
            models.Index(fields=["store", "paid_at"], name="order_store_paid_at"),
            models.Index(fields=["paid_at"], name="order_paid_at"),
        ]
        constraints = [
            models.UniqueConstraint(fields=["store", "external_id"], name="order_store_external_id"),
            models.CheckConstraint(condition=Q(amount__gt=0), name="order_amount_positive"),
            models.CheckConstraint(
                condition=Q(refunded_amount__gte=0) & Q(refunded_amount__lte=F("amount")),
                name="order_refunds_within_amount",
            ),
        ]

    def __str__(self):
        return self.external_id

    @property
    def net_amount(self) -> Decimal:
        return self.amount - self.refunded_amount


class Refund(TimeStampedModel):
    # Unique within the store of its order (``refund_store_external_id``); ``store`` is the order's,
    # copied so that the constraint can name it.
    external_id = models.CharField(_("external refund id"), max_length=64)
    order = models.ForeignKey(Order, verbose_name=_("order"), on_delete=models.PROTECT, related_name="refunds")
    store = models.ForeignKey(
        Store, verbose_name=_("store"), on_delete=models.PROTECT, related_name="refunds", db_index=False
    )
    amount = models.DecimalField(_("amount"), **MONEY)
    refunded_at = models.DateTimeField(_("refunded at"))
    reason = models.CharField(_("reason"), max_length=200, blank=True)

    class Meta:
        ordering = ["-refunded_at", "-id"]
        verbose_name = _("refund")
        verbose_name_plural = _("refunds")
        constraints = [
            models.UniqueConstraint(fields=["store", "external_id"], name="refund_store_external_id"),
            models.CheckConstraint(condition=Q(amount__gt=0), name="refund_amount_positive"),
        ]

    def __str__(self):
        return self.external_id

    def save(self, *args, **kwargs):
        if self.store_id is None and self.order_id is not None:
            self.store_id = Order.objects.values_list("store_id", flat=True).get(pk=self.order_id)
        super().save(*args, **kwargs)
