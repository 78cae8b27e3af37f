"""Request-level defences that are not one app's: whose address a request is, the staff sign-in
lockout's answer (django-axes), and the API documentation kept for staff.

- ``client_ip``: the client's address as ``REST_FRAMEWORK["NUM_PROXIES"]`` trusts it, the same
  one the API throttles count by. With ``NUM_PROXIES = 0`` (the default) it is the connecting
  address and ``X-Forwarded-For`` is ignored, so rotating that header escapes nothing; behind N
  reverse proxies it is the N-th address from the right of the header.
- ``lockout_response``: what a locked-out sign-in gets (``AXES_LOCKOUT_CALLABLE``): the admin's
  login page again, saying why and for how long, with 429; an API path gets the API's error shape.
- ``staff_only_unless_public``: ``/api/docs/`` and the schema for staff signed in to the admin,
  unless ``HUIYUAN_API_DOCS_PUBLIC``.
"""

from functools import wraps

from django.conf import settings
from django.contrib import admin
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth import REDIRECT_FIELD_NAME
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import ValidationError
from django.forms.utils import ErrorDict
from django.http import JsonResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext
from rest_framework.throttling import BaseThrottle

LOCKED_OUT_STATUS = 429


def client_ip(request) -> str | None:
    """The client's address, trusting ``X-Forwarded-For`` only as far as ``NUM_PROXIES`` says."""
    return BaseThrottle().get_ident(request)


def lockout_message() -> str:
    minutes = max(1, int(settings.AXES_COOLOFF_TIME.total_seconds() // 60))
    return ngettext(
        "Too many failed sign-ins for this user name from your address. Try again in %(minutes)d minute.",
        "Too many failed sign-ins for this user name from your address. Try again in %(minutes)d minutes.",
        minutes,
    ) % {"minutes": minutes}


class _LockedOut:
    """Mixed into the admin site's login form (unfold's, styled): shows only the lockout and never
    authenticates."""

    def __init__(self, request, message: str):
        super().__init__(request, data={"username": request.POST.get("username", "")})
        self._message = message

    def full_clean(self):
        self._errors = ErrorDict()
        self.cleaned_data = {}
        self.add_error(None, ValidationError(self._message, code="locked_out"))


def lockout_response(request, original_response=None, credentials=None):
    message = lockout_message()
    if request.path.startswith("/api/") or request.headers.get("x-requested-with") == "XMLHttpRequest":
        body = {"code": "locked_out", "message": message, "fields": {}}
        return JsonResponse(body, status=LOCKED_OUT_STATUS)
    site = admin.site
    form_class = type("LockedOutForm", (_LockedOut, site.login_form or AdminAuthenticationForm), {})
    context = {
        **site.each_context(request),
        "title": _("Log in"),
        "subtitle": None,
        "app_path": request.get_full_path(),
        "username": "",
        "form": form_class(request, message),
        REDIRECT_FIELD_NAME: request.POST.get(REDIRECT_FIELD_NAME) or reverse("admin:index"),
    }
    response = TemplateResponse(request, site.login_template or "admin/login.html", context, status=LOCKED_OUT_STATUS)
    return response.render()


def staff_only_unless_public(view):
    """``view`` for anyone when ``HUIYUAN_API_DOCS_PUBLIC``; else for active staff (others are sent
    to the admin's login page). Read on every request, so a settings change applies at once."""

    @wraps(view)
    def wrapped(request, *args, **kwargs):
        user = request.user
        if not settings.HUIYUAN_API_DOCS_PUBLIC and not (user.is_active and user.is_staff):
            return redirect_to_login(request.get_full_path(), reverse("admin:login"))
        return view(request, *args, **kwargs)

    return wrapped
