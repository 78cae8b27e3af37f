"""Money is ``Decimal`` with two places, never float."""

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

CENT = Decimal("0.01")
RATE = Decimal("0.0001")  # rates and shares to four places: 0.1234 is 12.34%
MAX_AMOUNT = Decimal("9999999999.99")  # what Decimal(12, 2) holds


def to_money(value, *, field: str = "amount", allow_zero: bool = False) -> Decimal:
    """Parse ``value`` (str, int or Decimal; never float) into a positive 2-place Decimal.

    Refuses NaN, infinities, more than two decimal places, zero (unless allowed) and negatives,
    raising a ``ValidationError`` keyed by ``field``.
    """
    if isinstance(value, (float, bool)):
        raise ValidationError({field: _("Send amounts as decimal strings, not floating-point numbers.")})
    try:
        amount = Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        raise ValidationError({field: _("“%(value)s” is not an amount.") % {"value": value}}) from None
    if not amount.is_finite():
        raise ValidationError({field: _("An amount must be a finite number.")})
    # Too large before anything is rounded: quantizing 1e309 (or 40 digits) overflows the context.
    if amount > MAX_AMOUNT:
        raise ValidationError({field: _("The amount is too large.")})
    if amount < -MAX_AMOUNT:
        raise ValidationError({field: _("An amount must be greater than zero.")})
    if amount != amount.quantize(CENT, rounding=ROUND_HALF_UP):
        raise ValidationError({field: _("An amount has at most two decimal places.")})
    if amount < 0 or (amount == 0 and not allow_zero):
        raise ValidationError({field: _("An amount must be greater than zero.")})
    return amount.quantize(CENT)


def cents(value) -> Decimal:
    """A sum or average from SQL (None for no rows) as money: two places, half up."""
    return Decimal(value or 0).quantize(CENT, rounding=ROUND_HALF_UP)


def ratio(part, whole) -> Decimal | None:
    """``part / whole`` to four places, half up; None when ``whole`` is 0 or None (no rate)."""
    if not whole:
        return None
    return (Decimal(part) / Decimal(whole)).quantize(RATE, rounding=ROUND_HALF_UP)
