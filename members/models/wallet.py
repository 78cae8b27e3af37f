"""Stored value (储值): a wallet per member and its append-only ledger.

The wallet keeps **principal** (money the member paid in) apart from **bonus** (granted by an
offer), because refunds and accounting treat them differently. ``Wallet`` caches both balances;
every movement is a ``WalletEntry`` with signed deltas and the balances after it, so the cached
balances always equal the sums of the ledger. Writes go through ``members.services.wallet``.

**Restricted bonus** (seed 002: 储值300送50，但必须搭配唤醒商品使用): a bonus granted by an offer limited
to some products is part of ``Wallet.bonus`` and is also kept as a ``RestrictedBonus`` — its own
remaining amount and the products it may pay for. Every change of it is a ``RestrictedBonusMove``
(the top-up that granted it, the spends of eligible lines that used it, their refunds, the top-up's
refund), so ``remaining`` always equals the sum of its moves and the moves of an entry are part of
its ``bonus_delta``. The rest of the bonus (``Wallet.bonus`` minus the restricted remainders) is
unrestricted.
"""

from decimal import Decimal

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.db.models import F, Q
from django.utils.translation import gettext_lazy as _

from members.models.core import Member, TimeStampedModel
from members.models.products import Restriction

__all__ = ["WALLET_MONEY", "RestrictedBonus", "RestrictedBonusMove", "Wallet", "WalletEntry"]

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


class RestrictedBonus(TimeStampedModel):
    """A bonus usable only on some products: what is left of it, and which products."""

    wallet = models.ForeignKey(
        Wallet, verbose_name=_("wallet"), on_delete=models.PROTECT, related_name="restricted_bonuses"
    )
    top_up = models.OneToOneField(
        WalletEntry, verbose_name=_("top-up"), on_delete=models.PROTECT, related_name="restricted_bonus"
    )
    tags = ArrayField(models.CharField(max_length=32), verbose_name=_("for products tagged"), default=list, blank=True)
    categories = ArrayField(
        models.CharField(max_length=50), verbose_name=_("for product categories"), default=list, blank=True
    )
    amount = models.DecimalField(_("granted"), **WALLET_MONEY)
    remaining = models.DecimalField(_("remaining"), **WALLET_MONEY)

    class Meta:
        ordering = ["wallet", "id"]
        verbose_name = _("restricted bonus")
        verbose_name_plural = _("restricted bonuses")
        indexes = [
            models.Index(fields=["wallet"], condition=Q(remaining__gt=0), name="restrictedbonus_wallet_left"),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="restrictedbonus_amount_gt_0"),
            models.CheckConstraint(
                condition=Q(remaining__gte=0) & Q(remaining__lte=F("amount")), name="restrictedbonus_remaining_within"
            ),
            models.CheckConstraint(condition=~Q(tags=[], categories=[]), name="restrictedbonus_restricts_something"),
        ]

    def __str__(self):
        return f"{self.remaining}/{self.amount} ({', '.join([*self.tags, *self.categories])})"

    @property
    def restriction(self) -> Restriction:
        return Restriction(tags=tuple(self.tags), categories=tuple(self.categories))


class RestrictedBonusMove(models.Model):
    """One change of a restricted bonus, made by a wallet entry. Never updated or deleted."""

    bonus = models.ForeignKey(
        RestrictedBonus, verbose_name=_("restricted bonus"), on_delete=models.PROTECT, related_name="moves"
    )
    entry = models.ForeignKey(
        WalletEntry, verbose_name=_("wallet entry"), on_delete=models.PROTECT, related_name="restricted_moves"
    )
    delta = models.DecimalField(_("change"), **WALLET_MONEY)

    class Meta:
        ordering = ["entry", "bonus"]
        verbose_name = _("restricted bonus change")
        verbose_name_plural = _("restricted bonus changes")
        constraints = [
            models.UniqueConstraint(fields=["entry", "bonus"], name="restrictedbonusmove_once_per_entry"),
            models.CheckConstraint(condition=~Q(delta=0), name="restrictedbonusmove_delta_not_0"),
        ]

    def __str__(self):
        return f"{self.bonus_id}: {self.delta}"
