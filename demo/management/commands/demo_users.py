"""Create (or reset) one demo user per shipped role and print their logins.

One tab-separated line per user: ``role  username  password  store_code`` — role one of
``operator``, ``manager``, ``staff``, ``analyst``; the store roles work at ``--store`` (by default
the active store with the most members), the others have an empty store code. Every run gives each
user a fresh random password, puts them in exactly their role's group and (store roles) exactly
that store; the roles themselves come from ``members.roles``.
"""

import secrets

from django.apps import apps
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.db.models import Count
from django.utils.translation import gettext as _

from members.models import Store, StoreStaff
from members.roles import ROLES, roles_install

USERNAMES = {"operator": "operator", "manager": "manager", "staff": "staff", "analyst": "analyst"}


class Command(BaseCommand):
    help = "Create or reset one demo user per role (operator, manager, staff, analyst) and print the logins."

    def add_arguments(self, parser):
        parser.add_argument("--store", help="the store code of the store roles (default: the largest active store)")

    def handle(self, *args, store=None, **options):
        shop = self._store(store)
        users = get_user_model()
        with transaction.atomic():
            roles_install(apps)
            lines = []
            for role in ROLES:
                username = USERNAMES[role.key]
                password = secrets.token_urlsafe(9)
                user, _created = users.objects.get_or_create(username=username, defaults={"email": ""})
                user.is_staff, user.is_superuser, user.is_active = True, False, True
                user.set_password(password)
                user.save()
                user.groups.set([Group.objects.get(name=role.group)])
                StoreStaff.objects.filter(user=user).delete()
                if role.store_scoped:
                    StoreStaff.objects.create(user=user, store=shop)
                lines.append("\t".join((role.key, username, password, shop.code if role.store_scoped else "")))
        self.stdout.write("\n".join(lines))

    def _store(self, code: str | None) -> Store:
        if code:
            found = Store.objects.filter(code=code).first()
            if found is None:
                raise CommandError(_("No store has the code %(code)s.") % {"code": code})
            return found
        found = Store.objects.filter(is_active=True).annotate(size=Count("members")).order_by("-size", "code").first()
        if found is None:
            raise CommandError(_("There is no store yet: create one (or the demo brand: seed_demo) first."))
        return found
