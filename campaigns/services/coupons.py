"""Coupons: granting, redeeming, revoking and expiring.

Issue limits
    ``coupon_grant`` counts the coupon with one conditional statement,
    ``UPDATE template SET issued_count = issued_count + 1 WHERE id = … AND is_active AND
    (issue_limit IS NULL OR issued_count < issue_limit)``, in the same transaction as the coupon row:
    concurrent grants queue on the template row and the limit holds (a ``CheckConstraint`` backs it).
    A grant is idempotent on its key (unique): a retry returns the first coupon.

Redemption
    ``coupon_redeem`` validates owner, status, validity window, store and minimum spend, then flips
    the status with ``UPDATE coupon SET status = 'redeemed' … WHERE id = … AND status = 'issued'``.
    Of two concurrent redemptions exactly one changes the row; the other sees nothing to update and
    is refused — unless it carries the same idempotency key, which makes it a retry that returns the
    first result. The redemption key is unique across coupons.

Coupons limited to products
    A template with ``product_tags``/``product_categories`` discounts only the eligible lines: the
    redemption names the order's lines (``lines``; an order's own lines when it is named), the
    minimum spend and a percentage apply to the eligible lines' amount, a fixed amount never takes
    more than it, and a redemption without an eligible line is refused (``no_eligible_lines``). The
    lines are part of the redemption: a retry with other lines is a conflict.

These services run inside the caller's transaction when there is one (campaign grants, referral
rewards), so a grant is committed together with whatever caused it.
"""

from collections.abc import Sequence
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from campaigns.models import Coupon, CouponTemplate, new_coupon_code
from members.models import Member, Order, Store
from members.money import CENT, to_money
from members.services.orders import IdempotencyConflict
from members.services.products import PaidLine, PricedLine, paid_lines_price

__all__ = [
    "CouponUnavailable",
    "coupon_discount",
    "coupon_grant",
    "coupon_redeem",
    "coupon_revoke",
    "coupons_expire",
]

MAX_KEY_LENGTH = 200
CODE_ATTEMPTS = 5
Status = Coupon.Status
Kind = CouponTemplate.Kind


class CouponUnavailable(ValidationError):
    """The template is inactive, past its dates, or its issue limit is reached."""


def _invalid(field: str, message, code: str) -> ValidationError:
    return ValidationError({field: ValidationError(message, code=code)})


def _key(value: str, field: str = "idempotency_key") -> str:
    value = (value or "").strip()
    if not value:
        raise _invalid(field, _("An idempotency key is required."), "required")
    if len(value) > MAX_KEY_LENGTH:
        raise _invalid(
            field, _("An idempotency key has at most %(n)s characters.") % {"n": MAX_KEY_LENGTH}, "max_length"
        )
    return value


def _conflict(key: str) -> IdempotencyConflict:
    return IdempotencyConflict(
        {
            "idempotency_key": ValidationError(
                _("The idempotency key %(key)s was already used for a different operation.") % {"key": key},
                code="conflict",
            )
        }
    )


# --- granting ----------------------------------------------------------------------------------------


def coupon_grant(
    *, template: CouponTemplate, member: Member, source: str, idempotency_key: str, campaign=None
) -> Coupon:
    """Issue one coupon of ``template`` to ``member``; the same key returns the first coupon.

    Raises ``CouponUnavailable`` when the template is inactive, its fixed dates are over, or its
    issue limit is reached (checked and counted in one conditional UPDATE, so it holds under
    concurrency). Runs in the caller's transaction if there is one.
    """
    key = _key(idempotency_key)
    existing = _existing_grant(key, template_id=template.pk, member_id=member.pk)
    if existing is not None:
        return existing
    for _attempt in range(CODE_ATTEMPTS):
        try:
            with transaction.atomic():
                return _issue(template_id=template.pk, member=member, source=source, key=key, campaign=campaign)
        except IntegrityError:
            existing = _existing_grant(key, template_id=template.pk, member_id=member.pk)
            if existing is not None:
                return existing
            # Otherwise the random code collided (about never): try again with a new one.
    raise RuntimeError("could not find a free coupon code")


def _issue(*, template_id: int, member: Member, source: str, key: str, campaign) -> Coupon:
    now = timezone.now()
    counted = (
        CouponTemplate.objects.filter(pk=template_id, is_active=True)
        .filter(Q(issue_limit__isnull=True) | Q(issued_count__lt=F("issue_limit")))
        .filter(Q(valid_until__isnull=True) | Q(valid_until__gt=now))
        .update(issued_count=F("issued_count") + 1, updated_at=now)
    )
    template = CouponTemplate.objects.get(pk=template_id)
    if not counted:
        if not template.is_active:
            message, code = _("This coupon is not available any more."), "inactive"
        elif template.valid_until is not None and template.valid_until <= now:
            message, code = _("This coupon's validity period is over."), "ended"
        else:
            message, code = _("All coupons of this kind have been issued."), "limit_reached"
        raise CouponUnavailable({"template": ValidationError(message, code=code)})
    valid_from, valid_until = _validity(template, now)
    return Coupon.objects.create(
        template=template,
        member=member,
        code=new_coupon_code(),
        granted_at=now,
        valid_from=valid_from,
        valid_until=valid_until,
        source=str(source)[:100],
        campaign=campaign,
        idempotency_key=key,
    )


def _validity(template: CouponTemplate, now: datetime) -> tuple[datetime, datetime]:
    if template.validity == CouponTemplate.Validity.FIXED_DATES:
        return template.valid_from or now, template.valid_until
    return now, now + timedelta(days=template.valid_days or 1)


def _existing_grant(key: str, *, template_id: int, member_id: int) -> Coupon | None:
    coupon = Coupon.objects.filter(idempotency_key=key).first()
    if coupon is None:
        return None
    if coupon.template_id != template_id or coupon.member_id != member_id:
        raise _conflict(key)
    return coupon


# --- redeeming ---------------------------------------------------------------------------------------


def coupon_discount(*, template: CouponTemplate, amount: Decimal) -> Decimal:
    """What the coupon takes off an order of ``amount``: never more than the amount."""
    if template.kind == Kind.FIXED_AMOUNT:
        discount = template.amount or Decimal("0.00")
    elif template.kind == Kind.PERCENTAGE:
        discount = (amount * Decimal(template.percent_off or 0) / Decimal(100)).quantize(CENT, rounding=ROUND_HALF_UP)
        if template.max_discount is not None:
            discount = min(discount, template.max_discount)
    else:  # free shipping and gifts take nothing off the goods
        discount = Decimal("0.00")
    return min(discount, amount).quantize(CENT)


def coupon_redeem(
    *,
    member: Member,
    idempotency_key: str,
    coupon: Coupon | None = None,
    coupon_code: str = "",
    order: Order | None = None,
    amount: Decimal | str | None = None,
    store: Store | None = None,
    lines: Sequence[PaidLine] | None = None,
) -> Coupon:
    """Redeem the member's coupon against ``order`` (or an ``amount`` at a ``store``), once.

    ``lines`` are what the order bought (by default an order's own lines): a coupon limited to
    some products discounts only the eligible ones. Returns the redeemed coupon with ``discount``
    set. A retry with the same idempotency key returns the first result; a second redemption with
    another key is refused.
    """
    key = _key(idempotency_key)
    found = _find_coupon(coupon=coupon, code=coupon_code, member=member)
    if order is not None:
        if order.member_id != member.pk:
            raise _invalid("order", _("This order belongs to another member."), "not_owner")
        amount, store = order.amount, order.store
        if lines is None:
            lines = [
                PaidLine(sku=line.product.sku, amount=line.amount) for line in order.lines.select_related("product")
            ]
    elif amount is None:
        raise _invalid("amount", _("Give the order or its amount."), "required")
    else:
        amount = to_money(amount)
    priced = _priced(lines, amount=amount)
    named = sorted([line.sku, str(line.amount)] for line in priced)  # in any order, the same lines
    if found.redemption_key == key:
        return _same_redemption_or_conflict(found, key, order=order, amount=amount, lines=named)
    eligible = _eligible_amount(found.template, priced)
    base = amount if eligible is None else eligible
    _check_redeemable(found, amount=base, store=store)
    discount = coupon_discount(template=found.template, amount=base)
    now = timezone.now()
    try:
        with transaction.atomic():
            changed = Coupon.objects.filter(pk=found.pk, status=Status.ISSUED).update(
                status=Status.REDEEMED,
                redeemed_at=now,
                order=order,
                redeemed_store=store,
                order_amount=amount,
                discount=discount,
                eligible_amount=eligible,
                redeemed_lines=named,
                redemption_key=key,
                updated_at=now,
            )
    except IntegrityError:
        raise _conflict(key) from None  # the key redeemed another coupon
    fresh = Coupon.objects.select_related("template").get(pk=found.pk)
    if changed:
        return fresh
    if fresh.redemption_key == key:  # a concurrent retry of this very redemption won
        return _same_redemption_or_conflict(fresh, key, order=order, amount=amount, lines=named)
    raise _not_usable(fresh)


def _find_coupon(*, coupon: Coupon | None, code: str, member: Member) -> Coupon:
    queryset = Coupon.objects.select_related("template")
    if coupon is not None:
        found = queryset.filter(pk=coupon.pk).first()
    else:
        code = (code or "").strip().upper()
        found = queryset.filter(code=code).first() if code else None
    # "Not yours" and "does not exist" answer the same.
    if found is None or found.member_id != member.pk:
        raise _invalid("coupon", _("No such coupon."), "not_found")
    return found


def _priced(lines: Sequence[PaidLine] | None, *, amount: Decimal) -> tuple[PricedLine, ...]:
    """The order's named lines, priced; together at most the order's ``amount``."""
    if not lines:
        return ()
    priced = paid_lines_price(lines)
    total = sum((line.amount for line in priced), Decimal("0.00"))
    if total > amount:
        raise _invalid(
            "lines",
            _("The lines add up to %(total)s, more than the order's %(amount)s.") % {"total": total, "amount": amount},
            "lines_total",
        )
    return priced


def _eligible_amount(template: CouponTemplate, lines: Sequence[PricedLine]) -> Decimal | None:
    """What the eligible lines come to, for a template limited to some products (``None``: it is not)."""
    restriction = template.restriction
    if not restriction:
        return None
    eligible = sum(
        (line.amount for line in lines if restriction.allows(category=line.category, tags=line.tags)), Decimal("0.00")
    )
    if not eligible:
        raise _invalid(
            "lines",
            _("This coupon is only for %(products)s: name the order's lines, with at least one of them.")
            % {"products": restriction.describe()},
            "no_eligible_lines",
        )
    return eligible


def _same_redemption_or_conflict(
    coupon: Coupon, key: str, *, order: Order | None, amount: Decimal, lines: list
) -> Coupon:
    if (
        (order is not None and coupon.order_id != order.pk)
        or coupon.order_amount != amount
        or coupon.redeemed_lines != lines
    ):
        raise _conflict(key)
    return coupon


def _not_usable(coupon: Coupon) -> ValidationError:
    messages = {
        Status.REDEEMED: (_("This coupon was already used."), "already_redeemed"),
        Status.EXPIRED: (_("This coupon has expired."), "expired"),
        Status.REVOKED: (_("This coupon was revoked."), "revoked"),
    }
    message, code = messages.get(coupon.status, (_("This coupon cannot be used."), "invalid"))
    return _invalid("coupon", message, code)


def _check_redeemable(coupon: Coupon, *, amount: Decimal, store: Store | None) -> None:
    if coupon.status != Status.ISSUED:
        raise _not_usable(coupon)
    now = timezone.now()
    if now < coupon.valid_from:
        raise _invalid("coupon", _("This coupon cannot be used yet."), "not_yet_valid")
    if now >= coupon.valid_until:
        raise _invalid("coupon", _("This coupon has expired."), "expired")
    template = coupon.template
    allowed = set(template.stores.values_list("pk", flat=True))
    if allowed and (store is None or store.pk not in allowed):
        raise _invalid("store", _("This coupon cannot be used at this store."), "wrong_store")
    if amount < template.min_spend:
        raise _invalid(
            "amount",
            (
                _("This coupon needs eligible products of at least ¥%(min)s.")
                if template.restriction
                else _("This coupon needs an order of at least ¥%(min)s.")
            )
            % {"min": template.min_spend},
            "below_minimum",
        )


# --- revoking and expiring ---------------------------------------------------------------------------


def coupon_revoke(*, coupon: Coupon, reason: str) -> Coupon:
    """Take an unused coupon back. Revoking a revoked coupon changes nothing; a used one is refused."""
    now = timezone.now()
    Coupon.objects.filter(pk=coupon.pk, status=Status.ISSUED).update(
        status=Status.REVOKED, revoked_at=now, revoke_reason=str(reason)[:200], updated_at=now
    )
    fresh = Coupon.objects.get(pk=coupon.pk)
    if fresh.status != Status.REVOKED:
        raise _not_usable(fresh)
    return fresh


def coupons_expire(*, as_of: datetime) -> int:
    """Mark every issued coupon whose validity ended by ``as_of`` expired: one UPDATE. Returns how many."""
    if timezone.is_naive(as_of):
        raise ValueError("as_of must be timezone-aware")
    return Coupon.objects.filter(status=Status.ISSUED, valid_until__lte=as_of).update(
        status=Status.EXPIRED, updated_at=timezone.now()
    )
