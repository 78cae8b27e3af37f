from django.utils.translation import gettext_lazy as _

from members.csv_import import ImportCommand
from members.services.imports import members_import


class Command(ImportCommand):
    help = _(
        "Import members from a CSV file with the columns mobile,name,registered_at,store_code "
        "(and optionally gender,birthday,channel,openid). Known mobile numbers are left as they are."
    )
    what = _("members")

    def run_import(self, **kwargs):
        return members_import(**kwargs)
