"""The product catalogue and the lines of orders: what a member bought, not only how much.

- ``Product``: the brand's catalogue, known by ``sku``; a ``category`` (one per product: the
  member 360's "top categories" and, later, offers limited to a category) and ``tags`` (any number
  of short labels such as ``唤醒商品``: offers limited to tagged products). Tags are a PostgreSQL
  array with a GIN index, so "products tagged X" is ``tags__contains=["X"]`` and "tagged X or Y"
  ``tags__overlap=[…]``, one index scan, no join table.
- ``OrderLine``: one product of an order — quantity and the amount paid for it (after the till's
  discounts). A product appears once per order (``order_line_order_product``): the line's identity,
  which makes imports and POS retries idempotent and lets a refund name a line by its sku. An order
  without lines is still a valid order (history, or a till that sends totals only); the lines'
  amounts never add up to more than the order's (checked by ``members.services.products``).
- ``refunded_quantity``/``refunded_amount`` are what refunds naming the line gave back, within the
  line's own quantity and amount (database constraints); each such refund keeps a ``RefundLine``
  (which line, how many, how much), so a refund's lines can be compared on a retry and read by
  whoever counts what was bought (stamp cards, favourite categories).
- ``ProductRestricted``: value usable only on some products (seed 002: 储值300送50，但必须搭配唤醒商品
  使用) — a top-up offer's bonus, a coupon. ``product_tags`` and ``product_categories`` are typed as
  lists (``唤醒商品, 新品``); a product is eligible when it has one of the tags or is in one of the
  categories; both empty: no restriction. ``restriction`` gives them as a ``Restriction``.
"""

import re
from dataclasses import dataclass
from decimal import Decimal

from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import GinIndex
from django.db import models
from django.db.models import F, Q
from django.utils.translation import gettext_lazy as _

from members.models.core import MONEY, Order, Refund, TimeStampedModel

__all__ = ["OrderLine", "Product", "ProductRestricted", "RefundLine", "Restriction", "split_labels"]

TAG_MAX_LENGTH = 32


LABEL_SEPARATORS = re.compile(r"[,，;；|、]")


def split_labels(text: str) -> tuple[str, ...]:
    """``"唤醒商品, 新品；唤醒商品"`` → ``("唤醒商品", "新品")``: split on , ; | (and their Chinese forms),
    blanks dropped, each label once, in the order typed."""
    labels = (label.strip() for label in LABEL_SEPARATORS.split(text or ""))
    return tuple(dict.fromkeys(label for label in labels if label))


@dataclass(frozen=True)
class Restriction:
    """The products some value may pay for: those with one of ``tags`` or in one of ``categories``.
    Empty (both empty): every product, and no lines needed."""

    tags: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.tags or self.categories)

    def allows(self, *, category: str, tags) -> bool:
        """Whether a product of ``category`` with ``tags`` is eligible."""
        if not self:
            return True
        return category in self.categories or not set(self.tags).isdisjoint(tags)

    def as_data(self) -> dict[str, list[str]]:
        return {"tags": list(self.tags), "categories": list(self.categories)}

    def describe(self) -> str:
        """``products tagged 唤醒商品 or in 果茶``, in the active language."""
        parts = []
        if self.tags:
            parts.append(str(_("products tagged %(tags)s")) % {"tags": " / ".join(self.tags)})
        if self.categories:
            parts.append(str(_("products in %(categories)s")) % {"categories": " / ".join(self.categories)})
        return str(_(" or ")).join(parts)


class ProductRestricted(models.Model):
    """A row whose value is usable only on some products (see the module's doc)."""

    product_tags = models.CharField(
        _("for products tagged"),
        max_length=200,
        blank=True,
        help_text=_("Comma-separated tags, e.g. 唤醒商品; usable only on products with one of them."),
    )
    product_categories = models.CharField(
        _("for product categories"),
        max_length=200,
        blank=True,
        help_text=_("Comma-separated categories, e.g. 果茶; usable only on products in one of them."),
    )

    class Meta:
        abstract = True

    @property
    def restriction(self) -> Restriction:
        return Restriction(tags=split_labels(self.product_tags), categories=split_labels(self.product_categories))


class Product(TimeStampedModel):
    sku = models.CharField(_("SKU"), max_length=64, unique=True)
    name = models.CharField(_("name"), max_length=100)
    category = models.CharField(_("category"), max_length=50, db_index=True)
    tags = ArrayField(
        models.CharField(max_length=TAG_MAX_LENGTH),
        verbose_name=_("tags"),
        default=list,
        blank=True,
        help_text=_("Short labels such as 唤醒商品; offers may be limited to products with a tag."),
    )
    is_active = models.BooleanField(_("active"), default=True)

    class Meta:
        ordering = ["category", "sku"]
        verbose_name = _("product")
        verbose_name_plural = _("products")
        indexes = [GinIndex(fields=["tags"], name="product_tags")]
        constraints = [
            models.CheckConstraint(condition=~Q(sku=""), name="product_sku_not_blank"),
            models.CheckConstraint(condition=~Q(category=""), name="product_category_not_blank"),
        ]

    def __str__(self):
        return f"{self.name} ({self.sku})"


class OrderLine(TimeStampedModel):
    # Indexed by ``order_line_order_product`` (order first): no separate order index to write.
    order = models.ForeignKey(
        Order, verbose_name=_("order"), on_delete=models.CASCADE, related_name="lines", db_index=False
    )
    product = models.ForeignKey(Product, verbose_name=_("product"), on_delete=models.PROTECT, related_name="lines")
    quantity = models.PositiveIntegerField(_("quantity"))
    amount = models.DecimalField(_("amount"), help_text=_("What was paid for this line, in yuan."), **MONEY)
    refunded_quantity = models.PositiveIntegerField(_("refunded quantity"), default=0)
    refunded_amount = models.DecimalField(_("refunded amount"), default=Decimal("0.00"), **MONEY)

    class Meta:
        ordering = ["order", "id"]
        verbose_name = _("order line")
        verbose_name_plural = _("order lines")
        constraints = [
            models.UniqueConstraint(fields=["order", "product"], name="order_line_order_product"),
            models.CheckConstraint(condition=Q(quantity__gt=0), name="order_line_quantity_positive"),
            models.CheckConstraint(condition=Q(amount__gt=0), name="order_line_amount_positive"),
            models.CheckConstraint(
                condition=Q(refunded_quantity__lte=F("quantity")), name="order_line_refunded_quantity_within"
            ),
            models.CheckConstraint(
                condition=Q(refunded_amount__gte=0) & Q(refunded_amount__lte=F("amount")),
                name="order_line_refunded_amount_within",
            ),
        ]

    def __str__(self):
        return f"{self.product_id} × {self.quantity}"


class RefundLine(models.Model):
    """What a refund gave back of one order line. Written with the refund, never changed."""

    refund = models.ForeignKey(Refund, verbose_name=_("refund"), on_delete=models.CASCADE, related_name="lines")
    order_line = models.ForeignKey(
        OrderLine, verbose_name=_("order line"), on_delete=models.PROTECT, related_name="refund_lines"
    )
    quantity = models.PositiveIntegerField(_("quantity"), help_text=_("Items returned; 0 for a price correction."))
    amount = models.DecimalField(_("amount"), **MONEY)

    class Meta:
        ordering = ["refund", "id"]
        verbose_name = _("refund line")
        verbose_name_plural = _("refund lines")
        constraints = [
            models.UniqueConstraint(fields=["refund", "order_line"], name="refund_line_refund_order_line"),
            models.CheckConstraint(condition=Q(amount__gt=0), name="refund_line_amount_positive"),
        ]

    def __str__(self):
        return f"{self.order_line_id} × {self.quantity}: {self.amount}"
