"""The product catalogue and order lines: importing them, and checking the lines an order is
recorded with. Used by the ``import_products`` and ``import_order_lines`` commands and the
admin's upload of products.

**Products** (``PRODUCT_COLUMNS``: ``sku,name,category,tags``). ``tags`` holds any number of tags
separated by ``|`` (``;`` is read the same way: what a spreadsheet user types), each trimmed, blank
ones dropped, a repeated one kept once, in the order written; the export writes ``|``. A new sku is
created; a known sku whose name, category or tags differ is updated (the catalogue is the brand's
master data, like its stores); one whose cells say the same is unchanged — so importing a file
twice changes nothing. A sku repeated in the file with other cells is a bad row. ``is_active`` is
not in the file and an import leaves it as it is (deactivate products in the admin).

**Order lines** (``ORDER_LINE_COLUMNS``: ``order_id,store_code,sku,quantity,amount``). An order id is
unique within its store only, so ``store_code`` is required. A line is identified by its order and
its product: an order has at most one line per sku. A line already recorded with the same quantity
and amount is unchanged (re-importing adds nothing); with another quantity or amount it is a bad
row (lines are history: correct them by a refund). An unknown store, order or sku is a bad row, and
so is a line that would bring the order's lines above the order's amount. Lines may add up to less
than the order (items the catalogue does not know, a service charge).

Both imports follow the rules of ``members.services.imports``: the file is one transaction, every
bad row is reported with its line number (the header is line 1) and then nothing is written, UTF-8
(with or without BOM) or GBK (``members.csv_import.CsvReader``), ``dry_run`` does it all and rolls
back.

The rules of an order's lines as the POS sends them are ``members.services.products``.
"""

import time
from decimal import Decimal

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from members.csv_import import Column, CsvReader, RowFields, batched, parse_money, parse_text
from members.models import Order, OrderLine, Product, Store
from members.models.products import TAG_MAX_LENGTH
from members.services.imports import (
    BATCH_SIZE,
    INSERT_BATCH_SIZE,
    MAX_KEPT_ERRORS,
    BadRowCallback,
    ErrorCallback,
    ImportResult,
    ImportSource,
    Outcome,
    ProgressCallback,
    RowOutcome,
)

__all__ = [
    "ORDER_LINE_COLUMNS",
    "PRODUCT_COLUMNS",
    "order_lines_import",
    "parse_tags",
    "products_import",
]

TAG_SEPARATORS = ("|", ";")
TAG_SEPARATOR = "|"  # what exports write

PRODUCT_COLUMNS = (
    Column("sku", required=True, aliases=("商品编码", "SKU编码")),
    Column("name", required=True, aliases=("商品名称", "名称")),
    Column("category", required=True, aliases=("品类", "类别", "分类")),
    Column("tags", aliases=("标签",)),
)
ORDER_LINE_COLUMNS = (
    Column("order_id", required=True, aliases=("external_id", "订单号", "订单编号")),
    Column("store_code", required=True, aliases=("门店编码", "门店代码")),
    Column("sku", required=True, aliases=("商品编码", "SKU编码")),
    Column("quantity", required=True, aliases=("数量",)),
    Column("amount", required=True, aliases=("金额", "实付金额")),
)


# --- cells ----------------------------------------------------------------------------------


def parse_tags(value: str) -> list[str]:
    """``唤醒商品|新品; 热饮`` → ``["唤醒商品", "新品", "热饮"]``: trimmed, blanks dropped, each once."""
    for separator in TAG_SEPARATORS[1:]:
        value = value.replace(separator, TAG_SEPARATOR)
    tags: list[str] = []
    for tag in (part.strip() for part in value.split(TAG_SEPARATOR)):
        if not tag or tag in tags:
            continue
        if len(tag) > TAG_MAX_LENGTH:
            raise ValidationError(
                _("A tag has at most %(max)s characters: “%(tag)s”.") % {"max": TAG_MAX_LENGTH, "tag": tag}
            )
        tags.append(tag)
    return tags


def parse_quantity(value: str) -> int:
    if not value:
        raise ValidationError(_("This value is required."), code="required")
    if not value.isascii() or not value.isdigit() or int(value) <= 0:
        raise ValidationError(_("“%(value)s” is not a whole number above zero.") % {"value": value})
    if int(value) > 2_147_483_647:
        raise ValidationError(_("The quantity is too large."))
    return int(value)


# --- imports --------------------------------------------------------------------------------


class _Report:
    """An import's result and bad rows, reported the way ``members.services.imports`` reports them."""

    def __init__(self, *, kind, columns, dry_run, show_rows, on_error, on_rows, on_bad_row):
        self.result = ImportResult(kind=kind, dry_run=dry_run, columns=tuple(column.name for column in columns))
        self._show_rows, self._on_error, self._on_rows, self._on_bad_row = show_rows, on_error, on_rows, on_bad_row
        self._started = time.monotonic()

    def show(self, line: int, outcome: Outcome, cells: tuple) -> None:
        if len(self.result.shown) < self._show_rows:
            self.result.shown.append(RowOutcome(line, outcome, tuple(str(cell) for cell in cells)))

    def count(self, line: int, outcome: Outcome, cells: tuple) -> None:
        attribute = {Outcome.NEW: "created", Outcome.UNCHANGED: "unchanged", Outcome.UPDATED: "updated"}[outcome]
        setattr(self.result, attribute, getattr(self.result, attribute) + 1)
        self.show(line, outcome, cells)

    def bad(self, bad_rows: list[tuple[int, str]]) -> None:
        for line, message in sorted(bad_rows, key=lambda bad: bad[0]):
            text = str(_("line %(line)s: %(message)s") % {"line": line, "message": message})
            self.result.error_count += 1
            if len(self.result.errors) < MAX_KEPT_ERRORS:
                self.result.errors.append(text)
            if self._on_error is not None:
                self._on_error(text)
            if self._on_bad_row is not None:
                self._on_bad_row(line, message)
        if self._on_rows is not None:
            self._on_rows(self.result.rows)

    def finish(self) -> ImportResult:
        if not self.result.ok or self.result.dry_run:
            transaction.set_rollback(True)
        self.result.seconds = time.monotonic() - self._started
        return self.result


def _opened(file: ImportSource):
    if isinstance(file, str) or hasattr(file, "__fspath__"):
        return open(file, "rb")
    return _Borrowed(file)


class _Borrowed:
    def __init__(self, file):
        self.file = file

    def __enter__(self):
        return self.file

    def __exit__(self, *exc):
        return False


def products_import(
    *,
    file: ImportSource,
    dry_run: bool = False,
    on_error: ErrorCallback | None = None,
    on_progress: ProgressCallback | None = None,
    on_rows: ProgressCallback | None = None,
    on_bad_row: BadRowCallback | None = None,
    batch_size: int = BATCH_SIZE,
    show_rows: int = 0,
) -> ImportResult:
    """Import the catalogue from a CSV ``sku,name,category,tags`` (see the module doc)."""
    report = _Report(
        kind="products",
        columns=PRODUCT_COLUMNS,
        dry_run=dry_run,
        show_rows=show_rows,
        on_error=on_error,
        on_rows=on_rows,
        on_bad_row=on_bad_row,
    )
    result = report.result
    sku_length, name_length, category_length = (
        Product._meta.get_field(name).max_length for name in ("sku", "name", "category")
    )
    with _opened(file) as binary:
        reader = CsvReader(binary, columns=PRODUCT_COLUMNS, on_progress=on_progress)
        result.encoding = reader.encoding
        with transaction.atomic():
            first_line: dict[str, tuple[int, tuple]] = {}  # sku → (line, cells) of its first row
            for batch in batched(reader, batch_size):
                bad_rows: list[tuple[int, str]] = []
                known = Product.objects.in_bulk({row.values["sku"] for row in batch}, field_name="sku")
                new: list[Product] = []
                changed: list[Product] = []
                now = timezone.now()
                for row in batch:
                    result.rows += 1
                    fields = RowFields()
                    values = row.values
                    sku = fields.parse("sku", parse_text, values["sku"], max_length=sku_length, required=True)
                    name = fields.parse("name", parse_text, values["name"], max_length=name_length, required=True)
                    category = fields.parse(
                        "category", parse_text, values["category"], max_length=category_length, required=True
                    )
                    tags = fields.parse("tags", parse_tags, values.get("tags", ""))
                    if fields.errors:
                        bad_rows.append((row.line, fields.message))
                        continue
                    cells = (sku, name, category, TAG_SEPARATOR.join(tags))
                    if sku in first_line:
                        line, first_cells = first_line[sku]
                        if first_cells != cells:
                            fields.fail(
                                "sku",
                                _("SKU %(sku)s appears on line %(line)s with other cells.")
                                % {"sku": sku, "line": line},
                            )
                            bad_rows.append((row.line, fields.message))
                        else:
                            report.count(row.line, Outcome.UNCHANGED, cells)
                        continue
                    first_line[sku] = (row.line, cells)
                    product = known.get(sku)
                    if product is None:
                        new.append(Product(sku=sku, name=name, category=category, tags=tags))
                        report.count(row.line, Outcome.NEW, cells)
                    elif (product.name, product.category, product.tags) == (name, category, tags):
                        report.count(row.line, Outcome.UNCHANGED, cells)
                    else:
                        product.name, product.category, product.tags, product.updated_at = name, category, tags, now
                        changed.append(product)
                        report.count(row.line, Outcome.UPDATED, cells)
                if not result.error_count and not bad_rows:  # after the first bad row, nothing more is written
                    Product.objects.bulk_create(new, batch_size=INSERT_BATCH_SIZE)
                    Product.objects.bulk_update(
                        changed, ["name", "category", "tags", "updated_at"], batch_size=INSERT_BATCH_SIZE
                    )
                report.bad(bad_rows)
            report.finish()
    return result


def order_lines_import(
    *,
    file: ImportSource,
    dry_run: bool = False,
    on_error: ErrorCallback | None = None,
    on_progress: ProgressCallback | None = None,
    on_rows: ProgressCallback | None = None,
    on_bad_row: BadRowCallback | None = None,
    batch_size: int = BATCH_SIZE,
    show_rows: int = 0,
) -> ImportResult:
    """Import order lines from a CSV ``order_id,store_code,sku,quantity,amount`` (see the module doc).
    Per batch: one query for the orders, one for the products, one for the orders' recorded lines."""
    report = _Report(
        kind="order_lines",
        columns=ORDER_LINE_COLUMNS,
        dry_run=dry_run,
        show_rows=show_rows,
        on_error=on_error,
        on_rows=on_rows,
        on_bad_row=on_bad_row,
    )
    result = report.result
    with _opened(file) as binary:
        reader = CsvReader(binary, columns=ORDER_LINE_COLUMNS, on_progress=on_progress)
        result.encoding = reader.encoding
        with transaction.atomic():
            stores = dict(Store.objects.values_list("code", "pk"))
            # order pk → {product pk: (quantity, amount)}: its lines as this import leaves them
            lines_of: dict[int, dict[int, tuple[int, Decimal]]] = {}
            for batch in batched(reader, batch_size):
                bad_rows: list[tuple[int, str]] = []
                parsed = []
                for row in batch:
                    result.rows += 1
                    fields = RowFields()
                    values = row.values
                    external_id = fields.parse("order_id", parse_text, values["order_id"], max_length=64, required=True)
                    code = values["store_code"]
                    store_id = stores.get(code)
                    if not code:
                        fields.fail("store_code", _("This value is required."))
                    elif store_id is None:
                        fields.fail("store_code", _("No store has the code “%(code)s”.") % {"code": code})
                    sku = fields.parse("sku", parse_text, values["sku"], max_length=64, required=True)
                    quantity = fields.parse("quantity", parse_quantity, values["quantity"])
                    amount = fields.parse("amount", parse_money, values["amount"])
                    if fields.errors:
                        bad_rows.append((row.line, fields.message))
                        continue
                    parsed.append((row.line, fields, store_id, code, external_id, sku, quantity, amount))
                order_filter = Q()
                for _line, _fields, store_id, _code, external_id, *_rest in parsed:
                    order_filter |= Q(store_id=store_id, external_id=external_id)
                orders = (
                    {
                        (store_id, external_id): (pk, amount)
                        for pk, store_id, external_id, amount in Order.objects.filter(order_filter).values_list(
                            "pk", "store_id", "external_id", "amount"
                        )
                    }
                    if parsed
                    else {}
                )
                products = Product.objects.in_bulk({entry[5] for entry in parsed}, field_name="sku")
                unseen = {pk for pk, _amount in orders.values()} - lines_of.keys()
                for pk in unseen:
                    lines_of[pk] = {}
                for order_id, product_id, quantity, amount in OrderLine.objects.filter(order_id__in=unseen).values_list(
                    "order_id", "product_id", "quantity", "amount"
                ):
                    lines_of[order_id][product_id] = (quantity, amount)
                new: list[OrderLine] = []
                for line, fields, store_id, code, external_id, sku, quantity, amount in parsed:
                    order = orders.get((store_id, external_id))
                    product = products.get(sku)
                    if order is None:
                        fields.fail(
                            "order_id",
                            _("No order %(id)s at store %(store)s.") % {"id": external_id, "store": code},
                        )
                    if product is None:
                        fields.fail("sku", _("No product has the SKU “%(sku)s”.") % {"sku": sku})
                    if fields.errors:
                        bad_rows.append((line, fields.message))
                        continue
                    order_pk, order_amount = order
                    recorded = lines_of[order_pk]
                    cells = (external_id, code, sku, quantity, amount)
                    if product.pk in recorded:
                        if recorded[product.pk] == (quantity, amount):
                            report.count(line, Outcome.UNCHANGED, cells)
                        else:
                            fields.fail(
                                "sku",
                                _(
                                    "Order %(id)s already has a line for %(sku)s with quantity %(quantity)s and "
                                    "amount %(amount)s."
                                )
                                % {
                                    "id": external_id,
                                    "sku": sku,
                                    "quantity": recorded[product.pk][0],
                                    "amount": recorded[product.pk][1],
                                },
                            )
                            bad_rows.append((line, fields.message))
                        continue
                    total = sum((each for _quantity, each in recorded.values()), Decimal("0.00")) + amount
                    if total > order_amount:
                        fields.fail(
                            "amount",
                            _("Order %(id)s's lines would add up to %(total)s, more than its amount %(amount)s.")
                            % {"id": external_id, "total": total, "amount": order_amount},
                        )
                        bad_rows.append((line, fields.message))
                        continue
                    recorded[product.pk] = (quantity, amount)
                    new.append(OrderLine(order_id=order_pk, product=product, quantity=quantity, amount=amount))
                    report.count(line, Outcome.NEW, cells)
                if not result.error_count and not bad_rows:
                    OrderLine.objects.bulk_create(new, batch_size=INSERT_BATCH_SIZE)
                report.bad(bad_rows)
            report.finish()
    return result
