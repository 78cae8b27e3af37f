"""Every row lock of the members app, in one place.

Locks are always taken in one order — member, then points account, then referral, then wallet,
then order; by primary key within a kind — so that two requests never deadlock. Call these inside
``transaction.atomic``.

A member is locked ``FOR NO KEY UPDATE`` (PostgreSQL), everywhere — here, in the order path's tier
scan and in the order's insert: it serializes the member's writers like ``FOR UPDATE`` but lets
foreign-key checks through (``FOR KEY SHARE``), so a transaction that inserted rows pointing at the
member (an import's orders, a points entry written under its account lock) never waits for a
member lock when it commits — which deadlocked when the member lock's holder waited for it in turn.
"""

from members import rows
from members.models import Member, Order, PointsAccount, Referral, Wallet

MEMBER_LOCK = " FOR NO KEY UPDATE"  # the member lock's clause in hand-written SQL (see above)


def member_lock(*, member_id: int) -> Member:
    return Member.objects.select_for_update(no_key=True).get(pk=member_id)


def order_lock(*, order_id: int) -> Order:
    return Order.objects.select_for_update().get(pk=order_id)


# --- wallet (stored value) ---


def wallet_lock(*, member_id: int) -> Wallet:
    """Lock the member's wallet row, creating an empty wallet first if the member has none.

    Creation is ``INSERT ... ON CONFLICT DO NOTHING``: when two first uses race, the second insert
    waits for the first to commit and then does nothing, and both go on to lock the one row.
    """
    try:
        return Wallet.objects.select_for_update().get(member_id=member_id)
    except Wallet.DoesNotExist:
        Wallet.objects.bulk_create([Wallet(member_id=member_id)], ignore_conflicts=True)
        return Wallet.objects.select_for_update().get(member_id=member_id)


# --- points and referrals ---
# A points account is member-level: take it after the Member row (if that is locked at all) and
# before the wallet and the order; several accounts in member-id order. A referral row comes after
# the points accounts of its two members.


def points_accounts_lock(*, member_ids) -> dict[int, PointsAccount]:
    """Lock the points accounts of ``member_ids`` in member-id order, creating missing ones first.

    Creation is ``INSERT ... ON CONFLICT DO NOTHING``, so two first uses that race both end up
    locking the one row. Returns the accounts by member id.
    """
    ids = sorted(set(member_ids))
    accounts = {
        a.member_id: a
        for a in PointsAccount.objects.select_for_update().filter(member_id__in=ids).order_by("member_id")
    }
    missing = [member_id for member_id in ids if member_id not in accounts]
    if missing:
        PointsAccount.objects.bulk_create([PointsAccount(member_id=m) for m in missing], ignore_conflicts=True)
        accounts = {
            a.member_id: a
            for a in PointsAccount.objects.select_for_update().filter(member_id__in=ids).order_by("member_id")
        }
    return accounts


def points_account_lock(*, member_id: int) -> PointsAccount:
    """Lock one member's points account (created empty if the member has none). One short statement
    when the account exists (``members.rows``), three when it is created (insert unless a racing
    first use did, then lock)."""
    account = rows.get(PointsAccount, by="member", value=member_id, lock=True)
    if account is None:
        rows.insert(PointsAccount(member_id=member_id), unless_conflict_on=("member",))
        account = rows.get(PointsAccount, by="member", value=member_id, lock=True)
    return account


def referral_lock(*, referral_id: int) -> Referral:
    return Referral.objects.select_for_update().get(pk=referral_id)


# --- tiers ---
def members_lock(*, member_ids) -> list[Member]:
    """Lock many members at once, in primary-key order (the scheduled tier downgrade)."""
    return list(Member.objects.select_for_update(no_key=True).filter(pk__in=sorted(set(member_ids))).order_by("pk"))
