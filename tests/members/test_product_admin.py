"""The products' admin: search, filters by category and tag, the CSV upload and export; order lines
read-only on their order."""

from decimal import Decimal

import pytest
from django.urls import reverse

from members.models import Product
from tests.factories import OrderLineFactory, ProductFactory
from tests.members.test_admin import changelist, import_file, import_preview

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _uploads_in_tmp(settings, tmp_path):
    settings.VAR_DIR = tmp_path / "var"


@pytest.fixture
def catalogue(db):
    return [
        ProductFactory(sku="MT-01", name="珍珠奶茶", category="奶茶", tags=["热销"]),
        ProductFactory(sku="FT-01", name="满杯百香果", category="果茶", tags=["唤醒商品", "热销"]),
        ProductFactory(sku="CF-01", name="美式咖啡", category="咖啡", is_active=False),
    ]


def shown(response) -> list[str]:
    return sorted(product.sku for product in response.context["cl"].result_list)


@pytest.mark.parametrize(
    ("query", "skus"),
    [
        ("?q=FT-01", ["FT-01"]),
        ("?q=奶茶", ["MT-01"]),
        ("?category=咖啡", ["CF-01"]),
        ("?tag=唤醒商品", ["FT-01"]),
        ("?tag=热销", ["FT-01", "MT-01"]),
        ("?is_active__exact=1", ["FT-01", "MT-01"]),
    ],
)
def test_products_are_found_by_sku_name_category_tag_and_activity(staff_client, catalogue, query, skus):
    # when
    response = staff_client.get(changelist("product") + query)
    # then
    assert response.status_code == 200
    assert shown(response) == skus


def test_tags_are_edited_as_the_import_reads_them(staff_client, catalogue):
    # given
    product = catalogue[0]
    url = reverse("admin:members_product_change", args=[product.pk])
    assert 'value="热销"' in staff_client.get(url).content.decode()
    # when
    response = staff_client.post(
        url,
        {
            "sku": "MT-01",
            "name": "珍珠奶茶",
            "category": "奶茶",
            "tags": "唤醒商品 | 热销; 唤醒商品",
            "is_active": "on",
        },
    )
    # then
    assert response.status_code == 302
    product.refresh_from_db()
    assert product.tags == ["唤醒商品", "热销"]


def test_the_catalogue_is_uploaded_through_the_import_service(staff_client, catalogue):
    # when
    import_file(staff_client, "product", "sku,name,category,tags\nMT-01,珍珠奶茶,奶茶,热销|新品\nNEW-1,蛋挞,甜点,\n")
    # then
    assert Product.objects.get(sku="MT-01").tags == ["热销", "新品"]
    assert Product.objects.get(sku="NEW-1").category == "甜点"


def test_a_bad_catalogue_upload_shows_its_line_and_imports_nothing(staff_client, catalogue):
    # when
    preview = import_preview(staff_client, "product", "sku,name,category,tags\nNEW-1,,甜点,\n")
    # then
    assert [error.split(":")[0] for error in preview.context["result"].errors] == ["line 2"]
    assert not Product.objects.filter(sku="NEW-1").exists()


def test_the_export_writes_what_the_import_reads(staff_client, catalogue):
    # when
    response = staff_client.post(
        reverse("admin:members_product_export"),
        {
            "format": "0",
            "resource": "0",
            **{f"productresource_{name}": "on" for name in ("sku", "name", "category", "tags", "is_active")},
        },
    )
    # then
    text = response.content.decode("utf-8-sig")
    assert response.status_code == 200, text[:500]
    assert text.splitlines()[0] == "sku,name,category,tags,is_active"
    assert "FT-01,满杯百香果,果茶,唤醒商品|热销,1" in text


def test_an_orders_page_lists_its_lines_read_only(staff_client):
    # given
    line = OrderLineFactory(product__name="珍珠奶茶", quantity=2, amount=Decimal("30.00"))
    # when
    page = staff_client.get(reverse("admin:members_order_change", args=[line.order_id])).content.decode()
    # then
    assert "珍珠奶茶" in page and "30.00" in page
    assert 'name="lines-0-quantity"' not in page  # read-only: no input
