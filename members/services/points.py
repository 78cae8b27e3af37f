"""Points (积分): earning, redeeming, expiry, refunds, staff adjustments, grants and reversals.

The ledger
    Every movement is one append-only ``PointsEntry`` (signed points, balance and debt after, reason,
    actor, reference, idempotency key). Points that are credited together form a ``PointsLot`` that
    expires as a whole; debits take from the lots that expire first (``expires_at``, then id). After
    every service, for every member: ``account.balance == sum(entries.points) == sum(lots.remaining)``
    and none of them is below zero. A mistake is never edited away: it is corrected by a reversing
    entry (``points_reverse``) or a staff adjustment (``points_adjust``).

Earning
    ``floor(amount paid × points_per_yuan × tier multiplier × birthday multiplier × extra
    multiplier)``, exact ``numeric`` arithmetic rounded down once, at the end. The extra multiplier
    is the highest ``MemberPointsMultiplier`` active when the order was paid — rows a campaign
    benefit or a top-up offer writes (``campaigns``); this module only reads them. One SQL expression
    (``_POINTS_SQL``) says it, for the order path's earning statement and for ``points_for_order``
    alike. Points live for the program's points life (a number of months, or until the end of the
    year after they were earned).

Refunds and debt (the policy)
    A refund takes back the points its order earned in proportion to the money refunded,
    cumulatively: once refunds totalling ``r`` of an order of amount ``a`` are processed, exactly
    ``floor(earned × r / a)`` points have been taken back, so partial refunds add up and a full refund
    takes back exactly what was earned. If the member has already spent (or lost to expiry) some
    of them, the balance still never goes below zero: the service takes what is there (oldest-expiring
    lots first) and records the shortfall as ``debt`` on the account. Debt is not spendable and never
    shown as a negative balance; the member's next credits (orders, rewards, staff additions) repay it
    first, with a ``debt_repayment`` entry, and only the rest becomes spendable. Reversals of grants
    follow the same policy. Redemptions and staff deductions never create debt: they are refused
    ("insufficient points").

Concurrency and retries
    Every write runs in ``transaction.atomic(durable=True)`` under ``points_account_lock`` and takes
    an idempotency key backed by a unique constraint: a retried call returns the first entry; the same
    key used for something else is refused with ``IdempotencyConflict``. Lots whose time has come are
    expired (``points_expire``, daily) and also just before any debit of the member, so expired
    points can never be spent.
"""

import calendar
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from functools import cache
from zoneinfo import ZoneInfo

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import DEFAULT_DB_ALIAS, IntegrityError, connection, connections, transaction
from django.db.models import F, OuterRef, Subquery, Sum, Window
from django.utils import timezone
from django.utils.translation import gettext as _g
from django.utils.translation import gettext_lazy as _

from members import rows
from members.caching import ProcessCache
from members.lock_objects import points_account_lock, points_accounts_lock
from members.models import (
    LoyaltyProgram,
    Member,
    MemberPointsMultiplier,
    Order,
    PointsAccount,
    PointsEntry,
    PointsLot,
    Refund,
)
from members.services.errors import IdempotencyConflict

Kind = PointsEntry.Kind

ADJUST_PERMISSION = "members.adjust_points"
GRANT_KINDS = frozenset({Kind.REFERRAL_REWARD, Kind.CAMPAIGN_REWARD})
REVERSIBLE_KINDS = frozenset({Kind.EARN, Kind.ADJUST, Kind.REFERRAL_REWARD, Kind.CAMPAIGN_REWARD})
MAX_KEY_LENGTH = 100
EXPIRY_CHUNK_MEMBERS = 500

# Read on every order: cached per process (see ``members.caching``); saving the program clears it.
_cached_program = ProcessCache(LoyaltyProgram.current, watch=(LoyaltyProgram,))


# --- public services -------------------------------------------------------------------------


# The points an order earns, in SQL over ``%(member)s``, ``%(paid_at)s``, ``%(amount)s`` and
# ``%(multiplier)s`` (``_own_multiplier``): the extra multiplier is the highest one active when the
# order was paid. Multipliers do not stack — double points twice is still double points.
_POINTS_SQL = (
    "CAST(FLOOR(CAST(%(amount)s AS numeric) * CAST(%(multiplier)s AS numeric) * COALESCE(("
    "SELECT MAX(x.multiplier) FROM {multipliers} x WHERE x.member_id = %(member)s "
    "AND x.starts_at <= %(paid_at)s AND x.ends_at > %(paid_at)s), 1)) AS integer)"
)


def _points_sql() -> str:
    return _POINTS_SQL.format(multipliers=connection.ops.quote_name(MemberPointsMultiplier._meta.db_table))


def _points_params(order: Order, program: LoyaltyProgram) -> dict:
    return {
        "member": order.member_id,
        "paid_at": connection.ops.adapt_datetimefield_value(order.paid_at),
        "amount": order.amount,
        "multiplier": _own_multiplier(order, program),
    }


def points_for_order(*, order: Order, program: LoyaltyProgram | None = None) -> int:
    """The points ``order`` earns (one query: ``_POINTS_SQL``)."""
    program = program or LoyaltyProgram.current()
    ((points,),) = rows.fetch_prepared(f"SELECT {_points_sql()}", _points_params(order, program))
    return points


def _own_multiplier(order: Order, program: LoyaltyProgram) -> Decimal:
    """Points per yuan × the member's tier multiplier × the birthday multiplier: what the program
    and the member's tier say (the extra multiplier is read in SQL)."""
    member = order.member
    multiplier = program.points_per_yuan
    if member.tier is not None:
        multiplier *= member.tier.points_multiplier
        if _is_birthday(member, order.paid_at):
            multiplier *= member.tier.birthday_points_multiplier
    return multiplier


def points_earn_for_order(*, order_id: int) -> PointsEntry | None:
    """Credit the points a paid order earns, once (key ``order:<id>:earn``).

    Returns the earn entry (the first one on a retry), or ``None`` when the order earns nothing.
    Refunds of the order recorded before its points were earned take their share back at once.
    """
    order = Order.objects.select_related("member__tier").get(pk=order_id)
    key = f"order:{order.pk}:earn"

    def run() -> PointsEntry | None:
        with transaction.atomic(durable=True):
            account = points_account_lock(member_id=order.member_id)
            existing = _existing_entry(key, member_id=order.member_id, kind=Kind.EARN)
            if existing is not None:
                return existing
            program = LoyaltyProgram.current()
            points = points_for_order(order=order, program=program)
            if points <= 0:
                return None
            entry = _credit(
                account,
                points=points,
                kind=Kind.EARN,
                reason=_g("Order %(order)s") % {"order": order.external_id},
                idempotency_key=key,
                earned_at=order.paid_at,
                reference=f"order:{order.pk}",
                order=order,
                program=program,
            )
            for refund in Refund.objects.filter(order_id=order.pk).order_by("id"):
                _clawback(account, refund=refund, order=order, earn=entry)
            return entry

    return _retrying_on_key(key, run, member_id=order.member_id, kind=Kind.EARN)


def points_earn_for_new_order(*, order: Order) -> PointsEntry | None:
    """``points_earn_for_order`` for an order recorded in the current transaction (the
    ``order_recorded`` in-transaction handler, after the tier): the same points in fewer statements
    — the program is cached, and a new order has no earning and no refunds yet to look for.
    ``order.member.tier`` must be the member's tier now (``tier_evaluate_for_new_order`` sees to it)."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("points_earn_for_new_order runs inside the transaction that recorded the order")
    program = _cached_program.get()
    reason = _g("Order %(order)s") % {"order": order.external_id}
    key, reference = f"order:{order.pk}:earn", f"order:{order.pk}"
    points, entry = _earn_at_once(order=order, reason=reason, key=key, reference=reference, program=program)
    if entry is not None:
        return entry
    if points <= 0:
        return None
    return _credit(
        points_account_lock(member_id=order.member_id),
        points=points,
        kind=Kind.EARN,
        reason=reason,
        idempotency_key=key,
        earned_at=order.paid_at,
        reference=reference,
        order=order,
        program=program,
    )


def _earn_at_once(
    *, order: Order, reason: str, key: str, reference: str, program: LoyaltyProgram
) -> tuple[int, PointsEntry | None]:
    """What ``points_for_order`` and ``_credit`` do for an earning, as one statement — the common
    case of every order: compute the points (``_POINTS_SQL``), lock the account, append the entry with the balance
    after it, open its lot, raise the balance. Returns the points and the entry; the entry is None,
    and nothing written, when there are no points or the account is missing or owes points (then
    the general path creates it or repays the debt first)."""
    now = timezone.now()
    entry = PointsEntry(
        member_id=order.member_id,
        kind=Kind.EARN,
        points=0,  # computed in the statement
        balance_after=0,  # from the locked account, in the statement
        debt_after=0,
        reason=str(reason)[:200],
        reference=reference[:64],
        order_id=order.pk,
        idempotency_key=key,
        created_at=now,
        updated_at=now,
    )
    lot = {  # the lot's columns the statement does not compute (a new column must be added here)
        "member_id": order.member_id,
        "earned_at": order.paid_at,
        "expires_at": _expires_at(order.paid_at, program),
        "created_at": now,
        "updated_at": now,
    }
    sql, entry_fields, lot_fields = _earn_statement()
    db = connections[DEFAULT_DB_ALIAS]  # once: each ``connection.x`` looks the connection up again
    params = {**_points_params(order, program), "now": db.ops.adapt_datetimefield_value(now)}
    params.update((f"e_{f.attname}", f.get_db_prep_save(getattr(entry, f.attname), db)) for f in entry_fields)
    params.update((f"l_{f.attname}", f.get_db_prep_save(lot[f.attname], db)) for f in lot_fields)
    ((points, entry_id, balance_after),) = rows.fetch_prepared(sql, params)
    if entry_id is None:
        return points, None
    entry.pk, entry.points, entry.balance_after = entry_id, points, balance_after
    entry._state.adding, entry._state.db = False, db.alias
    return points, entry


# Columns the earning statement computes rather than takes as parameters.
_EARN_ENTRY_SQL = {"points": "p.points", "balance_after": "a.balance + p.points"}
_EARN_LOT_SQL = {"points": "e.points", "remaining": "e.points", "source_entry": "e.id"}


@cache
def _earn_statement() -> tuple[str, tuple, tuple]:
    quote = connection.ops.quote_name

    def columns(fields):
        return ", ".join(quote(f.column) for f in fields)

    def values(fields, computed, prefix):
        return ", ".join(
            computed.get(f.name) or f"CAST(%({prefix}_{f.attname})s AS {f.cast_db_type(connection)})" for f in fields
        )

    entry_fields = tuple(f for f in PointsEntry._meta.concrete_fields if not f.primary_key)
    lot_fields = tuple(f for f in PointsLot._meta.concrete_fields if not f.primary_key)
    account, entries, lots = (quote(m._meta.db_table) for m in (PointsAccount, PointsEntry, PointsLot))
    sql = f"""
        WITH p AS (SELECT {_points_sql()} AS points),
        a AS (SELECT member_id, balance FROM {account} WHERE member_id = %(member)s AND debt = 0 FOR UPDATE),
        e AS (INSERT INTO {entries} ({columns(entry_fields)})
              SELECT {values(entry_fields, _EARN_ENTRY_SQL, "e")} FROM a, p WHERE p.points > 0
              RETURNING id, points, balance_after),
        l AS (INSERT INTO {lots} ({columns(lot_fields)}) SELECT {values(lot_fields, _EARN_LOT_SQL, "l")} FROM e),
        u AS (UPDATE {account} SET balance = e.balance_after, updated_at = %(now)s FROM e
              WHERE {account}.member_id = %(member)s)
        SELECT p.points, e.id, e.balance_after FROM p LEFT JOIN e ON TRUE
    """  # noqa: S608 - names from model metadata, values are parameters
    entry_fields = tuple(f for f in entry_fields if f.name not in _EARN_ENTRY_SQL)
    lot_fields = tuple(f for f in lot_fields if f.name not in _EARN_LOT_SQL)
    return sql, entry_fields, lot_fields


def points_redeem(
    *,
    member: Member,
    points: int,
    idempotency_key: str,
    reason: str,
    actor=None,
    reference: str = "",
) -> PointsEntry:
    """Spend ``points`` from the lots that expire first. Never below zero: "insufficient points"."""
    points = _positive_points(points)
    key = _client_key(idempotency_key)

    def run() -> PointsEntry:
        with transaction.atomic(durable=True):
            account = points_account_lock(member_id=member.pk)
            return points_redeem_locked(
                account=account, points=points, idempotency_key=key, reason=reason, actor=actor, reference=reference
            )

    return _retrying_on_key(key, run, member_id=member.pk, kind=Kind.REDEEM, points=-points)


def points_expire(*, as_of: datetime) -> int:
    """Expire what is left of every lot with ``expires_at <= as_of``; returns the points expired.

    One ``expire`` entry per lot (key ``lot:<id>:expire``). Set-based, walking the members with
    something to expire in id order, a chunk per transaction. Running it again changes nothing.
    """
    if timezone.is_naive(as_of):
        raise ValueError("as_of must be timezone-aware")
    total, after = 0, 0
    while True:
        member_ids = list(
            PointsLot.objects.filter(remaining__gt=0, expires_at__lte=as_of, member_id__gt=after)
            .order_by("member_id")
            .values_list("member_id", flat=True)
            .distinct()[:EXPIRY_CHUNK_MEMBERS]
        )
        if not member_ids:
            return total
        with transaction.atomic(durable=True):
            accounts = points_accounts_lock(member_ids=member_ids)
            total += _expire_due_lots(accounts, as_of=as_of)
        after = member_ids[-1]


def points_clawback_for_refund(*, refund_id: int) -> PointsEntry | None:
    """Take back the refunded share of what the refund's order earned, once (``refund:<id>:clawback``).

    Returns the clawback entry, or ``None`` when there is nothing to take back (the order earned
    nothing, or not yet: its earning will then apply this refund itself). See the module docstring
    for the policy when the points were already spent.
    """
    refund = Refund.objects.select_related("order").get(pk=refund_id)
    order = refund.order
    key = f"refund:{refund.pk}:clawback"

    def run() -> PointsEntry | None:
        with transaction.atomic(durable=True):
            account = points_account_lock(member_id=order.member_id)
            return points_clawback_locked(account=account, refund=refund, order=order)

    return _retrying_on_key(key, run, member_id=order.member_id, kind=Kind.REFUND_CLAWBACK)


def points_clawback_locked(*, account: PointsAccount, refund: Refund, order: Order) -> PointsEntry | None:
    """``points_clawback_for_refund`` inside the caller's transaction, ``account`` (the order's
    member's) locked — ``refund_record`` calls it in the refund's transaction."""
    earn = PointsEntry.objects.filter(idempotency_key=f"order:{order.pk}:earn").first()
    if earn is None:
        return None
    return _clawback(account, refund=refund, order=order, earn=earn)


def points_adjust(*, member: Member, points: int, reason: str, actor, idempotency_key: str) -> PointsEntry:
    """A staff correction: positive adds a lot, negative takes the oldest-expiring points.

    Needs the ``members.adjust_points`` permission and a reason; may not go below zero.
    """
    if actor is None or not actor.has_perm(ADJUST_PERMISSION):
        raise PermissionDenied(_("You are not allowed to adjust points."))
    reason = (reason or "").strip()
    if not reason:
        raise _invalid("reason", _("Give a reason for the adjustment."), "required")
    if isinstance(points, bool) or not isinstance(points, int) or points == 0:
        raise _invalid("points", _("Adjust by a whole number of points other than zero."), "invalid")
    key = _client_key(idempotency_key)

    def run() -> PointsEntry:
        with transaction.atomic(durable=True):
            account = points_account_lock(member_id=member.pk)
            existing = _existing_entry(key, member_id=member.pk, kind=Kind.ADJUST, points=points)
            if existing is not None:
                return existing
            if points > 0:
                return _credit(
                    account,
                    points=points,
                    kind=Kind.ADJUST,
                    reason=reason,
                    idempotency_key=key,
                    earned_at=timezone.now(),
                    actor=actor,
                )
            return _debit(
                account,
                points=-points,
                kind=Kind.ADJUST,
                allow_debt=False,
                reason=reason,
                idempotency_key=key,
                actor=actor,
            )

    return _retrying_on_key(key, run, member_id=member.pk, kind=Kind.ADJUST, points=points)


def points_grant(
    *,
    member: Member,
    points: int,
    kind: str,
    reason: str,
    idempotency_key: str,
    reference: str = "",
    actor=None,
) -> PointsEntry:
    """Give ``points`` as a reward (``referral_reward``, ``campaign_reward``): a new lot."""
    points = _positive_points(points)
    key = _client_key(idempotency_key)

    def run() -> PointsEntry:
        with transaction.atomic(durable=True):
            account = points_account_lock(member_id=member.pk)
            return points_grant_locked(
                account=account,
                points=points,
                kind=kind,
                reason=reason,
                idempotency_key=key,
                reference=reference,
                actor=actor,
            )

    return _retrying_on_key(key, run, member_id=member.pk, kind=kind, points=points)


def points_reverse(*, entry: PointsEntry, idempotency_key: str, reason: str, actor=None) -> PointsEntry:
    """Take back what ``entry`` credited (same policy as refunds: no negative balance, the rest is debt).

    An entry is reversed at most once: reversing it again returns the first reversal.
    """
    key = _client_key(idempotency_key)

    def run() -> PointsEntry:
        with transaction.atomic(durable=True):
            account = points_account_lock(member_id=entry.member_id)
            return points_reverse_locked(account=account, entry=entry, idempotency_key=key, reason=reason, actor=actor)

    return _retrying_on_key(key, run, member_id=entry.member_id, kind=Kind.REVERSAL)


# --- building blocks for services that already hold the account lock (referrals, campaigns) ------


def points_grant_locked(
    *,
    account: PointsAccount,
    points: int,
    kind: str,
    reason: str,
    idempotency_key: str,
    reference: str = "",
    actor=None,
) -> PointsEntry:
    """``points_grant`` inside the caller's transaction, ``account`` locked by the caller."""
    if kind not in GRANT_KINDS:
        raise _invalid("kind", _("Points can be granted only as a reward."), "invalid")
    points = _positive_points(points)
    existing = _existing_entry(idempotency_key, member_id=account.member_id, kind=kind, points=points)
    if existing is not None:
        return existing
    return _credit(
        account,
        points=points,
        kind=kind,
        reason=reason,
        idempotency_key=idempotency_key,
        earned_at=timezone.now(),
        reference=reference,
        actor=actor,
    )


def points_expire_due_locked(*, account: PointsAccount, as_of: datetime | None = None) -> int:
    """Expire the member's lots due by ``as_of`` (now) before the nightly sweep gets to them, inside
    the caller's transaction, ``account`` locked by the caller; ``account.balance`` is then what can
    be spent or taken back. Returns the points expired. Every debit does this first; a caller that
    decides on the balance before a debit (campaigns: "the balance covers the reward") calls it
    before it reads the balance."""
    return _expire_due_lots({account.member_id: account}, as_of=as_of or timezone.now())


def points_redeem_locked(
    *,
    account: PointsAccount,
    points: int,
    idempotency_key: str,
    reason: str,
    actor=None,
    reference: str = "",
) -> PointsEntry:
    """``points_redeem`` inside the caller's transaction, ``account`` locked by the caller (the
    points catalogue of ``campaigns``): the same debit — due lots expired first, then the lots that
    expire first; refused, never below zero, with "insufficient points" on ``points``. The same key
    returns the first entry; the same key for other points or another member is a conflict."""
    points = _positive_points(points)
    existing = _existing_entry(idempotency_key, member_id=account.member_id, kind=Kind.REDEEM, points=-points)
    if existing is not None:
        return existing
    return _debit(
        account,
        points=points,
        kind=Kind.REDEEM,
        allow_debt=False,
        reason=reason,
        idempotency_key=idempotency_key,
        actor=actor,
        reference=reference,
    )


def points_return_locked(
    *, account: PointsAccount, entry: PointsEntry, idempotency_key: str, reason: str, actor=None
) -> PointsEntry:
    """Give back what a redemption (``entry``, kind ``redeem``) took, once: a ``reversal`` credit that
    names it (``reverses``). Debt is repaid first, as with any credit; the rest is a lot that lives as
    if earned when the redemption was made (so giving points back never extends their life beyond
    that). Returning it again returns the first return. ``account`` locked by the caller."""
    if account.member_id != entry.member_id:
        raise ValueError("the locked account is not the entry's member's")
    existing = _existing_entry(idempotency_key, member_id=entry.member_id, kind=Kind.REVERSAL)
    if existing is not None:
        if existing.reverses_id != entry.pk:
            raise _conflict(idempotency_key)
        return existing
    earlier = PointsEntry.objects.filter(reverses_id=entry.pk).first()
    if earlier is not None:
        return earlier
    if entry.kind != Kind.REDEEM or entry.points >= 0:
        raise _invalid("entry", _("Only redemptions can be given back."), "not_reversible")
    return _credit(
        account,
        points=-entry.points,
        kind=Kind.REVERSAL,
        reason=reason,
        idempotency_key=idempotency_key,
        earned_at=entry.created_at,
        actor=actor,
        reference=entry.reference,
        reverses=entry,
    )


def points_reverse_locked(
    *, account: PointsAccount, entry: PointsEntry, idempotency_key: str, reason: str, actor=None
) -> PointsEntry:
    """``points_reverse`` inside the caller's transaction, ``account`` locked by the caller."""
    if account.member_id != entry.member_id:
        raise ValueError("the locked account is not the entry's member's")
    existing = _existing_entry(idempotency_key, member_id=entry.member_id, kind=Kind.REVERSAL)
    if existing is not None:
        if existing.reverses_id != entry.pk:
            raise _conflict(idempotency_key)
        return existing
    earlier = PointsEntry.objects.filter(reverses_id=entry.pk).first()
    if earlier is not None:
        return earlier
    if entry.kind not in REVERSIBLE_KINDS or entry.points <= 0:
        raise _invalid("entry", _("Only entries that added points can be reversed."), "not_reversible")
    points = entry.points
    if entry.kind == Kind.EARN:
        # Refunds of the order may have taken some of these points back already.
        clawed_back = -(
            PointsEntry.objects.filter(order_id=entry.order_id, kind=Kind.REFUND_CLAWBACK).aggregate(
                total=Sum("points")
            )["total"]
            or 0
        )
        points -= clawed_back
        if points <= 0:
            raise _invalid("entry", _("Refunds have already taken these points back."), "not_reversible")
    return _debit(
        account,
        points=points,
        kind=Kind.REVERSAL,
        allow_debt=True,
        reason=reason,
        idempotency_key=idempotency_key,
        actor=actor,
        reference=entry.reference,
        order_id=entry.order_id,
        reverses=entry,
    )


# --- internals -------------------------------------------------------------------------------


def _credit(
    account: PointsAccount,
    *,
    points: int,
    kind: str,
    reason: str,
    idempotency_key: str,
    earned_at: datetime,
    actor=None,
    reference: str = "",
    order: Order | None = None,
    program: LoyaltyProgram | None = None,
    reverses: PointsEntry | None = None,
) -> PointsEntry:
    """Add ``points``: debt is repaid first, the rest becomes a lot. Returns the credit entry."""
    program = program or LoyaltyProgram.current()
    account.balance += points
    entry = _append(
        account,
        kind=kind,
        points=points,
        reason=reason,
        key=idempotency_key,
        actor=actor,
        reference=reference,
        order_id=order.pk if order else None,
        reverses=reverses,
    )
    repaid = min(account.debt, points)
    if repaid:
        account.balance -= repaid
        account.debt -= repaid
        _append(
            account,
            kind=Kind.DEBT_REPAYMENT,
            points=-repaid,
            reason=_g("Repays points owed after a refund"),
            key=f"entry:{entry.pk}:debt_repayment",
            reference=reference,
            order_id=order.pk if order else None,
        )
    if points - repaid:
        lot = PointsLot(
            member_id=account.member_id,
            points=points - repaid,
            remaining=points - repaid,
            earned_at=earned_at,
            expires_at=_expires_at(earned_at, program),
            source_entry=entry,
        )
        rows.insert(lot)
    rows.update(account, "balance", "debt")
    return entry


def _debit(
    account: PointsAccount,
    *,
    points: int,
    kind: str,
    allow_debt: bool,
    reason: str,
    idempotency_key: str,
    actor=None,
    reference: str = "",
    order_id: int | None = None,
    reverses: PointsEntry | None = None,
) -> PointsEntry:
    """Take ``points`` (> 0) from the lots expiring first; the part that is not there is refused
    or, with ``allow_debt``, becomes debt."""
    _expire_due_lots({account.member_id: account}, as_of=timezone.now())
    if points > account.balance and not allow_debt:
        raise _invalid(
            "points",
            _("Insufficient points: %(balance)s available, %(points)s asked.")
            % {"balance": account.balance, "points": points},
            "insufficient_points",
        )
    taken = min(points, account.balance)
    if taken:
        _take_from_lots(account.member_id, taken)
    account.balance -= taken
    account.debt += points - taken
    entry = _append(
        account,
        kind=kind,
        points=-taken,
        reason=reason,
        key=idempotency_key,
        actor=actor,
        reference=reference,
        order_id=order_id,
        reverses=reverses,
    )
    rows.update(account, "balance", "debt")
    return entry


def _take_from_lots(member_id: int, points: int) -> None:
    """Lower the remainders of the member's open lots, first to expire first, by ``points`` in all.

    Only the lots needed are read: those whose running total before them is under ``points``.
    """
    running = Window(Sum("remaining"), order_by=[F("expires_at").asc(), F("id").asc()])
    lots = list(
        PointsLot.objects.filter(member_id=member_id, remaining__gt=0)
        .annotate(running=running)
        .filter(running__lt=points + F("remaining"))
        .order_by("expires_at", "id")
        .only("id", "remaining")
    )
    left = points
    for lot in lots:
        used = min(lot.remaining, left)
        lot.remaining -= used
        left -= used
    if left:
        raise AssertionError(f"points lots of member {member_id} do not cover the balance")
    now = timezone.now()
    for lot in lots:
        lot.updated_at = now
    PointsLot.objects.bulk_update(lots, ["remaining", "updated_at"])


def _clawback(account: PointsAccount, *, refund: Refund, order: Order, earn: PointsEntry) -> PointsEntry | None:
    """The share of ``earn`` that ``refund`` takes back (cumulative over the order's refunds)."""
    key = f"refund:{refund.pk}:clawback"
    existing = _existing_entry(key, member_id=account.member_id, kind=Kind.REFUND_CLAWBACK)
    if existing is not None:
        return existing
    if PointsEntry.objects.filter(reverses_id=earn.pk).exists():
        return None  # the earning was reversed as a whole already
    before = Refund.objects.filter(order_id=order.pk, id__lt=refund.pk).aggregate(total=Sum("amount"))["total"]
    cents_before = _cents(before or Decimal(0))
    cents_upto = cents_before + _cents(refund.amount)
    cents_paid = _cents(order.amount)
    points = earn.points * cents_upto // cents_paid - earn.points * cents_before // cents_paid
    if points <= 0:
        return None
    return _debit(
        account,
        points=points,
        kind=Kind.REFUND_CLAWBACK,
        allow_debt=True,
        reason=_g("Refund %(refund)s of order %(order)s") % {"refund": refund.external_id, "order": order.external_id},
        idempotency_key=key,
        reference=f"refund:{refund.pk}",
        order_id=order.pk,
    )


def _expire_due_lots(accounts: dict[int, PointsAccount], *, as_of: datetime) -> int:
    """Expire the open lots of the locked ``accounts`` due by ``as_of``, in four statements.

    The accounts are locked, so the due lots cannot change between the statements: the balances
    are lowered by the sum of exactly the lots that are then set to zero.
    """
    due_lots = PointsLot.objects.filter(member_id__in=list(accounts), remaining__gt=0, expires_at__lte=as_of)
    due = list(due_lots.order_by("member_id", "expires_at", "id").values_list("id", "member_id", "remaining"))
    if not due:
        return 0
    reason = _g("Points expired")
    entries = []
    for lot_id, member_id, remaining in due:
        account = accounts[member_id]
        account.balance -= remaining
        entries.append(
            PointsEntry(
                member_id=member_id,
                kind=Kind.EXPIRE,
                points=-remaining,
                balance_after=account.balance,
                debt_after=account.debt,
                reason=reason,
                reference=f"lot:{lot_id}",
                idempotency_key=f"lot:{lot_id}:expire",
            )
        )
    now = timezone.now()
    PointsEntry.objects.bulk_create(entries, batch_size=1000)
    expiring = due_lots.filter(member_id=OuterRef("member_id")).values("member_id").annotate(total=Sum("remaining"))
    touched = {member_id for _l, member_id, _r in due}
    PointsAccount.objects.filter(member_id__in=touched).update(
        balance=F("balance") - Subquery(expiring.values("total")), updated_at=now
    )
    due_lots.update(remaining=0, updated_at=now)
    for member_id in touched:
        accounts[member_id].updated_at = now
    return sum(remaining for _l, _m, remaining in due)


def _append(
    account: PointsAccount,
    *,
    kind: str,
    points: int,
    reason: str,
    key: str,
    actor=None,
    reference: str = "",
    order_id: int | None = None,
    reverses: PointsEntry | None = None,
) -> PointsEntry:
    """Write one ledger row; ``account`` already holds the balance and debt after it."""
    entry = PointsEntry(
        member_id=account.member_id,
        kind=kind,
        points=points,
        balance_after=account.balance,
        debt_after=account.debt,
        reason=str(reason)[:200],
        actor=actor,
        reference=reference[:64],
        order_id=order_id,
        reverses=reverses,
        idempotency_key=key,
    )
    rows.insert(entry)
    return entry


def _existing_entry(key: str, *, member_id: int, kind: str, points: int | None = None) -> PointsEntry | None:
    """The entry written under ``key`` before, if any; refused if it was for something else."""
    entry = PointsEntry.objects.filter(idempotency_key=key).first()
    if entry is None:
        return None
    if entry.member_id != member_id or entry.kind != kind or (points is not None and entry.points != points):
        raise _conflict(key)
    return entry


def _retrying_on_key(key: str, run: Callable[[], PointsEntry | None], **expected) -> PointsEntry | None:
    """Run ``run``; if a concurrent call committed the same key first, answer with its entry."""
    try:
        return run()
    except IntegrityError:
        existing = _existing_entry(key, **expected)
        if existing is None:
            raise
        return existing


def _conflict(key: str) -> IdempotencyConflict:
    message = _(
        "The idempotency key %(key)s was already used for a different operation; send a new key for a new operation."
    ) % {"key": key}
    return IdempotencyConflict({"idempotency_key": ValidationError(message, code="conflict")})


def _invalid(field: str, message, code: str) -> ValidationError:
    return ValidationError({field: ValidationError(message, code=code)})


def _client_key(key: str) -> str:
    key = (key or "").strip()
    if not key:
        raise _invalid("idempotency_key", _("An idempotency key is required."), "required")
    if len(key) > MAX_KEY_LENGTH:
        raise _invalid(
            "idempotency_key",
            _("An idempotency key has at most %(n)s characters.") % {"n": MAX_KEY_LENGTH},
            "max_length",
        )
    return key


def _positive_points(points: int) -> int:
    if isinstance(points, bool) or not isinstance(points, int) or points <= 0:
        raise _invalid("points", _("Points must be a whole number greater than zero."), "invalid")
    return points


def _cents(amount: Decimal) -> int:
    return int(amount * 100)


def _local_zone() -> ZoneInfo:
    return ZoneInfo(settings.TIME_ZONE)


def _is_birthday(member: Member, paid_at: datetime) -> bool:
    """Whether ``paid_at`` falls on the member's birthday (month and day, in the brand's time zone).

    Members born on 29 February celebrate on the 28th in other years.
    """
    birthday = member.birthday
    if birthday is None:
        return False
    day = paid_at.astimezone(_local_zone()).date()
    if (birthday.month, birthday.day) == (day.month, day.day):
        return True
    return (
        (birthday.month, birthday.day) == (2, 29) and not calendar.isleap(day.year) and (day.month, day.day) == (2, 28)
    )


def _expires_at(earned_at: datetime, program: LoyaltyProgram) -> datetime:
    local = earned_at.astimezone(_local_zone())
    if program.points_life_policy == LoyaltyProgram.PointsLife.END_OF_NEXT_YEAR:
        return datetime(local.year + 2, 1, 1, tzinfo=local.tzinfo)
    return _add_months(local, program.points_life_months)


def _add_months(value: datetime, months: int) -> datetime:
    index = value.month - 1 + months
    year, month = value.year + index // 12, index % 12 + 1
    return value.replace(year=year, month=month, day=min(value.day, calendar.monthrange(year, month)[1]))


__all__ = [
    "ADJUST_PERMISSION",
    "points_adjust",
    "points_clawback_for_refund",
    "points_clawback_locked",
    "points_earn_for_order",
    "points_expire",
    "points_expire_due_locked",
    "points_for_order",
    "points_grant",
    "points_grant_locked",
    "points_redeem",
    "points_redeem_locked",
    "points_return_locked",
    "points_reverse",
    "points_reverse_locked",
]
