"""Points (积分): the program settings, each member's account, the ledger and the lots.

The ledger is append-only. At every commit, for every member:
``account.balance == sum(entries.points) == sum(lots.remaining)``, none of them below zero.
Writes go through ``members.services.points``.
"""

from decimal import Decimal

from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import F, Q
from django.utils.translation import gettext_lazy as _

from members.models.core import MONEY, Member, Order, TimeStampedModel

__all__ = ["LoyaltyProgram", "MemberPointsMultiplier", "PointsAccount", "PointsEntry", "PointsLot"]


class LoyaltyProgram(TimeStampedModel):
    """The brand's loyalty numbers, edited by operators in the admin. There is exactly one row."""

    SINGLETON_ID = 1

    class PointsLife(models.TextChoices):
        MONTHS = "months", _("A number of months after they are earned")
        END_OF_NEXT_YEAR = "end_of_next_year", _("At the end of the year after they are earned")

    points_per_yuan = models.DecimalField(
        _("points per yuan"),
        max_digits=8,
        decimal_places=2,
        default=Decimal("1.00"),
        help_text=_("Points earned per yuan paid, before tier, birthday and campaign multipliers."),
    )
    points_life_policy = models.CharField(
        _("points life"), max_length=20, choices=PointsLife.choices, default=PointsLife.MONTHS
    )
    points_life_months = models.PositiveSmallIntegerField(
        _("points life in months"), default=12, help_text=_("Used when points expire a number of months after.")
    )
    referral_min_order_amount = models.DecimalField(
        _("referral: minimum first order"),
        default=Decimal("10.00"),
        help_text=_("A referral completes on the referee's first paid order of at least this amount (yuan)."),
        **MONEY,
    )
    referral_referrer_points = models.PositiveIntegerField(_("referral: points for the referrer"), default=200)
    referral_referee_points = models.PositiveIntegerField(_("referral: points for the new member"), default=100)
    referral_reversal_days = models.PositiveSmallIntegerField(
        _("referral: reversal period in days"),
        default=30,
        help_text=_("A full refund of the qualifying order within this period takes the referral rewards back."),
    )
    # Stored-value ceilings (a store may set its own: ``Store.top_up_max_amount`` / ``wallet_max_balance``).
    top_up_max_amount = models.DecimalField(
        _("largest top-up"),
        default=Decimal("5000.00"),
        help_text=_("The most one top-up may pay in (yuan), at a till, in the mini-program or in the admin."),
        **MONEY,
    )
    wallet_max_balance = models.DecimalField(
        _("largest wallet balance"),
        default=Decimal("50000.00"),
        help_text=_(
            "No top-up or offer bonus may bring a wallet (principal plus bonus) above this (yuan). "
            "Spending and refunds are not limited."
        ),
        **MONEY,
    )

    class Meta:
        ordering = ["id"]
        verbose_name = _("loyalty program")
        verbose_name_plural = _("loyalty program")
        constraints = [
            models.CheckConstraint(condition=Q(id=1), name="loyalty_program_singleton"),
            models.CheckConstraint(condition=Q(points_per_yuan__gte=0), name="loyalty_points_per_yuan_gte_0"),
            models.CheckConstraint(condition=Q(points_life_months__gte=1), name="loyalty_points_life_months_gte_1"),
            models.CheckConstraint(
                condition=Q(referral_min_order_amount__gte=0), name="loyalty_referral_min_order_gte_0"
            ),
            models.CheckConstraint(condition=Q(top_up_max_amount__gt=0), name="loyalty_top_up_max_amount_gt_0"),
            models.CheckConstraint(condition=Q(wallet_max_balance__gt=0), name="loyalty_wallet_max_balance_gt_0"),
        ]

    def __str__(self):
        return str(_("Loyalty program"))

    @classmethod
    def current(cls) -> "LoyaltyProgram":
        """The program's settings, created with the defaults the first time they are asked for."""
        program, _created = cls.objects.get_or_create(pk=cls.SINGLETON_ID)
        return program


class PointsAccount(TimeStampedModel):
    """A member's cached balance, changed only under ``points_account_lock`` with a ledger entry.

    ``debt`` is what a refund could not take back because the points were already spent; the
    member's next earnings repay it before they become spendable (see ``members.services.points``).
    """

    member = models.OneToOneField(
        Member, verbose_name=_("member"), on_delete=models.PROTECT, primary_key=True, related_name="points_account"
    )
    balance = models.IntegerField(_("balance"), default=0)
    debt = models.IntegerField(_("debt"), default=0, help_text=_("Points owed after refunds of spent points."))

    class Meta:
        ordering = ["member_id"]
        verbose_name = _("points account")
        verbose_name_plural = _("points accounts")
        constraints = [
            models.CheckConstraint(condition=Q(balance__gte=0), name="points_account_balance_gte_0"),
            models.CheckConstraint(condition=Q(debt__gte=0), name="points_account_debt_gte_0"),
        ]
        permissions = [("adjust_points", _("Can adjust members' points"))]

    def __str__(self):
        return f"{self.member_id}: {self.balance}"


class PointsEntry(TimeStampedModel):
    """One movement of points. Never updated nor deleted: a mistake is corrected by a reversal."""

    class Kind(models.TextChoices):
        EARN = "earn", _("Earned on an order")
        REDEEM = "redeem", _("Redeemed")
        EXPIRE = "expire", _("Expired")
        REFUND_CLAWBACK = "refund_clawback", _("Taken back on a refund")
        ADJUST = "adjust", _("Staff adjustment")
        REFERRAL_REWARD = "referral_reward", _("Referral reward")
        CAMPAIGN_REWARD = "campaign_reward", _("Campaign reward")
        REVERSAL = "reversal", _("Reversal")
        DEBT_REPAYMENT = "debt_repayment", _("Debt repayment")

    # Indexed by ``points_entry_member_created`` (member first): no separate foreign-key index.
    member = models.ForeignKey(
        Member, verbose_name=_("member"), on_delete=models.PROTECT, related_name="points_entries", db_index=False
    )
    kind = models.CharField(_("kind"), max_length=20, choices=Kind.choices)
    points = models.IntegerField(_("points"), help_text=_("Positive adds points, negative takes them."))
    balance_after = models.IntegerField(_("balance after"))
    debt_after = models.IntegerField(_("debt after"), default=0)
    reason = models.CharField(_("reason"), max_length=200, blank=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("by"),
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
    )
    reference = models.CharField(_("reference"), max_length=64, blank=True)  # shown, never searched: no index to write
    order = models.ForeignKey(
        Order, verbose_name=_("order"), on_delete=models.PROTECT, null=True, blank=True, related_name="points_entries"
    )
    reverses = models.OneToOneField(
        "self",
        verbose_name=_("reverses"),
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="reversed_by",
    )
    idempotency_key = models.CharField(_("idempotency key"), max_length=100)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("points entry")
        verbose_name_plural = _("points entries")
        indexes = [
            models.Index(fields=["member", "-created_at"], name="points_entry_member_created"),
            models.Index(fields=["created_at"], name="points_entry_created"),
        ]
        constraints = [
            models.UniqueConstraint(fields=["idempotency_key"], name="points_entry_idempotency_key_unique"),
            models.CheckConstraint(condition=Q(balance_after__gte=0), name="points_entry_balance_after_gte_0"),
            models.CheckConstraint(condition=Q(debt_after__gte=0), name="points_entry_debt_after_gte_0"),
        ]

    def __str__(self):
        return f"{self.get_kind_display()} {self.points:+d}"


class PointsLot(TimeStampedModel):
    """Points credited together that expire together; debits take from the lot expiring first."""

    member = models.ForeignKey(Member, verbose_name=_("member"), on_delete=models.PROTECT, related_name="points_lots")
    points = models.PositiveIntegerField(_("points"))
    remaining = models.IntegerField(_("remaining"))
    earned_at = models.DateTimeField(_("earned at"))
    expires_at = models.DateTimeField(_("expires at"))
    source_entry = models.OneToOneField(
        PointsEntry, verbose_name=_("source entry"), on_delete=models.PROTECT, related_name="lot"
    )

    class Meta:
        ordering = ["expires_at", "id"]
        verbose_name = _("points lot")
        verbose_name_plural = _("points lots")
        indexes = [
            models.Index(
                fields=["member", "expires_at", "id"], condition=Q(remaining__gt=0), name="points_lot_member_open"
            ),
            models.Index(fields=["expires_at"], condition=Q(remaining__gt=0), name="points_lot_open_expiry"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(remaining__gte=0) & Q(remaining__lte=F("points")), name="points_lot_remaining_range"
            ),
            models.CheckConstraint(condition=Q(points__gt=0), name="points_lot_points_gt_0"),
        ]

    def __str__(self):
        return f"{self.remaining}/{self.points}"


class MemberPointsMultiplier(TimeStampedModel):
    """An extra points multiplier on the member's orders paid in ``[starts_at, ends_at)``.

    Data a higher app writes and earning reads: a campaign benefit or a top-up offer (``campaigns``)
    grants one; ``members.services.points`` applies the highest one active when an order was paid.
    Multipliers do not stack: double points twice is still double points. ``source`` says who gave
    it (``campaign:<slug>``, ``offer:<code>``), for people; ``idempotency_key`` makes a grant once.
    """

    member = models.ForeignKey(Member, verbose_name=_("member"), on_delete=models.PROTECT, related_name="+")
    multiplier = models.DecimalField(
        _("multiplier"), max_digits=4, decimal_places=2, validators=[MinValueValidator(Decimal("1.00"))]
    )
    starts_at = models.DateTimeField(_("from"))
    ends_at = models.DateTimeField(_("until"))
    source = models.CharField(_("source"), max_length=100, blank=True)
    idempotency_key = models.CharField(_("idempotency key"), max_length=200, unique=True)

    class Meta:
        ordering = ["-starts_at", "-id"]
        verbose_name = _("points multiplier")
        verbose_name_plural = _("points multipliers")
        indexes = [models.Index(fields=["member", "ends_at"], name="points_multiplier_member_ends")]
        constraints = [
            models.CheckConstraint(condition=Q(ends_at__gt=F("starts_at")), name="points_multiplier_period"),
            models.CheckConstraint(condition=Q(multiplier__gte=1), name="points_multiplier_gte_1"),
        ]

    def __str__(self):
        return f"{self.member_id}: ×{self.multiplier} {self.starts_at:%Y-%m-%d} – {self.ends_at:%Y-%m-%d}"
