from django.utils.translation import gettext_lazy as _

from members.management.import_command import ImportCommand
from members.services.imports import stores_import


class Command(ImportCommand):
    help = _(
        "Import stores from a CSV file with the columns code,name,city. Known codes with another name or city "
        "are updated."
    )
    what = _("stores")

    def run_import(self, **kwargs):
        return stores_import(**kwargs)
