"""Stored value (储值): a wallet per member and its append-only ledger.

The wallet keeps **principal** (money the member paid in) apart from **bonus** (granted by an
offer), because refunds and accounting treat them differently. ``Wallet`` caches both balances;
every movement is a ``WalletEntry`` with signed deltas and the balances after it, so the cached
balances always equal the sums of the ledger. Writes go through ``members.services.wallet``.
"""

from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.utils.translation import gettext_lazy as _

from members.models.core import Member, TimeStampedModel

__all__ = ["WALLET_MONEY", "Wallet", "WalletEntry"]

WALLET_MONEY = {"max_digits": 14, "decimal_places": 2}
ZERO = Decimal("0.00")


class Wallet(TimeStampedModel):
    """A member's stored value. Created on first use; balances change only in wallet services."""

    member = models.OneToOneField(Member, verbose_name=_("member"), on_delete=models.PROTECT, related_name="wallet")
    principal = models.DecimalField(
        _("principal"), default=ZERO, help_text=_("Money the member paid in and has not spent."), **WALLET_MONEY
    )
    bonus = models.DecimalField(
        _("bonus"), default=ZERO, help_text=_("Value granted by top-up offers and not spent."), **WALLET_MONEY
    )

    class Meta:
        ordering = ["-updated_at", "-id"]
        verbose_name = _("wallet")
        verbose_name_plural = _("wallets")
        constraints = [
            models.CheckConstraint(condition=Q(principal__gte=0), name="wallet_principal_gte_0"),
            models.CheckConstraint(condition=Q(bonus__gte=0), name="wallet_bonus_gte_0"),
        ]
        permissions = [
            ("top_up_wallet", _("Can top up wallets")),
            ("refund_wallet", _("Can refund wallet top-ups")),
        ]

    def __str__(self):
        return str(_("Wallet of %(member)s") % {"member": self.member})

    @property
    def total(self) -> Decimal:
        return self.principal + self.bonus


class WalletEntry(TimeStampedModel):
    """One movement of a wallet. Never updated or deleted: a mistake is corrected by a new entry."""

    class Kind(models.TextChoices):
        TOP_UP = "top_up", _("Top-up")
        SPEND = "spend", _("Spend")
        SPEND_REFUND = "spend_refund", _("Spend refund")
        TOP_UP_REFUND = "top_up_refund", _("Top-up refund")
        ADJUSTMENT = "adjustment", _("Adjustment")

    wallet = models.ForeignKey(Wallet, verbose_name=_("wallet"), on_delete=models.PROTECT, related_name="entries")
    kind = models.CharField(_("kind"), max_length=20, choices=Kind.choices)
    principal_delta = models.DecimalField(_("principal change"), **WALLET_MONEY)
    bonus_delta = models.DecimalField(_("bonus change"), **WALLET_MONEY)
    amount = models.DecimalField(
        _("amount"), help_text=_("Signed total: principal change plus bonus change."), **WALLET_MONEY
    )
    principal_after = models.DecimalField(_("principal after"), **WALLET_MONEY)
    bonus_after = models.DecimalField(_("bonus after"), **WALLET_MONEY)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("actor"),
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="wallet_entries",
        help_text=_("The staff user who made the change; empty for the member or a system."),
    )
    reason = models.CharField(_("reason"), max_length=200, blank=True)
    reference = models.CharField(
        _("reference"), max_length=100, blank=True, help_text=_("An outside reference: payment, order or ticket id.")
    )
    offer_code = models.CharField(
        _("offer code"), max_length=64, blank=True, help_text=_("The top-up offer that granted the bonus, if any.")
    )
    related_entry = models.ForeignKey(
        "self",
        verbose_name=_("refunded entry"),
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="refunds",
        help_text=_("For a refund: the spend or top-up it reverses."),
    )
    idempotency_key = models.CharField(_("idempotency key"), max_length=100, unique=True)
    request_fingerprint = models.CharField(
        _("request fingerprint"), max_length=64, help_text=_("SHA-256 of the operation and its arguments.")
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("wallet entry")
        verbose_name_plural = _("wallet entries")
        indexes = [
            models.Index(fields=["wallet", "created_at"], name="walletentry_wallet_created"),
            models.Index(fields=["created_at"], name="walletentry_created_at"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(amount=F("principal_delta") + F("bonus_delta")), name="walletentry_amount_is_sum"
            ),
            models.CheckConstraint(
                condition=Q(principal_after__gte=0) & Q(bonus_after__gte=0), name="walletentry_after_gte_0"
            ),
            models.CheckConstraint(
                condition=(
                    Q(kind="top_up", principal_delta__gt=0, bonus_delta__gte=0)
                    | Q(kind="spend", principal_delta__lte=0, bonus_delta__lte=0, amount__lt=0)
                    | Q(kind="spend_refund", principal_delta__gte=0, bonus_delta__gte=0, amount__gt=0)
                    | Q(kind="top_up_refund", principal_delta__lt=0, bonus_delta__lte=0)
                    | (Q(kind="adjustment") & ~Q(principal_delta=0, bonus_delta=0))
                ),
                name="walletentry_delta_signs_by_kind",
            ),
            models.CheckConstraint(
                condition=Q(kind__in=["spend_refund", "top_up_refund"], related_entry__isnull=False)
                | (~Q(kind__in=["spend_refund", "top_up_refund"]) & Q(related_entry__isnull=True)),
                name="walletentry_refunds_reference_entry",
            ),
            models.UniqueConstraint(
                fields=["related_entry"], condition=Q(kind="top_up_refund"), name="walletentry_top_up_refunded_once"
            ),
        ]

    def __str__(self):
        return f"{self.get_kind_display()} {self.amount} ({self.idempotency_key})"
