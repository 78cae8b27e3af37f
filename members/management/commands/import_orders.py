from django.utils.translation import gettext_lazy as _

from members.csv_import import ImportCommand
from members.services.imports import orders_import


class Command(ImportCommand):
    help = _(
        "Import paid orders from a CSV file with the columns order_id,member_mobile,store_code,paid_at,amount "
        "(ISO 8601 paid_at, amount in yuan). Orders already recorded are skipped."
    )
    what = _("orders")

    def run_import(self, **kwargs):
        return orders_import(**kwargs)
