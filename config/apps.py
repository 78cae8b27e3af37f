"""The project's configurations of third-party apps that show in the admin."""

from django.utils.translation import gettext_lazy as _
from django_otp.plugins.otp_totp.apps import DefaultConfig as TotpDefaultConfig


class TotpConfig(TotpDefaultConfig):
    """django-otp's time-based codes (``config.two_factor``), named in the user's language: its
    table appears in the role and user pages' permission chooser."""

    verbose_name = _("Two-factor sign-in")

    def ready(self):
        from django_otp.plugins.otp_totp.models import TOTPDevice

        TOTPDevice._meta.verbose_name = _("authenticator")
        TOTPDevice._meta.verbose_name_plural = _("authenticators")
