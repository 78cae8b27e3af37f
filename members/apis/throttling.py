"""Throttles: counted in the default cache (per process unless ``CACHE_URL``/``REDIS_URL`` is Redis).

A view names its scope in ``throttle_scope``; the rates are ``REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]``:

- ``auth``: logins and token refreshes, per client address;
- ``member_money``: a member's top-ups, per member;
- ``pos_money``: stored-value and points operations, per store API key;
- ``payment_notify``: payment callbacks, per client address.

A request over the rate gets a 429 with ``Retry-After``.
"""

from django.core.exceptions import ImproperlyConfigured
from rest_framework.settings import api_settings
from rest_framework.throttling import ScopedRateThrottle


class ApiScopedThrottle(ScopedRateThrottle):
    """DRF's scoped throttle: per authenticated principal (its ``pk``), else per client address."""

    def get_rate(self):
        """Read the rates now, not when the class was defined, so a settings change applies."""
        try:
            return api_settings.DEFAULT_THROTTLE_RATES[self.scope]
        except KeyError:
            raise ImproperlyConfigured(f"No throttle rate set for scope {self.scope!r}") from None

    def get_cache_key(self, request, view):
        principal = getattr(request, "user", None)
        ident = principal.pk if getattr(principal, "is_authenticated", False) else self.get_ident(request)
        return self.cache_format % {"scope": self.scope, "ident": ident}
