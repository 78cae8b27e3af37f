"""Who is calling: a member (bearer access token) or a store's system (``X-Api-Key``), and what they may do.

Members are not Django users. A member's access token (a JWT from ``members.services.tokens``) carries
a ``member_id`` claim and no ``user_id``, so it can never pass for a staff user; the request's
``user`` becomes a ``MemberPrincipal`` with the member's row. Every request reads that row (one
primary-key statement): a member who was blocked or erased (``Member.is_active`` false) or no
longer exists is refused with 401 at once, whatever tokens they still hold. A store key makes
``request.user`` a ``StorePrincipal`` with the key's store and scopes.
"""

from datetime import timedelta

from django.utils import timezone
from django.utils.functional import cached_property
from django.utils.translation import gettext_lazy as _
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.permissions import BasePermission
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.tokens import AccessToken

from members import rows
from members.models import Member, StoreApiKey
from members.services.api_keys import store_api_key_find
from members.services.tokens import MEMBER_CLAIM

API_KEY_HEADER = "X-Api-Key"
LAST_USED_RESOLUTION = timedelta(minutes=1)


class MemberPrincipal:
    """The member a valid access token names."""

    is_authenticated = True
    is_anonymous = False
    is_active = True
    is_staff = False

    def __init__(self, member_id: int, member: Member | None = None):
        self.member_id = member_id
        self.pk = f"member:{member_id}"
        if member is not None:
            self.__dict__["member"] = member  # the row authentication read: no second query

    @cached_property
    def member(self) -> Member:
        """The member row (404 if it no longer exists)."""
        from django.shortcuts import get_object_or_404

        return get_object_or_404(Member, pk=self.member_id)

    def __str__(self):
        return self.pk


class StorePrincipal:
    """A store's system, authenticated by one of the store's API keys."""

    is_authenticated = True
    is_anonymous = False
    is_active = True
    is_staff = False

    def __init__(self, api_key: StoreApiKey):
        self.api_key = api_key
        self.store = api_key.store
        self.store_id = api_key.store_id
        self.scopes = api_key.scope_set
        self.pk = f"apikey:{api_key.pk}"

    def __str__(self):
        return self.pk


class MemberTokenAuthentication(BaseAuthentication):
    """``Authorization: Bearer <access token>``."""

    keyword = b"bearer"

    def authenticate(self, request):
        parts = get_authorization_header(request).split()
        if not parts or parts[0].lower() != self.keyword:
            return None
        if len(parts) != 2:
            raise AuthenticationFailed(_("Send the header as: Authorization: Bearer <access token>."))
        try:
            token = AccessToken(parts[1].decode("ascii"))
        except (TokenError, UnicodeDecodeError):
            raise AuthenticationFailed(_("The access token is invalid or expired."), code="token_invalid") from None
        member_id = token.get(MEMBER_CLAIM)
        if not isinstance(member_id, int) or isinstance(member_id, bool):
            raise AuthenticationFailed(_("The access token does not name a member."), code="token_invalid")
        member = rows.get(Member, by="id", value=member_id)
        if member is None or not member.is_active:
            raise AuthenticationFailed(_("This member account is blocked or no longer exists."), code="member_inactive")
        return MemberPrincipal(member_id, member), token

    def authenticate_header(self, request):
        return 'Bearer realm="huiyuan"'


class StoreApiKeyAuthentication(BaseAuthentication):
    """``X-Api-Key: hy_<prefix>_<secret>``."""

    def authenticate(self, request):
        raw = request.headers.get(API_KEY_HEADER)
        if not raw:
            return None
        key = store_api_key_find(raw_key=raw)
        if key is None:
            raise AuthenticationFailed(_("The API key is invalid or revoked."), code="api_key_invalid")
        now = timezone.now()
        if key.last_used_at is None or now - key.last_used_at > LAST_USED_RESOLUTION:
            StoreApiKey.objects.filter(pk=key.pk).update(last_used_at=now)  # at most once a minute
            key.last_used_at = now  # the key may be cached: the next request need not write again
        return StorePrincipal(key), key

    def authenticate_header(self, request):
        return 'ApiKey realm="huiyuan"'


class IsMember(BasePermission):
    def has_permission(self, request, view):
        return isinstance(request.user, MemberPrincipal)


class HasStoreScope(BasePermission):
    """The store key carries the view's ``required_scope``."""

    message = _("This API key does not have the scope this operation needs.")

    def has_permission(self, request, view):
        principal = request.user
        return isinstance(principal, StorePrincipal) and view.required_scope in principal.scopes


# --- OpenAPI security schemes ---


class MemberTokenScheme(OpenApiAuthenticationExtension):
    target_class = MemberTokenAuthentication
    name = "memberToken"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": str(_("A member's access token from /api/v1/auth/.")),
        }


class StoreApiKeyScheme(OpenApiAuthenticationExtension):
    target_class = StoreApiKeyAuthentication
    name = "storeApiKey"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "header",
            "name": API_KEY_HEADER,
            "description": str(_("A store's API key: hy_<prefix>_<secret>.")),
        }
