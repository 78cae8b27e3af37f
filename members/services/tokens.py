"""Members' tokens (djangorestframework-simplejwt): issue, rotate, revoke.

A pair is a short-lived access token and a refresh token, both carrying the ``member_id`` claim.
Every refresh token is recorded as outstanding; using one rotates it (the old one is
blacklisted, once — a second use of the same refresh token is refused), and logging out
blacklists it. A blocked or erased member's tokens stop working at once: refreshing needs an active
member, and so does every request with an access token (``members.apis.authentication``).
"""

import contextlib

from django.db import transaction
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.settings import api_settings as jwt_settings
from rest_framework_simplejwt.state import token_backend
from rest_framework_simplejwt.token_blacklist.models import OutstandingToken
from rest_framework_simplejwt.tokens import RefreshToken
from rest_framework_simplejwt.utils import datetime_from_epoch

from members.models import Member

MEMBER_CLAIM = "member_id"  # the claim naming the member in every token


class RefreshRefused(Exception):
    """The refresh token is invalid, expired, revoked or names no member (the API answers 401)."""


def member_tokens_issue(*, member_id: int) -> dict:
    """A new access and refresh token for the member; the refresh token is recorded as outstanding."""
    refresh = RefreshToken()
    refresh[MEMBER_CLAIM] = member_id
    encoded = str(refresh)
    OutstandingToken.objects.create(
        user=None,
        jti=refresh[jwt_settings.JTI_CLAIM],
        token=encoded,
        created_at=refresh.current_time,
        expires_at=datetime_from_epoch(refresh["exp"]),
    )
    return {
        "access": str(refresh.access_token),
        "refresh": encoded,
        "access_expires_in": int(jwt_settings.ACCESS_TOKEN_LIFETIME.total_seconds()),
        "member_id": member_id,
    }


def _member_id(token) -> int:
    member_id = token.get(MEMBER_CLAIM)
    if not isinstance(member_id, int) or isinstance(member_id, bool):
        raise RefreshRefused()
    return member_id


def member_tokens_rotate(*, refresh: str) -> dict:
    """Trade a refresh token for a new pair; the old refresh token is blacklisted (once)."""
    try:
        old = RefreshToken(refresh)
    except TokenError:
        raise RefreshRefused() from None
    member_id = _member_id(old)
    with transaction.atomic():
        _entry, newly_blacklisted = old.blacklist()
        if not newly_blacklisted or not Member.objects.filter(pk=member_id, is_active=True).exists():
            raise RefreshRefused()
        return member_tokens_issue(member_id=member_id)


def member_token_owner(*, refresh: str) -> int | None:
    """The member a validly signed, unexpired refresh token names (blacklisted or not), else None."""
    try:
        payload = token_backend.decode(refresh, verify=True)
    except Exception:
        return None
    if payload.get(jwt_settings.TOKEN_TYPE_CLAIM) != RefreshToken.token_type:
        return None
    member_id = payload.get(MEMBER_CLAIM)
    return member_id if isinstance(member_id, int) and not isinstance(member_id, bool) else None


def member_token_revoke(*, refresh: str) -> None:
    """Blacklist a refresh token (already revoked: nothing to do). Check its owner first."""
    # TokenError: already blacklisted (the signature was checked by ``member_token_owner``).
    with contextlib.suppress(TokenError):
        RefreshToken(refresh).blacklist()
