"""Create (or reset) the demo operator account and print its login."""

import secrets

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Create or reset the superuser 'admin' with a fresh random password and print the login."

    def add_arguments(self, parser):
        parser.add_argument("--username", default="admin")

    def handle(self, *args, username, **options):
        password = secrets.token_urlsafe(9)
        user, _ = get_user_model().objects.get_or_create(username=username, defaults={"email": ""})
        user.is_staff = user.is_superuser = user.is_active = True
        user.set_password(password)
        user.save()
        self.stdout.write(f"Admin login: user {username}  password {password}")
