from django.utils.translation import gettext_lazy as _

from members.management.import_command import ImportCommand
from members.services.product_imports import order_lines_import


class Command(ImportCommand):
    help = _(
        "Import order lines from a CSV file with the columns order_id,store_code,sku,quantity,amount. "
        "A line is known by its order and SKU: one already recorded is left as it is."
    )
    what = _("order lines")

    def run_import(self, **kwargs):
        return order_lines_import(**kwargs)
