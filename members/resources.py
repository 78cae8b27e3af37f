"""django-import-export resources for the admin's export of members and orders.

Imports do not come through here: the admin's upload and the ``import_*`` commands share
``members.services.imports``. An export has the columns that import reads (see PRODUCT.md), plus
some it ignores, so an exported file re-imports unchanged:

* members: ``mobile,name,gender,birthday,registered_at,channel,store_code,referral_code``;
* orders: ``order_id,member_mobile,store_code,paid_at,amount,refunded_amount,status``;
* products: ``sku,name,category,tags,is_active`` (tags joined by ``|``).

Exports are safe to open in a spreadsheet: a text cell starting with ``=``, ``+``, ``-``, ``@``,
a tab or a carriage return gets a leading ``'`` so that it is shown, never run as a formula;
the import's reader (``members.csv_import.clean_cell``) drops that ``'`` again.
"""

from decimal import Decimal

from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from import_export import fields, resources, widgets
from import_export.formats import base_formats

from members.csv_import import FORMULA_GUARD, FORMULA_TRIGGERS
from members.models import Member, Order, Product

#: Resource field names in column order (each field's ``column_name`` is what the file says).
MEMBER_COLUMNS = ("mobile", "name", "gender", "birthday", "registered_at", "channel", "store_code", "referral_code")
PRODUCT_FIELDS = ("sku", "name", "category", "tags", "is_active")
ORDER_FIELDS = ("external_id", "member", "store", "paid_at", "amount", "refunded_amount", "status")


class SpreadsheetCSV(base_formats.CSV):
    """CSV as Chinese spreadsheets read it: UTF-8 with a byte-order mark, so that Excel shows
    Chinese names correctly."""

    BOM = "\ufeff"
    CONTENT_TYPE = "text/csv; charset=utf-8"

    def export_data(self, dataset, **kwargs):
        return self.BOM + super().export_data(dataset, **kwargs)


class SafeTextWidget(widgets.Widget):
    """Free text, guarded against spreadsheet formulae."""

    def render(self, value, obj=None, **kwargs):
        text = "" if value is None else str(value)
        if text.startswith(FORMULA_TRIGGERS):
            return FORMULA_GUARD + text
        return text


class IsoDateWidget(widgets.Widget):
    def render(self, value, obj=None, **kwargs):
        return value.isoformat() if value else ""


class IsoDateTimeWidget(widgets.Widget):
    """In the brand's time zone, with its offset (``2024-05-01 14:30:00+08:00``)."""

    def render(self, value, obj=None, **kwargs):
        return timezone.localtime(value).isoformat(sep=" ") if value else ""


class MoneyWidget(widgets.Widget):
    def render(self, value, obj=None, **kwargs):
        return "" if value is None else str(Decimal(value).quantize(Decimal("0.01")))


class StoreCodeWidget(SafeTextWidget):
    def render(self, value, obj=None, **kwargs):
        return super().render(value.code if value is not None else None)


class MemberMobileWidget(widgets.Widget):
    def render(self, value, obj=None, **kwargs):
        return value.mobile if value is not None else ""


class MemberResource(resources.ModelResource):
    mobile = fields.Field(attribute="mobile", column_name="mobile", widget=SafeTextWidget())
    name = fields.Field(attribute="name", column_name="name", widget=SafeTextWidget())
    gender = fields.Field(attribute="gender", column_name="gender", widget=SafeTextWidget())
    birthday = fields.Field(attribute="birthday", column_name="birthday", widget=IsoDateWidget())
    registered_at = fields.Field(attribute="registered_at", column_name="registered_at", widget=IsoDateTimeWidget())
    channel = fields.Field(attribute="channel", column_name="channel", widget=SafeTextWidget())
    store_code = fields.Field(attribute="home_store", column_name="store_code", widget=StoreCodeWidget())
    referral_code = fields.Field(attribute="referral_code", column_name="referral_code", widget=SafeTextWidget())

    class Meta:
        model = Member
        name = _("Members")
        fields = MEMBER_COLUMNS
        export_order = MEMBER_COLUMNS

    def get_queryset(self):
        return Member.objects.select_related("home_store")


class OrderResource(resources.ModelResource):
    external_id = fields.Field(attribute="external_id", column_name="order_id", widget=SafeTextWidget())
    member = fields.Field(attribute="member", column_name="member_mobile", widget=MemberMobileWidget())
    store = fields.Field(attribute="store", column_name="store_code", widget=StoreCodeWidget())
    paid_at = fields.Field(attribute="paid_at", column_name="paid_at", widget=IsoDateTimeWidget())
    amount = fields.Field(attribute="amount", column_name="amount", widget=MoneyWidget())
    refunded_amount = fields.Field(attribute="refunded_amount", column_name="refunded_amount", widget=MoneyWidget())
    status = fields.Field(attribute="status", column_name="status", widget=SafeTextWidget())

    class Meta:
        model = Order
        name = _("Orders")
        fields = ORDER_FIELDS
        export_order = ORDER_FIELDS

    def get_queryset(self):
        return Order.objects.select_related("member", "store")


class TagsWidget(SafeTextWidget):
    """A product's tags as ``import_products`` reads them: joined by ``|``."""

    def render(self, value, obj=None, **kwargs):
        return super().render("|".join(value or ()))


class ProductResource(resources.ModelResource):
    sku = fields.Field(attribute="sku", column_name="sku", widget=SafeTextWidget())
    name = fields.Field(attribute="name", column_name="name", widget=SafeTextWidget())
    category = fields.Field(attribute="category", column_name="category", widget=SafeTextWidget())
    tags = fields.Field(attribute="tags", column_name="tags", widget=TagsWidget())
    is_active = fields.Field(attribute="is_active", column_name="is_active", widget=widgets.BooleanWidget())

    class Meta:
        model = Product
        name = _("Products")
        fields = PRODUCT_FIELDS
        export_order = PRODUCT_FIELDS
