"""Products and order lines: the rules of an order's lines, wherever they come from.

``order_lines_resolve`` checks the lines an order is recorded with (``members.services.orders.
order_record``, the POS): known skus, each once (a line is identified by its order and product),
a positive quantity and amount, at most the order's amount in all (less is fine: items the
catalogue does not know, a service charge). Errors are keyed ``lines.<index>.<field>`` (``lines``
for the total). One query for the products; none when an order has no lines. Inactive products are
accepted: a till's catalogue may lag, and history must import.

``paid_lines_price`` checks the lines a payment names — a wallet spend (``members.services.wallet``)
or a coupon redemption (``campaigns.services.coupons``): known skus, each once, with the amount paid
for each; it gives each its product's category and tags, which decide what restricted value may pay.

``refund_lines_apply`` records the lines a refund names (``members.services.orders.refund_record``,
under the order's lock): lines of the order, each once, a quantity and an amount within what the
line has left to refund, together at most the refund's amount; errors keyed ``lines``.

Importing the catalogue and lines from CSV files is ``members.services.product_imports``.
"""

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import NamedTuple

from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from members.models import Order, OrderLine, Product, Refund, RefundLine
from members.money import to_money

__all__ = [
    "LineIn",
    "PaidLine",
    "PricedLine",
    "lines_invalid",
    "order_lines_resolve",
    "order_lines_same",
    "paid_lines_price",
    "refund_lines_apply",
    "refund_lines_same",
]


@dataclass(frozen=True, slots=True)
class LineIn:
    """A line as a caller states it: a sku, a quantity and the amount paid for it."""

    sku: str
    quantity: int
    amount: Decimal


class PaidLine(NamedTuple):
    """A line a payment names: a product of the catalogue and the amount paid for it."""

    sku: str
    amount: Decimal


class PricedLine(NamedTuple):
    """A named line with its product's category and tags."""

    sku: str
    amount: Decimal
    category: str
    tags: tuple[str, ...]


def paid_lines_price(lines: Sequence[PaidLine], *, field: str = "lines") -> tuple[PricedLine, ...]:
    """The lines with their products' category and tags: known skus, each once, positive amounts;
    else a ``ValidationError`` on ``field``. One query."""
    cleaned = [PaidLine(sku=(sku or "").strip(), amount=to_money(amount, field=field)) for sku, amount in lines]
    skus = [line.sku for line in cleaned]
    _each_product_once(skus, field=field)
    products = {
        sku: (category, tags)
        for sku, category, tags in Product.objects.filter(sku__in=skus).values_list("sku", "category", "tags")
    }
    unknown = [sku for sku in skus if sku not in products]
    if unknown:
        raise lines_invalid(
            _("Unknown products: %(skus)s.") % {"skus": ", ".join(unknown)}, "unknown_product", field=field
        )
    return tuple(
        PricedLine(sku=line.sku, amount=line.amount, category=products[line.sku][0], tags=tuple(products[line.sku][1]))
        for line in cleaned
    )


def _each_product_once(skus: Sequence[str], *, field: str = "lines") -> None:
    """Refuse lines naming a product twice (a line is identified by its product)."""
    duplicates = sorted(sku for sku, times in Counter(skus).items() if times > 1)
    if duplicates:
        raise lines_invalid(
            _("Each product once: %(skus)s named twice.") % {"skus": ", ".join(duplicates)},
            "duplicate_product",
            field=field,
        )


def lines_invalid(message, code: str, *, field: str = "lines") -> ValidationError:
    """The error of a payment's or refund's lines, on ``field``."""
    return ValidationError({field: ValidationError(message, code=code)})


# --- an order's lines -----------------------------------------------------------------------


def order_lines_resolve(*, lines: Sequence[LineIn], order_amount: Decimal, field: str = "lines") -> list[OrderLine]:
    """Unsaved ``OrderLine``s (without an order) for ``lines``, or a ``ValidationError`` keyed
    ``<field>.<index>.<sku|quantity|amount>`` (``<field>`` for the total). One query."""
    errors: dict[str, list] = {}
    products = Product.objects.in_bulk({line.sku for line in lines}, field_name="sku")
    seen: dict[str, int] = {}
    resolved: list[OrderLine] = []
    total = Decimal("0.00")
    for index, line in enumerate(lines):
        where = f"{field}.{index}"
        product = products.get(line.sku)
        if product is None:
            errors[f"{where}.sku"] = [
                ValidationError(_("No product has the SKU “%(sku)s”.") % {"sku": line.sku}, code="unknown_sku")
            ]
        elif line.sku in seen:
            errors[f"{where}.sku"] = [
                ValidationError(
                    _("SKU %(sku)s is already line %(index)s: send each SKU once, with its total quantity.")
                    % {"sku": line.sku, "index": seen[line.sku]},
                    code="duplicate_sku",
                )
            ]
        seen.setdefault(line.sku, index)
        if line.quantity <= 0:
            errors[f"{where}.quantity"] = [ValidationError(_("At least 1."), code="min_value")]
        if line.amount <= 0:
            errors[f"{where}.amount"] = [ValidationError(_("An amount must be greater than zero."), code="min_value")]
        total += line.amount
        resolved.append(OrderLine(product=product, quantity=line.quantity, amount=line.amount))
    if not errors and total > order_amount:
        errors[field] = [
            ValidationError(
                _("The lines add up to %(total)s, more than the order's amount %(amount)s.")
                % {"total": total, "amount": order_amount},
                code="lines_exceed_amount",
            )
        ]
    if errors:
        raise ValidationError(errors)
    return resolved


def order_lines_same(recorded: Sequence[OrderLine], stated: Sequence[OrderLine]) -> bool:
    """Whether two sets of lines say the same (products, quantities, amounts; in any order)."""

    def key(lines):
        return sorted((line.product_id, line.quantity, line.amount) for line in lines)

    return key(recorded) == key(stated)


# --- a refund's lines ---------------------------------------------------------------------------


def refund_lines_apply(*, refund: Refund, order: Order, lines: Sequence[LineIn]) -> list[RefundLine]:
    """Give back ``lines`` of ``order`` with ``refund``: check them, move each order line's refunded
    quantity and amount, keep the refund's lines. Call under the order's lock. Two queries and a write."""
    skus = [(line.sku or "").strip() for line in lines]
    _each_product_once(skus)
    by_sku = {line.product.sku: line for line in OrderLine.objects.filter(order=order).select_related("product")}
    unknown = [sku for sku in skus if sku not in by_sku]
    if unknown:
        raise lines_invalid(
            _("Order %(order)s has no line of %(skus)s.") % {"order": order.external_id, "skus": ", ".join(unknown)},
            "unknown_line",
        )
    total = Decimal("0.00")
    kept = []
    for sku, stated in zip(skus, lines, strict=True):
        line = by_sku[sku]
        amount = to_money(stated.amount, field="lines")
        quantity = int(stated.quantity)
        if (
            quantity < 0
            or line.refunded_quantity + quantity > line.quantity
            or line.refunded_amount + amount > line.amount
        ):
            raise lines_invalid(
                _(
                    "Line %(sku)s would be refunded beyond what was bought: %(quantity)s for %(amount)s, "
                    "already refunded %(refunded_quantity)s for %(refunded_amount)s."
                )
                % {
                    "sku": sku,
                    "quantity": line.quantity,
                    "amount": line.amount,
                    "refunded_quantity": line.refunded_quantity,
                    "refunded_amount": line.refunded_amount,
                },
                "over_refund",
            )
        line.refunded_quantity += quantity
        line.refunded_amount += amount
        total += amount
        kept.append(RefundLine(refund=refund, order_line=line, quantity=quantity, amount=amount))
    if total > refund.amount:
        raise lines_invalid(
            _("The lines add up to %(total)s, more than the refund's %(amount)s.")
            % {"total": total, "amount": refund.amount},
            "lines_total",
        )
    OrderLine.objects.bulk_update([row.order_line for row in kept], ["refunded_quantity", "refunded_amount"])
    return RefundLine.objects.bulk_create(kept)


def refund_lines_same(*, refund: Refund, lines: Sequence[LineIn] | None) -> bool:
    """Whether a retry names the lines ``refund`` was recorded with (a retry naming none is not compared)."""
    if lines is None:
        return True
    recorded = sorted(
        (row.order_line.product.sku, row.quantity, row.amount)
        for row in RefundLine.objects.filter(refund=refund).select_related("order_line__product")
    )
    stated = sorted(((line.sku or "").strip(), int(line.quantity), to_money(line.amount)) for line in lines)
    return recorded == stated
