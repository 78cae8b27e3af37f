"""Reconciliation: every cached balance recomputed from its ledger.

Points: ``PointsAccount.balance`` must equal the sum of the member's ``PointsEntry.points`` and the
sum of their lots' ``remaining``. Stored value: ``Wallet.principal`` and ``Wallet.bonus`` must equal
the sums of the wallet's entries' deltas, and the last entry's ``*_after`` fields; each restricted
bonus's ``remaining`` must equal the sum of its moves, and together they never exceed the wallet's bonus. A difference
means a balance was changed outside the services (or a bug): it is reported, never "fixed" here —
a correction is a reversing entry made by a person who knows why.

Set-based: one aggregate query per kind of balance, whatever the number of members.
"""

from dataclasses import dataclass
from decimal import Decimal

from django.db.models import F, IntegerField, OuterRef, Q, Subquery, Sum
from django.db.models.functions import Coalesce

from members.models import (
    PointsAccount,
    PointsEntry,
    PointsLot,
    RestrictedBonus,
    RestrictedBonusMove,
    Wallet,
    WalletEntry,
)

ZERO = Decimal("0.00")


@dataclass(frozen=True)
class Discrepancy:
    kind: str  # "points" or "wallet"
    member_id: int
    mobile: str
    detail: str

    def __str__(self):
        return f"{self.kind} member {self.member_id} ({self.mobile}): {self.detail}"


def balances_reconcile() -> list[Discrepancy]:
    """Every balance that differs from its ledger, across all members."""
    return [*_points_discrepancies(), *_wallet_discrepancies(), *_restricted_bonus_discrepancies()]


def _points_discrepancies() -> list[Discrepancy]:
    ledger = (
        PointsEntry.objects.filter(member_id=OuterRef("member_id"))
        .order_by()
        .values("member_id")
        .annotate(total=Sum("points"))
        .values("total")[:1]
    )
    lots = (
        PointsLot.objects.filter(member_id=OuterRef("member_id"))
        .order_by()
        .values("member_id")
        .annotate(total=Sum("remaining"))
        .values("total")[:1]
    )
    accounts = (
        PointsAccount.objects.annotate(
            ledger=Coalesce(Subquery(ledger, output_field=IntegerField()), 0),
            lots=Coalesce(Subquery(lots, output_field=IntegerField()), 0),
        )
        .filter(~Q(balance=F("ledger")) | ~Q(balance=F("lots")))
        .select_related("member")
        .order_by("member_id")
    )
    found = [
        Discrepancy(
            "points",
            a.member_id,
            a.member.mobile,
            f"balance {a.balance}, ledger sum {a.ledger}, lots remaining {a.lots}",
        )
        for a in accounts
    ]
    orphans = (
        PointsEntry.objects.filter(~Q(member__points_account__isnull=False))
        .values("member_id", "member__mobile")
        .annotate(total=Sum("points"))
        .order_by("member_id")
    )
    found += [
        Discrepancy("points", o["member_id"], o["member__mobile"], f"no account, ledger sum {o['total']}")
        for o in orphans
    ]
    return found


def _wallet_discrepancies() -> list[Discrepancy]:
    sums = WalletEntry.objects.filter(wallet_id=OuterRef("pk")).order_by().values("wallet_id")
    money = Wallet._meta.get_field("principal")
    wallets = (
        Wallet.objects.annotate(
            ledger_principal=Coalesce(
                Subquery(sums.annotate(t=Sum("principal_delta")).values("t")[:1], output_field=money), ZERO
            ),
            ledger_bonus=Coalesce(
                Subquery(sums.annotate(t=Sum("bonus_delta")).values("t")[:1], output_field=money), ZERO
            ),
        )
        .filter(~Q(principal=F("ledger_principal")) | ~Q(bonus=F("ledger_bonus")))
        .select_related("member")
        .order_by("member_id")
    )
    return [
        Discrepancy(
            "wallet",
            w.member_id,
            w.member.mobile,
            f"principal {w.principal} vs ledger {w.ledger_principal}, bonus {w.bonus} vs ledger {w.ledger_bonus}",
        )
        for w in wallets
    ]


def _restricted_bonus_discrepancies() -> list[Discrepancy]:
    money = Wallet._meta.get_field("bonus")
    moved = (
        RestrictedBonusMove.objects.filter(bonus_id=OuterRef("pk"))
        .order_by()
        .values("bonus_id")
        .annotate(t=Sum("delta"))
    )
    bonuses = (
        RestrictedBonus.objects.annotate(moved=Coalesce(Subquery(moved.values("t")[:1], output_field=money), ZERO))
        .filter(~Q(remaining=F("moved")))
        .select_related("wallet__member")
        .order_by("wallet__member_id", "pk")
    )
    held = (
        RestrictedBonus.objects.filter(wallet_id=OuterRef("pk"))
        .order_by()
        .values("wallet_id")
        .annotate(t=Sum("remaining"))
    )
    wallets = (
        Wallet.objects.annotate(restricted=Coalesce(Subquery(held.values("t")[:1], output_field=money), ZERO))
        .filter(restricted__gt=F("bonus"))
        .select_related("member")
        .order_by("member_id")
    )
    return [
        *(
            Discrepancy(
                "wallet",
                b.wallet.member_id,
                b.wallet.member.mobile,
                f"restricted bonus {b.pk}: remaining {b.remaining} vs its moves {b.moved}",
            )
            for b in bonuses
        ),
        *(
            Discrepancy("wallet", w.member_id, w.member.mobile, f"restricted bonus {w.restricted} over bonus {w.bonus}")
            for w in wallets
        ),
    ]
