"""Admin for the product catalogue: search by SKU or name, filters by category, tag and activity,
the CSV upload of ``import_products`` (``members.services.product_imports``) and the export.

Order lines are shown read-only on their order (``OrderLineInline``, used by ``OrderAdmin``): they
are recorded with the order (the POS) or by ``import_order_lines``, never edited.
"""

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.db.models import F, Func
from django.utils.translation import gettext_lazy as _

from members.admin.base import ModelAdmin, ReadOnlyPermissions, TabularInline
from members.admin.columns import money_column
from members.admin.imports import CsvImportExportMixin
from members.models import OrderLine, Product
from members.resources import ProductResource
from members.services.product_imports import PRODUCT_COLUMNS, TAG_SEPARATOR, parse_tags, products_import


class TagListFilter(admin.SimpleListFilter):
    title = _("tag")
    parameter_name = "tag"

    def lookups(self, request, model_admin):
        tags = (
            Product.objects.annotate(tag=Func(F("tags"), function="unnest"))
            .values_list("tag", flat=True)
            .distinct()
            .order_by("tag")
        )
        return [(tag, tag) for tag in tags]

    def queryset(self, request, queryset):
        value = self.value()
        return queryset.filter(tags__contains=[value]) if value else queryset


class ProductForm(forms.ModelForm):
    """Tags are typed as the import reads them: ``唤醒商品|新品`` (``;`` works too)."""

    tags = forms.CharField(
        label=_("tags"),
        required=False,
        help_text=_("Separated by | (or ;), e.g. 唤醒商品|新品. Offers may be limited to products with a tag."),
    )

    class Meta:
        model = Product
        fields = ("sku", "name", "category", "tags", "is_active")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk is not None:
            self.initial["tags"] = TAG_SEPARATOR.join(self.instance.tags)

    def clean_tags(self):
        try:
            return parse_tags(self.cleaned_data.get("tags") or "")
        except ValidationError as exc:
            raise forms.ValidationError(exc.messages) from None


@admin.register(Product)
class ProductAdmin(CsvImportExportMixin, ModelAdmin):
    form = ProductForm
    resource_classes = [ProductResource]
    import_service = staticmethod(products_import)
    import_columns = PRODUCT_COLUMNS
    import_permissions = ("add", "change")  # a known sku with other cells is updated
    list_display = ("sku", "name", "category", "tags_shown", "is_active", "updated_at")
    list_filter = ("category", TagListFilter, "is_active")
    search_fields = ("sku", "name")
    search_help_text = _("A SKU or a product name.")
    readonly_fields = ("created_at", "updated_at")
    fields = ("sku", "name", "category", "tags", "is_active", "created_at", "updated_at")

    @admin.display(description=_("tags"))
    def tags_shown(self, obj):
        return " · ".join(obj.tags)


class OrderLineInline(ReadOnlyPermissions, TabularInline):
    model = OrderLine
    fields = ("product", "quantity", "amount_shown", "refunded_quantity", "refunded_amount_shown")
    readonly_fields = fields
    amount_shown = money_column(OrderLine, "amount")
    refunded_amount_shown = money_column(OrderLine, "refunded_amount")
    extra = 0
    can_delete = False

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("product")
