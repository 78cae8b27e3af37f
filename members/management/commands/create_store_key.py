"""``create_store_key STORE_CODE --scopes SCOPE,… [--name NAME]``: a new API key for a store's POS.

The full key is printed once, alone on standard output (``KEY=$(python manage.py create_store_key
A001 --scopes orders,members:read)``), what it is on standard error; only its hash is stored, so
it cannot be shown again — create another and deactivate the old one in the admin to replace it.
Same service as the admin's *New key* (``members.services.api_keys.store_api_key_create``).
"""

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import gettext as _

from members.models import ApiScope, Store
from members.services.api_keys import store_api_key_create


class Command(BaseCommand):
    help = "Create an API key for a store's POS and print it once. Scopes: " + ", ".join(ApiScope.values) + "."

    def add_arguments(self, parser):
        parser.add_argument("store_code", help="The store's code, e.g. A001.")
        parser.add_argument(
            "--scopes", required=True, help="Comma-separated, from: " + ", ".join(ApiScope.values) + "."
        )
        parser.add_argument("--name", default="POS", help="The system that uses the key (default: POS).")

    def handle(self, *args, store_code, scopes, name, **options):
        store = Store.objects.filter(code=store_code.strip()).first()
        if store is None:
            raise CommandError(_("No store has the code “%(code)s”.") % {"code": store_code})
        try:
            key, secret = store_api_key_create(store=store, name=name, scopes=scopes)
        except ValidationError as exc:
            messages = (message for field_messages in exc.message_dict.values() for message in field_messages)
            raise CommandError(" ".join(messages)) from None
        self.stderr.write(
            _(
                "Created key %(prefix)s (“%(name)s”) for store %(store)s with scopes %(scopes)s. "
                "It is shown only now: store it in the POS."
            )
            % {"prefix": key.prefix, "name": key.name, "store": store.code, "scopes": key.scopes}
        )
        self.stdout.write(secret)
