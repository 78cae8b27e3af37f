from django.utils.translation import gettext_lazy as _

from members.management.import_command import ImportCommand
from members.services.imports import members_import


class Command(ImportCommand):
    help = _(
        "Register members from a CSV file with a mobile column (and optionally name,gender,birthday,"
        "registered_at,channel,store_code,openid). Known mobile numbers are left as they are. New members "
        "are registered one by one as over the API unless --historical is given (in bulk, without events)."
    )
    what = _("members")
    offers_historical = True

    def run_import(self, **kwargs):
        return members_import(**kwargs)
