"""Stored value (储值): topping up, spending and refunding a member's wallet.

A wallet holds **principal** (money the member paid in) and **bonus** (granted by a top-up offer)
apart. Every service here:

- runs in its own durable transaction and changes balances only under the wallet's row lock
  (``members.lock_objects.wallet_lock``; the wallet is created on first use);
- writes one immutable ``WalletEntry`` (signed deltas, the balances after, who, why) and never
  updates or deletes an entry — a mistake is corrected by a new entry;
- is idempotent: the same ``idempotency_key`` with the same arguments returns the entry recorded
  the first time without moving money again; the same key with different arguments is refused with
  ``IdempotencyConflict``;
- never lets a balance go negative (checked here, and by the database's ``CheckConstraint``).

**Which part pays: the proportional rule** (``split_proportionally``, the one place it is computed).
An amount taken from a pair of parts (principal P, bonus B) is split in proportion to them: the
bonus share is ``amount × B / (P + B)`` rounded *down* to the cent and the principal pays the rest.
If one part cannot cover its share, the other pays the remainder. The rule is applied to:

- a spend, with P and B the wallet's balances just before the spend;
- a spend refund, with P and B what that spend took and has not yet been refunded (less what it took
  from a restricted bonus whose top-up was refunded since: see below) — so a refund goes
  back to the parts the spend came from, partial refunds in proportion to them, and refunds of a
  spend never exceed it, in total or per part.

A top-up refund returns the top-up's principal only if the wallet still holds it (otherwise it is
refused), claws back what is left of its bonus (``min(top-up bonus, bonus balance)``), and happens at
most once per top-up.

**Top-up ceilings** (``top_up_limits``): every way money enters a wallet — a till, the mini-program's
WeChat Pay top-up, the admin, an offer's bonus — goes through ``wallet_top_up``, which refuses

- a top-up paying in more than the **largest top-up** (``amount_paid`` alone; ¥5,000 by default), and
- a top-up after which the wallet (principal plus bonus, the offer's bonus included) would hold more
  than the **largest wallet balance** (¥50,000 by default).

Both are the brand's (``LoyaltyProgram``) unless the store the top-up is made at sets its own
(``Store.top_up_max_amount`` / ``wallet_max_balance``). The balance is checked under the wallet's
row lock, so two top-ups racing towards the ceiling cannot both pass it. Spending and refunds are
never limited. A refusal is a ``ValidationError`` on ``amount_paid`` and writes nothing.

**Blocked members** (``Member.is_active`` false) can neither top up nor spend; refunds still reach them.

**Restricted bonus** (seed 002: 储值300送50，但必须搭配唤醒商品使用; ``RestrictedBonus``). A top-up given
a ``restriction`` keeps its bonus as a restricted bonus: part of the wallet's bonus, usable only on
eligible products. A spend may name the ``lines`` it pays for (sku and amount, adding up to the
spend): each restricted bonus first pays the eligible lines (the bonus whose products are fewest
first, then the oldest; within it, the lines fewest bonuses can pay first), and the rest of the
spend is split between the principal and the **unrestricted** bonus by the proportional rule. A
spend without lines never touches a restricted bonus. A spend refund gives back to the parts the
spend came from (its restricted share in proportion to the bonus it took); a top-up refund claws
back what is left of its own restricted bonus, and closes it: what spends took from that bonus is no
longer refundable (a spend refund after the top-up's refund gives back only the spend's other parts,
so the member never regains bonus of a refunded top-up; a refund asking for more is ``over_refund``).
The lines are part of the request: the same key with other lines is a conflict.
"""

import hashlib
import json
from collections import Counter
from collections.abc import Sequence
from decimal import Decimal
from typing import NamedTuple

from django.contrib.auth.base_user import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Exists, F, OuterRef, Q, Sum
from django.utils.translation import gettext_lazy as _

from members.lock_objects import wallet_lock
from members.models import (
    LoyaltyProgram,
    Member,
    RestrictedBonus,
    RestrictedBonusMove,
    Restriction,
    Store,
    Wallet,
    WalletEntry,
)
from members.money import CENT, to_money
from members.selectors import wallet_restricted_bonuses
from members.services.errors import IdempotencyConflict
from members.services.products import PaidLine, PricedLine, lines_invalid, paid_lines_price

__all__ = [
    "IdempotencyConflict",
    "Split",
    "TopUpLimits",
    "member_active_check",
    "split_proportionally",
    "top_up_limits",
    "top_up_within_limits",
    "wallet_refund_spend",
    "wallet_refund_top_up",
    "wallet_spend",
    "wallet_top_up",
]

ZERO = Decimal("0.00")
Kind = WalletEntry.Kind


class Split(NamedTuple):
    principal: Decimal
    bonus: Decimal


def split_proportionally(*, amount: Decimal, principal: Decimal, bonus: Decimal) -> Split:
    """Split ``amount`` between ``principal`` and ``bonus`` by the proportional rule (see above).

    The bonus share is ``amount × bonus / (principal + bonus)`` rounded down to the cent; the
    principal pays the rest; if a part cannot cover its share the other pays the remainder.
    Requires ``0 <= amount <= principal + bonus``. Computed in whole cents, so it is exact.
    """
    if amount < 0 or principal < 0 or bonus < 0 or amount > principal + bonus:
        raise ValueError(f"cannot take {amount} from principal {principal} and bonus {bonus}")
    amount_c, principal_c, bonus_c = (int(value / CENT) for value in (amount, principal, bonus))
    total_c = principal_c + bonus_c
    bonus_share = amount_c * bonus_c // total_c if total_c else 0
    principal_share = amount_c - bonus_share
    if principal_share > principal_c:  # principal short: the bonus pays the remainder
        principal_share, bonus_share = principal_c, amount_c - principal_c
    if bonus_share > bonus_c:  # bonus short: the principal pays the remainder
        principal_share, bonus_share = amount_c - bonus_c, bonus_c
    return Split(principal=Decimal(principal_share) * CENT, bonus=Decimal(bonus_share) * CENT)


class TopUpLimits(NamedTuple):
    per_top_up: Decimal  # the most one top-up may pay in
    balance: Decimal  # the most a wallet (principal plus bonus) may hold after a top-up


def top_up_limits(*, store: Store | None = None) -> TopUpLimits:
    """The ceilings for a top-up made at ``store`` (its own where set, else the brand's)."""
    program = LoyaltyProgram.current()
    per_top_up = getattr(store, "top_up_max_amount", None)
    balance = getattr(store, "wallet_max_balance", None)
    return TopUpLimits(
        per_top_up=program.top_up_max_amount if per_top_up is None else per_top_up,
        balance=program.wallet_max_balance if balance is None else balance,
    )


def top_up_within_limits(
    *, limits: TopUpLimits, amount_paid: Decimal, bonus: Decimal = ZERO, balance: Decimal | None = None
) -> None:
    """Refuse (``ValidationError`` on ``amount_paid``) a top-up over ``limits.per_top_up``, or one that
    would bring a wallet holding ``balance`` above ``limits.balance`` (not checked when ``None``)."""
    if amount_paid > limits.per_top_up:
        raise ValidationError(
            {
                "amount_paid": ValidationError(
                    _("A top-up is at most %(limit)s yuan.") % {"limit": limits.per_top_up}, code="max_value"
                )
            }
        )
    if balance is not None and balance + amount_paid + bonus > limits.balance:
        raise ValidationError(
            {
                "amount_paid": ValidationError(
                    _(
                        "A wallet holds at most %(limit)s yuan: it holds %(balance)s, and this top-up "
                        "(with its bonus) would bring it to %(after)s."
                    )
                    % {"limit": limits.balance, "balance": balance, "after": balance + amount_paid + bonus},
                    code="balance_limit",
                )
            }
        )


def member_active_check(member: Member, *, field: str = "member") -> None:
    """Refuse a blocked or erased member: they can neither top up, spend nor earn."""
    if not member.is_active:
        raise ValidationError(
            {field: ValidationError(_("This member is blocked: they cannot be served."), code="member_inactive")}
        )


# --- services -----------------------------------------------------------------------------------


def wallet_top_up(
    *,
    member: Member,
    amount_paid: Decimal | str,
    bonus: Decimal | str = ZERO,
    offer_code: str = "",
    idempotency_key: str,
    actor: AbstractBaseUser | None = None,
    reason: str = "",
    reference: str = "",
    store: Store | None = None,
    restriction: Restriction | None = None,
) -> WalletEntry:
    """Add ``amount_paid`` to the principal and ``bonus`` (granted by offer ``offer_code``) to the bonus.

    Within the ceilings of ``store`` (where the top-up is made; the brand's when ``None``): see the
    module's doc. With a ``restriction``, the bonus is usable only on those products (a
    ``RestrictedBonus``). Refused for a blocked member."""
    amount_paid = to_money(amount_paid, field="amount_paid")
    bonus = to_money(bonus, field="bonus", allow_zero=True)
    member_active_check(member)
    limits = top_up_limits(store=store)
    top_up_within_limits(limits=limits, amount_paid=amount_paid)
    request = _Request(
        operation=Kind.TOP_UP,
        idempotency_key=idempotency_key,
        actor=actor,
        text={"reason": reason, "reference": reference, "offer_code": offer_code},
        arguments={
            "member": member.pk,
            "amount_paid": str(amount_paid),
            "bonus": str(bonus),
            # Only when set: fingerprints of top-ups recorded before restrictions existed still match.
            **({"restriction": restriction.as_data()} if restriction and bonus else {}),
        },
    )

    def movement(wallet: Wallet) -> _Movement:
        top_up_within_limits(limits=limits, amount_paid=amount_paid, bonus=bonus, balance=wallet.total)
        granted = restriction if restriction and bonus else None
        return _Movement(principal_delta=amount_paid, bonus_delta=bonus, new_restricted=granted)

    return _record(request=request, member_id=member.pk, movement=movement)


def wallet_spend(
    *,
    member: Member,
    amount: Decimal | str,
    idempotency_key: str,
    actor: AbstractBaseUser | None = None,
    reason: str = "",
    reference: str = "",
    lines: Sequence[PaidLine] | None = None,
) -> WalletEntry:
    """Take ``amount`` from the wallet: restricted bonus for the eligible ``lines`` it names, then
    principal and unrestricted bonus by the proportional rule (see the module's doc)."""
    amount = to_money(amount)
    member_active_check(member)
    priced = _priced_lines(lines, amount=amount) if lines else ()
    request = _Request(
        operation=Kind.SPEND,
        idempotency_key=idempotency_key,
        actor=actor,
        text={"reason": reason, "reference": reference},
        arguments={
            "member": member.pk,
            "amount": str(amount),
            # Sorted: the same lines in another order are the same request.
            **({"lines": sorted([line.sku, str(line.amount)] for line in priced)} if priced else {}),
        },
    )

    def movement(wallet: Wallet) -> _Movement:
        restricted = wallet_restricted_bonuses(wallet_id=wallet.pk)  # read under the wallet's lock
        taken = _allocate(priced, restricted)
        from_restricted = sum(taken.values(), ZERO)
        unrestricted = wallet.bonus - sum((bonus.remaining for bonus in restricted), ZERO)
        rest = amount - from_restricted
        if rest > wallet.principal + unrestricted:
            raise _insufficient(wallet, amount=amount, usable=wallet.principal + unrestricted + from_restricted)
        split = split_proportionally(amount=rest, principal=wallet.principal, bonus=unrestricted)
        return _Movement(
            principal_delta=-split.principal,
            bonus_delta=-(split.bonus + from_restricted),
            restricted={bonus: -value for bonus, value in taken.items()},
        )

    return _record(request=request, member_id=member.pk, movement=movement)


def _priced_lines(lines: Sequence[PaidLine], *, amount: Decimal) -> tuple[PricedLine, ...]:
    """The named lines, priced (``paid_lines_price``), adding up to the spend's ``amount``."""
    priced = paid_lines_price(lines)
    total = sum((line.amount for line in priced), ZERO)
    if total != amount:
        raise lines_invalid(
            _("The lines add up to %(total)s, the spend is %(amount)s: they must be equal.")
            % {"total": total, "amount": amount},
            "lines_total",
        )
    return priced


def _allocate(lines: Sequence[PricedLine], bonuses: list[RestrictedBonus]) -> dict[RestrictedBonus, Decimal]:
    """What each restricted bonus pays of the eligible ``lines``: the bonus with the fewest eligible
    lines first (then the oldest), each taking first the lines the fewest bonuses can pay."""
    if not lines or not bonuses:
        return {}
    eligible = {
        bonus.pk: [
            index
            for index, line in enumerate(lines)
            if bonus.restriction.allows(category=line.category, tags=line.tags)
        ]
        for bonus in bonuses
    }
    reach = Counter(index for indexes in eligible.values() for index in indexes)
    left = [line.amount for line in lines]
    taken: dict[RestrictedBonus, Decimal] = {}
    for bonus in sorted(bonuses, key=lambda bonus: (len(eligible[bonus.pk]), bonus.pk)):
        want = bonus.remaining
        for index in sorted(eligible[bonus.pk], key=lambda index: (reach[index], index)):
            take = min(want, left[index])
            if take > 0:
                left[index] -= take
                want -= take
                taken[bonus] = taken.get(bonus, ZERO) + take
    return taken


def _insufficient(wallet: Wallet, *, amount: Decimal, usable: Decimal) -> ValidationError:
    if usable == wallet.total:
        message = _("Insufficient balance: the wallet holds %(balance)s, the spend is %(amount)s.") % {
            "balance": wallet.total,
            "amount": amount,
        }
    else:
        message = _(
            "Insufficient balance: the wallet holds %(balance)s, of which %(usable)s can pay for these products "
            "(the rest is bonus for other products); the spend is %(amount)s."
        ) % {"balance": wallet.total, "usable": usable, "amount": amount}
    return ValidationError({"amount": ValidationError(message, code="insufficient_balance")})


def wallet_refund_spend(
    *,
    spend_entry: WalletEntry | None = None,
    spend_idempotency_key: str = "",
    amount: Decimal | str | None = None,
    idempotency_key: str,
    actor: AbstractBaseUser | None = None,
    reason: str = "",
    reference: str = "",
) -> WalletEntry:
    """Give back (part of) a spend, to the parts it came from.

    Name the spend by its entry or by the idempotency key it was made with. ``amount`` defaults to
    all that is still refundable (the whole spend if nothing was refunded yet). What the spend took
    from a restricted bonus whose top-up was refunded since is not refundable (see the module's doc).
    """
    spend = _refunded_entry(
        entry=spend_entry, key=spend_idempotency_key, kind=Kind.SPEND, field="spend_entry", label=_("a spend")
    )
    amount = None if amount is None else to_money(amount)
    request = _Request(
        operation=Kind.SPEND_REFUND,
        idempotency_key=idempotency_key,
        actor=actor,
        text={"reason": reason, "reference": reference},
        arguments={"spend": spend.pk, "amount": "remaining" if amount is None else str(amount)},
    )

    def movement(wallet: Wallet) -> _Movement:
        refunded = spend.refunds.filter(kind=Kind.SPEND_REFUND).aggregate(
            principal=Sum("principal_delta", default=ZERO), bonus=Sum("bonus_delta", default=ZERO)
        )
        restricted_left = _restricted_left_of(spend)
        # What the spend took from a restricted bonus whose top-up was refunded since stays gone.
        forfeited = sum((left for bonus, left in restricted_left.items() if bonus.top_up_refunded), ZERO)
        restricted_left = {bonus: left for bonus, left in restricted_left.items() if not bonus.top_up_refunded}
        left_principal = -spend.principal_delta - refunded["principal"]
        left_bonus = -spend.bonus_delta - refunded["bonus"] - forfeited
        to_refund = left_principal + left_bonus if amount is None else amount
        if to_refund <= 0 or to_refund > left_principal + left_bonus:
            values = {
                "spent": -spend.amount,
                "refunded": refunded["principal"] + refunded["bonus"],
                "amount": to_refund,
                "forfeited": forfeited,
            }
            if forfeited:
                message = _(
                    "Refunds of a spend cannot exceed it: spent %(spent)s, already refunded %(refunded)s, "
                    "this refund %(amount)s; %(forfeited)s of it was paid with the bonus of a top-up refunded "
                    "since, which does not come back."
                )
            else:
                message = _(
                    "Refunds of a spend cannot exceed it: spent %(spent)s, already refunded %(refunded)s, "
                    "this refund %(amount)s."
                )
            raise ValidationError({"amount": ValidationError(message % values, code="over_refund")})
        split = split_proportionally(amount=to_refund, principal=left_principal, bonus=left_bonus)
        restricted_total = sum(restricted_left.values(), ZERO)
        # Of the bonus share, the restricted part in proportion to what the spend took and has left.
        restricted_share = split_proportionally(
            amount=split.bonus, principal=left_bonus - restricted_total, bonus=restricted_total
        ).bonus
        back = {}
        for bonus, left in restricted_left.items():
            give = min(left, restricted_share)
            if give > 0:
                back[bonus] = give
                restricted_share -= give
        return _Movement(principal_delta=split.principal, bonus_delta=split.bonus, related_entry=spend, restricted=back)

    return _record(request=request, member_id=spend.wallet.member_id, movement=movement)


def wallet_refund_top_up(
    *,
    top_up_entry: WalletEntry,
    idempotency_key: str,
    actor: AbstractBaseUser | None = None,
    reason: str = "",
    reference: str = "",
) -> WalletEntry:
    """Return a top-up's principal (only if still unspent) and claw back what is left of its bonus."""
    top_up = _refunded_entry(entry=top_up_entry, key="", kind=Kind.TOP_UP, field="top_up_entry", label=_("a top-up"))
    request = _Request(
        operation=Kind.TOP_UP_REFUND,
        idempotency_key=idempotency_key,
        actor=actor,
        text={"reason": reason, "reference": reference},
        arguments={"top_up": top_up.pk},
    )

    def movement(wallet: Wallet) -> _Movement:
        if top_up.refunds.filter(kind=Kind.TOP_UP_REFUND).exists():
            raise ValidationError(
                {"top_up_entry": _("This top-up was already refunded; a top-up is refunded at most once.")},
                code="already_refunded",
            )
        if wallet.principal < top_up.principal_delta:
            raise ValidationError(
                {
                    "top_up_entry": _(
                        "The top-up was partly spent: its principal is %(paid)s but the wallet holds only "
                        "%(principal)s of principal, so it cannot be refunded."
                    )
                    % {"paid": top_up.principal_delta, "principal": wallet.principal}
                },
                code="top_up_spent",
            )
        own = RestrictedBonus.objects.filter(top_up_id=top_up.pk).first()
        if own is not None:  # its bonus is a restricted bonus: what is left of it goes
            claw_back, restricted = own.remaining, ({own: -own.remaining} if own.remaining else {})
        else:
            held = RestrictedBonus.objects.filter(wallet_id=wallet.pk).aggregate(left=Sum("remaining", default=ZERO))
            claw_back, restricted = min(top_up.bonus_delta, wallet.bonus - held["left"]), {}
        return _Movement(
            principal_delta=-top_up.principal_delta,
            bonus_delta=-claw_back,
            related_entry=top_up,
            restricted=restricted,
        )

    return _record(request=request, member_id=top_up.wallet.member_id, movement=movement)


# --- the shared recording path -------------------------------------------------------------------


class _Request(NamedTuple):
    operation: str
    idempotency_key: str
    actor: AbstractBaseUser | None
    text: dict[str, str]  # free-text fields stored on the entry
    arguments: dict[str, object]  # everything else that defines the request

    @property
    def fingerprint(self) -> str:
        body = {
            "operation": str(self.operation),
            "actor": getattr(self.actor, "pk", None),
            **self.arguments,
            **self.text,
        }
        return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()


class _Movement(NamedTuple):
    principal_delta: Decimal
    bonus_delta: Decimal  # restricted changes included
    related_entry: WalletEntry | None = None
    restricted: dict[RestrictedBonus, Decimal] = {}  # changes of existing restricted bonuses
    new_restricted: Restriction | None = None  # the bonus of this top-up is restricted to these products


def _record(*, request: _Request, member_id: int, movement) -> WalletEntry:
    """Lock the wallet, replay or apply ``movement(wallet)``, write the entry; all in one transaction."""
    key = _clean_request(request)
    fingerprint = request.fingerprint
    try:
        with transaction.atomic(durable=True):
            wallet = wallet_lock(member_id=member_id)
            # Read after the lock: a concurrent request with this key on this wallet has committed by now.
            replayed = _replayed(key, fingerprint)
            if replayed is not None:
                return replayed
            move = movement(wallet)
            wallet.principal += move.principal_delta
            wallet.bonus += move.bonus_delta
            if wallet.principal < 0 or wallet.bonus < 0:  # the rules above prevent it; never store it
                raise ValidationError({"amount": _("Insufficient balance.")}, code="insufficient_balance")
            wallet.save(update_fields=["principal", "bonus", "updated_at"])
            entry = WalletEntry.objects.create(
                wallet=wallet,
                kind=request.operation,
                principal_delta=move.principal_delta,
                bonus_delta=move.bonus_delta,
                amount=move.principal_delta + move.bonus_delta,
                principal_after=wallet.principal,
                bonus_after=wallet.bonus,
                actor=request.actor,
                related_entry=move.related_entry,
                idempotency_key=key,
                request_fingerprint=fingerprint,
                **request.text,
            )
            _move_restricted(entry, move)
            return entry
    except IntegrityError:
        # The key was taken meanwhile by a request on another wallet (the lock did not serialise us).
        replayed = _replayed(key, fingerprint)
        if replayed is None:
            raise
        return replayed


def _move_restricted(entry: WalletEntry, move: _Movement) -> None:
    """Record the entry's changes of restricted bonuses (and the one its top-up grants)."""
    changes = dict(move.restricted)
    if move.new_restricted is not None:
        granted = RestrictedBonus.objects.create(
            wallet_id=entry.wallet_id,
            top_up=entry,
            tags=list(move.new_restricted.tags),
            categories=list(move.new_restricted.categories),
            amount=move.bonus_delta,
            remaining=ZERO,
        )
        changes[granted] = move.bonus_delta
    for bonus, delta in changes.items():
        RestrictedBonus.objects.filter(pk=bonus.pk).update(
            remaining=F("remaining") + delta, updated_at=entry.created_at
        )
    RestrictedBonusMove.objects.bulk_create(
        [RestrictedBonusMove(bonus=bonus, entry=entry, delta=delta) for bonus, delta in changes.items()]
    )


def _restricted_left_of(spend: WalletEntry) -> dict[RestrictedBonus, Decimal]:
    """What ``spend`` took from each restricted bonus and its refunds have not given back, oldest bonus first;
    each bonus annotated with ``top_up_refunded`` (whether the top-up that granted it was refunded)."""
    rows = (
        RestrictedBonusMove.objects.filter(
            Q(entry=spend) | Q(entry__related_entry=spend, entry__kind=Kind.SPEND_REFUND)
        )
        .values("bonus_id")
        .annotate(net=Sum("delta"))
        .order_by("bonus_id")
    )
    left = {row["bonus_id"]: -row["net"] for row in rows if row["net"] < 0}
    refunds = WalletEntry.objects.filter(kind=Kind.TOP_UP_REFUND, related_entry_id=OuterRef("top_up_id"))
    bonuses = RestrictedBonus.objects.filter(pk__in=left).annotate(top_up_refunded=Exists(refunds)).order_by("pk")
    return {bonus: left[bonus.pk] for bonus in bonuses}


def _clean_request(request: _Request) -> str:
    key = (request.idempotency_key or "").strip()
    if not key:
        raise ValidationError({"idempotency_key": _("An idempotency key is required.")}, code="required")
    values = {"idempotency_key": key, **request.text}
    WalletEntry(**values).clean_fields(exclude=[f.name for f in WalletEntry._meta.fields if f.name not in values])
    return key


def _replayed(key: str, fingerprint: str) -> WalletEntry | None:
    entry = WalletEntry.objects.filter(idempotency_key=key).first()
    if entry is not None and entry.request_fingerprint != fingerprint:
        raise IdempotencyConflict(
            {
                "idempotency_key": _(
                    "The idempotency key %(key)s was already used for a different request; "
                    "send a new key for a new operation."
                )
                % {"key": key}
            },
            code="conflict",
        )
    return entry


def _refunded_entry(*, entry: WalletEntry | None, key: str, kind: str, field: str, label) -> WalletEntry:
    """The entry a refund reverses, named by the entry itself or by the key it was made with."""
    found = None
    if entry is not None:
        found = WalletEntry.objects.select_related("wallet").filter(pk=entry.pk).first()
    elif key:
        found = WalletEntry.objects.select_related("wallet").filter(idempotency_key=key.strip()).first()
    if found is None or found.kind != kind:
        raise ValidationError({field: _("Name an existing entry of %(kind)s to refund.") % {"kind": label}})
    return found
