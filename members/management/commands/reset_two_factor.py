"""``reset_two_factor USERNAME``: remove a staff user's authenticators, for a user who lost the
phone. They sign in with their password again and, where two-factor sign-in is required
(``HUIYUAN_OPERATOR_2FA_REQUIRED``), are sent to set up a new authenticator at once. Authenticators
are not editable in the admin (``config.urls``): resetting one is a deliberate act on the server.
"""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import gettext as _
from django_otp.plugins.otp_totp.models import TOTPDevice


class Command(BaseCommand):
    help = "Remove a staff user's two-factor authenticators (a lost phone); they set up a new one at sign-in."

    def add_arguments(self, parser):
        parser.add_argument("username", help="The staff user's sign-in name.")

    def handle(self, *args, username, **options):
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(_("No user is called “%(username)s”.") % {"username": username})
        removed, _by_model = TOTPDevice.objects.filter(user=user).delete()
        self.stdout.write(
            _("Removed %(count)s authenticator(s) of %(username)s.") % {"count": removed, "username": username}
        )
