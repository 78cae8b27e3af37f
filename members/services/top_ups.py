"""Topping up the wallet from the mini-program, paid through WeChat Pay.

1. ``top_up_intent_create``: the member asks to top up an amount; an intent with a fresh
   ``out_trade_no`` is stored and, when WeChat Pay is configured and the member has an openid, a
   JSAPI transaction is opened for it (its ``prepay_id`` is what the mini-program pays with).
2. ``top_up_intent_confirm``: WeChat Pay's callback says the transaction succeeded. The wallet is
   credited through ``wallet_top_up`` with the idempotency key ``wxpay:<transaction_id>``, so
   however often the callback repeats (or races with itself), the money arrives once.

A top-up offer (``campaigns``) is data on the intent: the app that owns offers checks the offer when
the member starts the top-up and passes its ``bonus``, ``offer_code`` and points multiplier to
``top_up_intent_create``. The payment credits exactly that — the principal and the bonus, and the
multiplier as a ``MemberPointsMultiplier`` from the moment of payment — so the member gets what they
were shown, even if the operator changes or withdraws the offer in the two hours an intent lives.
``members`` never asks another app anything.

**Ceilings** (``members.services.wallet.top_up_limits``, the brand's): the intent is refused when its
amount is over the largest top-up or would bring the wallet (with the bonus) over the largest
balance, so the member is told before paying. The payment is credited through ``wallet_top_up``,
which checks both again under the wallet's lock: if the wallet filled up meanwhile (a till top-up),
or the member was blocked, the callback is refused with a field-level 400, nothing is credited, and
the intent becomes ``refused`` — for good: an operator refunds the payment through WeChat Pay, and a
repeated callback never credits it later.
"""

import secrets
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone, translation
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from members import wechatpay
from members.models import Member, MemberPointsMultiplier, Restriction, TopUpIntent, Wallet, WalletEntry
from members.money import to_money
from members.services.errors import IdempotencyConflict
from members.services.wallet import ZERO, member_active_check, top_up_limits, top_up_within_limits, wallet_top_up

INTENT_LIFETIME = timedelta(hours=2)

__all__ = ["INTENT_LIFETIME", "top_up_intent_confirm", "top_up_intent_create"]


def _new_out_trade_no(now: datetime) -> str:
    return f"TU{timezone.localtime(now):%Y%m%d}{secrets.token_hex(10).upper()}"  # 30 characters


def cents(amount: Decimal) -> int:
    return int(amount * 100)


def top_up_intent_create(
    *,
    member: Member,
    amount: Decimal | str,
    bonus: Decimal | str = ZERO,
    offer_code: str = "",
    points_multiplier: Decimal | None = None,
    multiplier_days: int = 0,
    restriction: Restriction | None = None,
) -> TopUpIntent:
    """Store an intent to top up ``amount`` and open its WeChat Pay transaction when possible.

    ``bonus``, ``offer_code``, the points multiplier and the products the bonus is limited to
    (``restriction``) are what a top-up offer gives (checked by its owner,
    ``campaigns.services.offers.offer_top_up_intent_create``); the payment credits them.

    Raises ``members.wechat.WeChatUnavailable`` when WeChat Pay cannot open the transaction (the
    intent is then closed).
    """
    amount = to_money(amount)
    bonus = to_money(bonus, field="bonus", allow_zero=True)
    member_active_check(member)
    wallet = Wallet.objects.filter(member_id=member.pk).only("principal", "bonus").first()
    try:
        top_up_within_limits(
            limits=top_up_limits(), amount_paid=amount, bonus=bonus, balance=wallet.total if wallet else ZERO
        )
    except ValidationError as exc:  # the member's field is ``amount``
        raise ValidationError({"amount": exc.error_dict["amount_paid"]}) from None
    if points_multiplier is not None and (points_multiplier < 1 or multiplier_days <= 0):
        raise _refused("points_multiplier", _("A points multiplier is at least 1, for at least a day."), "invalid")
    now = timezone.now()
    for attempt in range(3):
        try:
            with transaction.atomic():
                intent = TopUpIntent.objects.create(
                    member=member,
                    out_trade_no=_new_out_trade_no(now),
                    amount=amount,
                    bonus=bonus,
                    offer_code=offer_code,
                    points_multiplier=points_multiplier,
                    multiplier_days=multiplier_days if points_multiplier is not None else 0,
                    product_tags=", ".join(restriction.tags) if restriction else "",
                    product_categories=", ".join(restriction.categories) if restriction else "",
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
    if intent.status == TopUpIntent.Status.REFUSED:
        raise _refused(
            "out_trade_no",
            _("Top-up %(trade)s was refused (over a ceiling, or the member is blocked): refund the payment.")
            % {"trade": out_trade_no},
            "refused",
        )
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
    try:
        entry = _credit(intent, idempotency_key=f"wxpay:{transaction_id}")
    except IdempotencyConflict:
        raise
    except ValidationError:
        # Over a ceiling or a blocked member: nothing credited, and never later (see the module's doc).
        TopUpIntent.objects.filter(pk=intent.pk, wallet_entry__isnull=True).update(
            status=TopUpIntent.Status.REFUSED, updated_at=timezone.now()
        )
        raise
    paid_at = paid_at or timezone.now()
    TopUpIntent.objects.filter(pk=intent.pk, wallet_entry__isnull=True).update(
        status=TopUpIntent.Status.PAID, paid_at=paid_at, wallet_entry=entry, updated_at=timezone.now()
    )
    intent.refresh_from_db()
    return intent


def _credit(intent: TopUpIntent, *, idempotency_key: str) -> WalletEntry:
    """The wallet entry for a paid intent — the principal and the intent's bonus — and the intent's
    points multiplier from the moment of payment. Idempotent (a repeated callback finds both)."""
    if intent.wallet_entry_id is not None:  # a repeated callback: credited already
        return intent.wallet_entry
    with translation.override(settings.LANGUAGE_CODE):
        reason = gettext("WeChat Pay top-up %(trade)s") % {"trade": intent.out_trade_no}
    entry = wallet_top_up(
        member=intent.member,
        amount_paid=intent.amount,
        bonus=intent.bonus,
        offer_code=intent.offer_code,
        restriction=intent.restriction,
        idempotency_key=idempotency_key,
        reason=reason,
        reference=intent.out_trade_no,
    )
    if intent.points_multiplier is not None and intent.multiplier_days:
        MemberPointsMultiplier.objects.bulk_create(
            [
                MemberPointsMultiplier(
                    member_id=intent.member_id,
                    multiplier=intent.points_multiplier,
                    starts_at=entry.created_at,
                    ends_at=entry.created_at + timedelta(days=intent.multiplier_days),
                    source=f"offer:{intent.offer_code}"[:100],
                    idempotency_key=f"top-up:{intent.out_trade_no}:multiplier",
                )
            ],
            ignore_conflicts=True,
        )
    return entry
