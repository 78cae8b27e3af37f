"""The product catalogue and order lines: the models' constraints and the ``import_products`` and
``import_order_lines`` commands (good files, bad lines with their numbers, re-import, GBK)."""

import io
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import IntegrityError, transaction

from members.models import OrderLine, Product
from tests.factories import OrderFactory, OrderLineFactory, ProductFactory, StoreFactory

pytestmark = pytest.mark.django_db


def write(tmp_path, text: str, *, encoding: str = "utf-8"):
    path = tmp_path / "data.csv"
    path.write_bytes(text.encode(encoding))
    return path


def run(command: str, path) -> str:
    out = io.StringIO()
    call_command(command, str(path), stdout=out, stderr=io.StringIO())
    return out.getvalue()


def run_failing(command: str, path) -> list[str]:
    err = io.StringIO()
    with pytest.raises(CommandError):
        call_command(command, str(path), stdout=io.StringIO(), stderr=err)
    return err.getvalue().splitlines()


# --- constraints ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fields",
    [
        {"quantity": 0},
        {"amount": Decimal("0.00")},
        {"amount": Decimal("-1.00")},
        {"refunded_quantity": 2, "quantity": 1},
        {"refunded_amount": Decimal("19.00"), "amount": Decimal("18.00")},
    ],
    ids=["zero-quantity", "zero-amount", "negative-amount", "refunded-quantity-above", "refunded-amount-above"],
)
def test_the_database_refuses_impossible_lines(fields):
    order, product = OrderFactory(), ProductFactory()
    with pytest.raises(IntegrityError), transaction.atomic():
        OrderLine.objects.create(order=order, product=product, **{"quantity": 1, "amount": Decimal("18.00"), **fields})


def test_an_order_has_one_line_per_product():
    line = OrderLineFactory()
    with pytest.raises(IntegrityError), transaction.atomic():
        OrderLine.objects.create(order=line.order, product=line.product, quantity=1, amount=Decimal("1.00"))


def test_skus_are_unique_and_not_blank():
    ProductFactory(sku="MT-01")
    with pytest.raises(IntegrityError), transaction.atomic():
        Product.objects.create(sku="MT-01", name="x", category="x")
    with pytest.raises(IntegrityError), transaction.atomic():
        Product.objects.create(sku="", name="x", category="x")


def test_a_product_on_a_line_cannot_be_deleted():
    line = OrderLineFactory()
    with pytest.raises(IntegrityError), transaction.atomic():
        Product.objects.filter(pk=line.product_id).delete()


def test_products_are_found_by_tag():
    wake = ProductFactory(tags=["唤醒商品", "新品"])
    ProductFactory(tags=["新品"])
    assert list(Product.objects.filter(tags__contains=["唤醒商品"])) == [wake]


# --- import_products ------------------------------------------------------------------------

PRODUCTS = (
    "sku,name,category,tags\n"
    "MT-01,珍珠奶茶,奶茶,热销|新品\n"
    "FT-01,满杯百香果,果茶,唤醒商品; 夏季 ;\n"  # ; separates too; blanks and spaces dropped
    "CK-01,芝士蛋糕,甜点,\n"
)


def test_a_catalogue_imports_with_its_tags(tmp_path):
    # when
    out = run("import_products", write(tmp_path, PRODUCTS))
    # then
    assert "3 created, 0 unchanged, 0 updated" in out
    assert {p.sku: (p.name, p.category, p.tags) for p in Product.objects.all()} == {
        "MT-01": ("珍珠奶茶", "奶茶", ["热销", "新品"]),
        "FT-01": ("满杯百香果", "果茶", ["唤醒商品", "夏季"]),
        "CK-01": ("芝士蛋糕", "甜点", []),
    }


@pytest.mark.parametrize("encoding", ["gb18030", "utf-8-sig"])
def test_a_gbk_or_bom_catalogue_imports_and_a_second_time_changes_nothing(tmp_path, encoding):
    # given
    path = write(tmp_path, PRODUCTS, encoding=encoding)
    run("import_products", path)
    before = list(Product.objects.values_list("sku", "name", "category", "tags", "updated_at"))
    # when
    out = run("import_products", path)
    # then
    assert "0 created, 3 unchanged, 0 updated" in out
    assert list(Product.objects.values_list("sku", "name", "category", "tags", "updated_at")) == before
    assert Product.objects.get(sku="FT-01").tags == ["唤醒商品", "夏季"]


def test_a_known_sku_with_other_cells_is_updated_and_keeps_its_activity(tmp_path):
    # given
    ProductFactory(sku="MT-01", name="奶茶", category="旧", tags=["x"], is_active=False)
    # when
    out = run("import_products", write(tmp_path, PRODUCTS))
    # then
    assert "2 created, 0 unchanged, 1 updated" in out
    product = Product.objects.get(sku="MT-01")
    assert (product.name, product.category, product.tags) == ("珍珠奶茶", "奶茶", ["热销", "新品"])
    assert product.is_active is False


def test_bad_product_lines_are_reported_with_their_numbers_and_nothing_is_written(tmp_path):
    # given: a blank name (line 3), a sku repeated with another name (line 5)
    text = "sku,name,category,tags\nA-1,甲,奶茶,\nA-2,,奶茶,\nA-3,丙,果茶,\nA-1,甲乙,奶茶,\n"
    # when
    errors = run_failing("import_products", write(tmp_path, text))
    # then
    assert errors[0].startswith("line 3: name:")
    assert errors[1].startswith("line 5: sku:") and "line 2" in errors[1]
    assert len(errors) == 2
    assert not Product.objects.exists()


# --- import_order_lines ---------------------------------------------------------------------


@pytest.fixture
def orders(db):
    a, b = StoreFactory(code="S1"), StoreFactory(code="S2")
    ProductFactory(sku="MT-01", category="奶茶")
    ProductFactory(sku="FT-01", category="果茶")
    return {
        "a": OrderFactory(external_id="1001", store=a, member__home_store=a, amount=Decimal("50.00")),
        "b": OrderFactory(external_id="1001", store=b, member__home_store=b, amount=Decimal("20.00")),
    }


LINES = "order_id,store_code,sku,quantity,amount\n1001,S1,MT-01,2,30.00\n1001,S1,FT-01,1,¥20\n1001,S2,MT-01,1,15.00\n"


def test_lines_import_onto_the_orders_of_their_stores(tmp_path, orders):
    # when
    out = run("import_order_lines", write(tmp_path, LINES))
    # then
    assert "3 created" in out
    assert sorted(orders["a"].lines.values_list("product__sku", "quantity", "amount")) == [
        ("FT-01", 1, Decimal("20.00")),
        ("MT-01", 2, Decimal("30.00")),
    ]
    assert list(orders["b"].lines.values_list("product__sku", "quantity", "amount")) == [("MT-01", 1, Decimal("15.00"))]


def test_importing_the_same_lines_again_adds_nothing(tmp_path, orders):
    # given
    path = write(tmp_path, LINES, encoding="gb18030")
    run("import_order_lines", path)
    # when
    out = run("import_order_lines", path)
    # then
    assert "0 created, 3 unchanged" in out
    assert OrderLine.objects.count() == 3


def test_bad_order_lines_are_reported_with_their_numbers_and_nothing_is_written(tmp_path, orders):
    # given
    text = (
        "order_id,store_code,sku,quantity,amount\n"
        "1001,S1,MT-01,2,30.00\n"  # 2: good
        "9999,S1,MT-01,1,1.00\n"  # 3: no such order at S1
        "1001,S1,NOPE,1,1.00\n"  # 4: unknown sku
        "1001,S2,FT-01,0,1.00\n"  # 5: zero quantity
        "1001,S1,FT-01,1,20.01\n"  # 6: the order's lines above its amount
        "1001,S1,MT-01,3,30.00\n"  # 7: the same line with another quantity
        "1001,XX,MT-01,1,1.00\n"  # 8: unknown store
    )
    # when
    errors = run_failing("import_order_lines", write(tmp_path, text))
    # then
    assert [error.split(":")[0] for error in errors] == [f"line {n}" for n in (3, 4, 5, 6, 7, 8)]
    assert "order_id" in errors[0] and "sku" in errors[1] and "quantity" in errors[2]
    assert "amount" in errors[3] and "sku" in errors[4] and "store_code" in errors[5]
    assert not OrderLine.objects.exists()


def test_a_line_recorded_before_with_another_amount_is_a_bad_row(tmp_path, orders):
    # given
    run("import_order_lines", write(tmp_path, LINES))
    # when
    errors = run_failing("import_order_lines", write(tmp_path, LINES.replace("2,30.00", "2,29.00")))
    # then
    assert errors == [errors[0]] and errors[0].startswith("line 2: sku:")
    assert orders["a"].lines.get(product__sku="MT-01").amount == Decimal("30.00")


def test_a_lines_file_without_store_code_is_refused(tmp_path, orders):
    with pytest.raises(CommandError, match="store_code"):
        run("import_order_lines", write(tmp_path, "order_id,sku,quantity,amount\n1001,MT-01,1,1.00\n"))
