"""Topping up the wallet from the mini-program, paid through WeChat Pay.

1. ``top_up_intent_create``: the member asks to top up an amount; an intent with a fresh
   ``out_trade_no`` is stored and, when WeChat Pay is configured and the member has an openid, a
   JSAPI transaction is opened for it (its ``prepay_id`` is what the mini-program pays with).
2. ``top_up_intent_confirm``: WeChat Pay's callback says the transaction succeeded. The wallet is
   credited through ``wallet_top_up`` with the idempotency key ``wxpay:<transaction_id>``, so
   however often the callback repeats (or races with itself), the money arrives once.

A bonus may come with a top-up (a top-up offer), through hooks the app that owns offers
(``campaigns``) registers — ``members`` never imports it:

- resolvers registered with ``register_top_up_offer_resolver`` —
  ``fn(*, member, amount, offer_id) -> TopUpOffer | None`` — decide the bonus when the intent is
  created; the member names the offer (``offer_id``), and when none grants it the top-up is refused.
- credit functions registered with ``register_top_up_offer_credit`` —
  ``fn(*, member, offer_code, bonus, amount_paid, idempotency_key, reason, reference) -> WalletEntry | None``
  — credit a paid intent carrying an offer (checking it again, and giving whatever else the offer
  gives). ``bonus`` is the intent's: the member gets the bonus they were shown when they started
  the top-up, even if the operator has changed the offer's bonus since. When no credit function
  takes the intent (the offer is gone, switched off, out of its window or used up), the principal
  alone is credited and the entry's reason says why: the member paid, and money is never refused.
"""

import secrets
from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import NamedTuple

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone, translation
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from members import wechatpay
from members.models import Member, TopUpIntent, WalletEntry
from members.money import to_money
from members.services.orders import IdempotencyConflict
from members.services.wallet import wallet_top_up

INTENT_LIFETIME = timedelta(hours=2)

__all__ = [
    "INTENT_LIFETIME",
    "TopUpOffer",
    "register_top_up_offer_credit",
    "register_top_up_offer_resolver",
    "top_up_intent_confirm",
    "top_up_intent_create",
    "unregister_top_up_offer_credit",
    "unregister_top_up_offer_resolver",
]


class TopUpOffer(NamedTuple):
    bonus: Decimal
    offer_code: str


TopUpOfferResolver = Callable[..., TopUpOffer | None]
TopUpOfferCredit = Callable[..., WalletEntry | None]
_offer_resolvers: list[TopUpOfferResolver] = []
_offer_credits: list[TopUpOfferCredit] = []


def register_top_up_offer_resolver(fn: TopUpOfferResolver) -> TopUpOfferResolver:
    """Let ``fn(*, member, amount, offer_id) -> TopUpOffer | None`` grant a bonus; the first answer wins."""
    if fn not in _offer_resolvers:
        _offer_resolvers.append(fn)
    return fn


def unregister_top_up_offer_resolver(fn: TopUpOfferResolver) -> None:
    if fn in _offer_resolvers:
        _offer_resolvers.remove(fn)


def register_top_up_offer_credit(fn: TopUpOfferCredit) -> TopUpOfferCredit:
    """Let ``fn(*, member, offer_code, bonus, amount_paid, idempotency_key, reason, reference)
    -> WalletEntry | None`` credit a paid intent that carries an offer; the first entry returned wins."""
    if fn not in _offer_credits:
        _offer_credits.append(fn)
    return fn


def unregister_top_up_offer_credit(fn: TopUpOfferCredit) -> None:
    if fn in _offer_credits:
        _offer_credits.remove(fn)


def _offer_for(member: Member, amount: Decimal, offer_id: int | None) -> TopUpOffer:
    for resolver in list(_offer_resolvers):
        offer = resolver(member=member, amount=amount, offer_id=offer_id)
        if offer is not None:
            return TopUpOffer(bonus=to_money(offer.bonus, field="bonus", allow_zero=True), offer_code=offer.offer_code)
    if offer_id is not None:
        raise _refused("offer", _("This offer is not available to you."), "not_eligible")
    return TopUpOffer(bonus=Decimal("0.00"), offer_code="")


def _new_out_trade_no(now: datetime) -> str:
    return f"TU{timezone.localtime(now):%Y%m%d}{secrets.token_hex(10).upper()}"  # 30 characters


def cents(amount: Decimal) -> int:
    return int(amount * 100)


def top_up_intent_create(*, member: Member, amount: Decimal | str, offer_id: int | None = None) -> TopUpIntent:
    """Store an intent to top up ``amount`` and open its WeChat Pay transaction when possible.

    With ``offer_id`` the registered resolvers decide the offer's bonus; refused (field ``offer``,
    ``not_eligible``) when none grants it.

    Raises ``members.wechat.WeChatUnavailable`` when WeChat Pay cannot open the transaction (the
    intent is then closed).
    """
    amount = to_money(amount)
    limit = Decimal(settings.HUIYUAN_TOP_UP_MAX)
    if amount > limit:
        raise ValidationError(
            {"amount": ValidationError(_("A top-up is at most %(limit)s.") % {"limit": limit}, code="max_value")}
        )
    offer = _offer_for(member, amount, offer_id)
    now = timezone.now()
    for attempt in range(3):
        try:
            with transaction.atomic():
                intent = TopUpIntent.objects.create(
                    member=member,
                    out_trade_no=_new_out_trade_no(now),
                    amount=amount,
                    bonus=offer.bonus,
                    offer_code=offer.offer_code,
                    expires_at=now + INTENT_LIFETIME,
                )
            break
        except IntegrityError:
            if attempt == 2:
                raise
    if wechatpay.is_configured() and member.openid:
        with translation.override(settings.LANGUAGE_CODE):
            description = gettext("Stored-value top-up")
        try:
            intent.prepay_id = wechatpay.WeChatPayClient().jsapi_prepay(
                out_trade_no=intent.out_trade_no,
                description=description,
                amount_cents=cents(amount),
                openid=member.openid,
                expires_at=intent.expires_at,
            )
        except Exception:
            TopUpIntent.objects.filter(pk=intent.pk).update(status=TopUpIntent.Status.CLOSED, updated_at=timezone.now())
            raise
        intent.save(update_fields=["prepay_id", "updated_at"])
    return intent


def _refused(field: str, message, code: str) -> ValidationError:
    return ValidationError({field: ValidationError(message, code=code)})


def top_up_intent_confirm(
    *, out_trade_no: str, transaction_id: str, amount_cents: int, paid_at: datetime | None = None
) -> TopUpIntent:
    """Credit the wallet for a successful WeChat Pay transaction of ``out_trade_no``, once.

    Refused (nothing credited) when the intent is unknown, the amount differs from the intent's,
    or the intent was already paid by another transaction.
    """
    transaction_id = (transaction_id or "").strip()
    if not transaction_id or len(transaction_id) > 32:
        raise _refused("transaction_id", _("A WeChat Pay transaction id is required."), "required")
    intent = TopUpIntent.objects.select_related("member").filter(out_trade_no=out_trade_no).first()
    if intent is None:
        raise _refused("out_trade_no", _("No top-up has this out_trade_no."), "unknown_trade")
    if amount_cents != cents(intent.amount):
        raise _refused(
            "amount",
            _("The paid amount (%(paid)s cents) is not the top-up's (%(amount)s).")
            % {"paid": amount_cents, "amount": intent.amount},
            "amount_mismatch",
        )
    other_transaction = IdempotencyConflict(
        {
            "transaction_id": ValidationError(
                _("Top-up %(trade)s was already paid by another transaction.") % {"trade": out_trade_no},
                code="conflict",
            )
        }
    )
    # Claim the intent for this transaction: one statement, so two transactions cannot both win.
    try:
        claimed = (
            TopUpIntent.objects.filter(pk=intent.pk)
            .filter(Q(transaction_id="") | Q(transaction_id=transaction_id))
            .update(transaction_id=transaction_id, updated_at=timezone.now())
        )
    except IntegrityError:
        claimed = 0
    if not claimed:
        raise other_transaction
    entry = _credit(intent, idempotency_key=f"wxpay:{transaction_id}")
    paid_at = paid_at or timezone.now()
    TopUpIntent.objects.filter(pk=intent.pk, wallet_entry__isnull=True).update(
        status=TopUpIntent.Status.PAID, paid_at=paid_at, wallet_entry=entry, updated_at=timezone.now()
    )
    intent.refresh_from_db()
    return intent


def _credit(intent: TopUpIntent, *, idempotency_key: str) -> WalletEntry:
    """The wallet entry for a paid intent: through a registered offer credit when the intent carries
    an offer, else (or when the offer is no longer valid) the principal alone under ``idempotency_key``."""
    with translation.override(settings.LANGUAGE_CODE):
        reason = gettext("WeChat Pay top-up %(trade)s") % {"trade": intent.out_trade_no}
    if intent.wallet_entry_id is not None:  # a repeated callback: credited already
        return intent.wallet_entry
    plain = WalletEntry.objects.filter(idempotency_key=idempotency_key).first()
    if intent.offer_code and plain is None:
        for credit in list(_offer_credits):
            entry = credit(
                member=intent.member,
                offer_code=intent.offer_code,
                bonus=intent.bonus,
                amount_paid=intent.amount,
                idempotency_key=idempotency_key,
                reason=reason,
                reference=intent.out_trade_no,
            )
            if entry is not None:
                return entry
        with translation.override(settings.LANGUAGE_CODE):
            reason = gettext("%(reason)s; offer %(offer)s no longer available, principal only") % {
                "reason": reason,
                "offer": intent.offer_code,
            }
            reason = reason[:200]
    return wallet_top_up(
        member=intent.member,
        amount_paid=intent.amount,
        idempotency_key=idempotency_key,
        reason=reason,
        reference=intent.out_trade_no,
    )
