from django.utils.translation import gettext_lazy as _

from members.management.import_command import ImportCommand
from members.services.product_imports import products_import


class Command(ImportCommand):
    help = _(
        "Import products from a CSV file with the columns sku,name,category,tags (tags separated by | or ;). "
        "Known SKUs with another name, category or tags are updated."
    )
    what = _("products")

    def run_import(self, **kwargs):
        return products_import(**kwargs)
