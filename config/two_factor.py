"""Two-factor sign-in for staff (django-otp, time-based codes from an authenticator app).

- **Sign-in** (``StaffLoginForm``, the admin site's login form): a staff user with a confirmed
  authenticator gives its current 6-digit code with the password; without it, or with a wrong one,
  nobody is signed in. A wrong code counts as a failed sign-in for the lockout (django-axes), and
  django-otp slows repeated wrong codes down on the device. Users without an authenticator sign in
  with their password as before.
- **Required for operators** when ``HUIYUAN_OPERATOR_2FA_REQUIRED`` (on in the production example,
  off by default): an operator (the shipped ``运营 operator`` role) or superuser who has not signed
  in with a code is sent from every admin page to ``two_factor_setup`` (``TwoFactorRequiredMiddleware``).
- **Setup** (``two_factor_setup``, ``/admin/two-factor/``): a QR code of the authenticator's key
  (and the key as text), then a first code from the app, which confirms the authenticator and
  counts as the session's second factor. A user who has one already gives a code there instead.
  Any staff user may set one up there; from then on they sign in with a code.
"""

from base64 import b32encode

import segno
from django import forms
from django.conf import settings
from django.contrib import admin
from django.contrib.auth import REDIRECT_FIELD_NAME
from django.contrib.auth.decorators import login_required
from django.contrib.auth.signals import user_login_failed
from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import HttpResponseRedirect
from django.shortcuts import resolve_url
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme, urlencode
from django.utils.safestring import mark_safe
from django.utils.translation import gettext_lazy as _
from django_otp import devices_for_user
from django_otp import login as otp_login
from django_otp.plugins.otp_totp.models import TOTPDevice
from unfold.forms import AuthenticationForm
from unfold.widgets import BASE_INPUT_CLASSES

from members.roles import ROLE_BY_KEY

OPERATOR_GROUP = ROLE_BY_KEY["operator"].group
SETUP_URL_NAME = "two_factor_setup"
# Admin pages an operator without a second factor may still open: to sign in or out, and the
# admin's translations catalogue the pages load.
OPEN_ADMIN_PAGES = frozenset({"login", "logout", "jsi18n", "password_change", "password_change_done"})


def confirmed_device(user):
    """The user's confirmed authenticator, if any."""
    return next(devices_for_user(user, confirmed=True), None)


def two_factor_required(user) -> bool:
    """Whether ``user`` must sign in with a code (``HUIYUAN_OPERATOR_2FA_REQUIRED``)."""
    if not settings.HUIYUAN_OPERATOR_2FA_REQUIRED or not user.is_authenticated:
        return False
    return user.is_superuser or user.groups.filter(name=OPERATOR_GROUP).exists()


def verified_device(device, token: str):
    """``device`` if ``token`` is its current code (locked while checked, as django-otp's throttle
    and its record of the last code used are updated), else None."""
    token = (token or "").strip().replace(" ", "")
    if not token:
        return None
    with transaction.atomic():
        device = type(device).objects.select_for_update().get(pk=device.pk)
        allowed, _details = device.verify_is_allowed()
        return device if allowed and device.verify_token(token) else None


def token_field():
    return forms.CharField(
        label=_("Authenticator code"),
        required=False,
        max_length=10,
        widget=forms.TextInput(
            attrs={
                "autocomplete": "one-time-code",
                "inputmode": "numeric",
                "class": " ".join(BASE_INPUT_CLASSES),
            }
        ),
    )


class StaffLoginForm(AuthenticationForm):
    """The admin's login form (unfold's), with the authenticator code."""

    otp_token = token_field()
    two_factor_messages = {
        "token_required": _("Enter the 6-digit code from your authenticator app."),
        "invalid_token": _("The authenticator code is wrong or has expired. Enter the current code."),
    }

    def __init__(self, request=None, *args, **kwargs):
        super().__init__(request, *args, **kwargs)
        self.fields["otp_token"].help_text = _("Only if you have set up an authenticator app.")

    def clean(self):
        cleaned_data = super().clean()  # the password (counted by the lockout), and staff only
        user = self.get_user()
        device = confirmed_device(user) if user is not None else None
        if device is None:
            return cleaned_data
        token = cleaned_data.get("otp_token")
        if not token:
            raise ValidationError(self.two_factor_messages["token_required"], code="token_required")
        verified = verified_device(device, token)
        if verified is None:
            # a wrong code is a failed sign-in for django-axes' lockout, like a wrong password
            user_login_failed.send(sender=__name__, credentials={"username": user.get_username()}, request=self.request)
            raise ValidationError(self.two_factor_messages["invalid_token"], code="invalid_token")
        user.otp_device = verified  # django-otp keeps it in the session at login: a verified session
        return cleaned_data


class SetupForm(forms.Form):
    otp_token = token_field()


def qr_svg(text: str) -> str:
    """``text`` as a QR code, an inline SVG."""
    return segno.make(text, error="m").svg_inline(scale=5, border=2, dark="#111827", light="#ffffff")


def _next_url(request) -> str:
    wanted = request.POST.get(REDIRECT_FIELD_NAME) or request.GET.get(REDIRECT_FIELD_NAME) or ""
    safe = url_has_allowed_host_and_scheme(wanted, {request.get_host()}, require_https=request.is_secure())
    return wanted if wanted and safe else reverse("admin:index")


@login_required(login_url="admin:login")
def two_factor_setup(request):
    """Set up an authenticator (QR code, then a first code), or, with one, give its code."""
    user = request.user
    confirmed = confirmed_device(user)
    if confirmed is not None and user.is_verified():
        return HttpResponseRedirect(_next_url(request))
    device = confirmed or TOTPDevice.objects.filter(user=user, confirmed=False).order_by("pk").first()
    if device is None:
        device = TOTPDevice.objects.create(user=user, name=str(_("Authenticator")), confirmed=False)
    form = SetupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        verified = verified_device(device, form.cleaned_data["otp_token"])
        if verified is None:
            form.add_error("otp_token", StaffLoginForm.two_factor_messages["invalid_token"])
        else:
            if not verified.confirmed:
                verified.confirmed = True
                verified.save(update_fields=["confirmed"])
            otp_login(request, verified)
            return HttpResponseRedirect(_next_url(request))
    context = {
        **admin.site.each_context(request),
        "title": _("Two-factor sign-in"),
        "form": form,
        "setting_up": confirmed is None,
        "required": two_factor_required(user),
        "qr_code": mark_safe(qr_svg(device.config_url)) if confirmed is None else "",  # noqa: S308 (segno's SVG)
        "secret": _spaced(device) if confirmed is None else "",
        "next": _next_url(request),
        "logout_url": reverse("admin:logout"),
    }
    return TemplateResponse(request, "admin/two_factor_setup.html", context)


def _spaced(device) -> str:
    """The key as an app asks for it when typed: base32, in groups of four."""
    key = b32encode(device.bin_key).decode().rstrip("=")
    return " ".join(key[index : index + 4] for index in range(0, len(key), 4))


class TwoFactorRequiredMiddleware:
    """Sends an operator who has not signed in with a code from any admin page to the setup page,
    while ``HUIYUAN_OPERATOR_2FA_REQUIRED``. After ``OTPMiddleware``."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_view(self, request, view_func, view_args, view_kwargs):
        if not settings.HUIYUAN_OPERATOR_2FA_REQUIRED:
            return None
        match = request.resolver_match
        if match is None or match.namespace != "admin" or match.url_name in OPEN_ADMIN_PAGES:
            return None
        user = request.user
        if not user.is_authenticated or not user.is_staff or user.is_verified() or not two_factor_required(user):
            return None
        setup = resolve_url(SETUP_URL_NAME)
        return HttpResponseRedirect(f"{setup}?{urlencode({REDIRECT_FIELD_NAME: request.get_full_path()})}")
