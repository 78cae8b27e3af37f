from django.utils.translation import gettext_lazy as _

from members.management.import_command import ImportCommand
from members.services.imports import orders_import


class Command(ImportCommand):
    help = _(
        "Import paid orders from a CSV file with the columns order_id,member_mobile,store_code,paid_at,amount "
        "(ISO 8601 paid_at, amount in yuan). Orders already recorded are skipped. New orders earn points and "
        "count for tiers and referrals as over the API, unless --historical is given."
    )
    what = _("orders")
    offers_historical = True

    def run_import(self, **kwargs):
        return orders_import(**kwargs)
