"""Member login for the mini-program: WeChat login and registration, token refresh, logout, dev login.

1. ``POST /auth/wechat-login {code}``: the server exchanges ``code`` with WeChat
   (``code2session``). A member with that openid gets tokens (``status: authenticated``); an
   unknown WeChat user gets a short-lived ``registration_token`` (``status: registration_required``).
2. ``POST /auth/wechat-register {registration_token, phone_code}``: WeChat vouches for the user's
   phone number (``getPhoneNumber``); the member with that number is linked to the openid, or a
   new member is registered. Answers with tokens.
3. ``POST /auth/refresh {refresh}`` rotates the refresh token; ``POST /auth/logout {refresh}``
   revokes it.

``POST /auth/dev-login {mobile}`` logs in by mobile number alone, for local use and tests; it
exists only when ``settings.HUIYUAN_DEV_LOGIN`` is on (never in production).
"""

from django.conf import settings
from django.core import signing
from django.http import Http404
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import APIException, PermissionDenied, ValidationError
from rest_framework.response import Response

from members import wechat
from members.apis import errors
from members.apis.base import MemberApi, PublicApi, StrictSerializer
from members.apis.errors import ServiceUnavailable
from members.models import Member
from members.services import tokens
from members.services.accounts import MemberInactive, member_get_or_register, member_link_openid
from members.services.tokens import member_token_owner, member_token_revoke, member_tokens_issue, member_tokens_rotate

REGISTRATION_SALT = "huiyuan.wechat-registration"
REGISTRATION_MAX_AGE = 600


class TokenPairSerializer(serializers.Serializer):
    access = serializers.CharField(help_text=_("Bearer token for the API; short-lived."))
    refresh = serializers.CharField(help_text=_("Trade it for a new pair at /auth/refresh; rotates on use."))
    access_expires_in = serializers.IntegerField(help_text=_("Seconds until the access token expires."))
    member_id = serializers.IntegerField()


class MemberBlocked(APIException):
    status_code = status.HTTP_403_FORBIDDEN
    default_detail = _("This member account is blocked.")
    default_code = "member_inactive"


def _logged_in(login):
    """``login()`` (which returns a member), or 403 ``member_inactive`` for a blocked member."""
    try:
        return login()
    except MemberInactive:
        raise MemberBlocked() from None


def _field_error(field: str, message, code: str = "invalid") -> ValidationError:
    return ValidationError({field: [serializers.ErrorDetail(message, code=code)]})


def _wechat_call(call, field: str):
    """Run a WeChat call; a bad user code is the caller's 400, anything else a 503."""
    try:
        return call()
    except wechat.WeChatInvalidCode:
        raise _field_error(field, _("WeChat refused this code: get a new one and try again.")) from None
    except (wechat.WeChatError, wechat.WeChatUnavailable):
        raise ServiceUnavailable() from None


class WeChatLoginApi(PublicApi):
    throttle_scope = "auth"
    extra_error_statuses = (403, 503)

    class InputSerializer(StrictSerializer):
        code = serializers.CharField(max_length=128, help_text=_("The code from wx.login()."))

    class OutputSerializer(serializers.Serializer):
        status = serializers.ChoiceField(choices=["authenticated", "registration_required"])
        tokens = TokenPairSerializer(allow_null=True, help_text=_("Set when authenticated."))
        registration_token = serializers.CharField(
            allow_null=True,
            help_text=_("Set when registration is required: send it to /auth/wechat-register within 10 minutes."),
        )

    @extend_schema(
        operation_id="auth_wechat_login",
        request=InputSerializer,
        responses={200: OutputSerializer},
        tags=["auth"],
        summary="Log in with a WeChat code",
    )
    def post(self, request):
        data = self.validated(self.InputSerializer, request.data)
        session = _wechat_call(lambda: wechat.get_client().code2session(data["code"]), "code")
        found = Member.objects.filter(openid=session.openid).values_list("pk", "is_active").first()
        if found is not None:
            member_id, is_active = found
            if not is_active:
                raise MemberBlocked()
            body = {"status": "authenticated", "tokens": member_tokens_issue(member_id=member_id)}
            body["registration_token"] = None
        else:
            token = signing.dumps({"openid": session.openid}, salt=REGISTRATION_SALT)
            body = {"status": "registration_required", "tokens": None, "registration_token": token}
        return Response(self.OutputSerializer(body).data)


class WeChatRegisterApi(PublicApi):
    throttle_scope = "auth"
    extra_error_statuses = (403, 409, 503)

    class InputSerializer(StrictSerializer):
        registration_token = serializers.CharField(max_length=512)
        phone_code = serializers.CharField(max_length=128, help_text=_("The code from getPhoneNumber."))
        referral_code = serializers.CharField(
            max_length=16, required=False, allow_blank=True, help_text=_("A referrer's code, for a new member.")
        )

    @extend_schema(
        operation_id="auth_wechat_register",
        request=InputSerializer,
        responses={200: TokenPairSerializer},
        tags=["auth"],
        summary="Bind a WeChat login to a member by a verified phone number",
    )
    def post(self, request):
        data = self.validated(self.InputSerializer, request.data)
        try:
            claims = signing.loads(data["registration_token"], salt=REGISTRATION_SALT, max_age=REGISTRATION_MAX_AGE)
            openid = str(claims["openid"])
        except (signing.BadSignature, KeyError, TypeError):
            raise _field_error(
                "registration_token", _("The registration token is invalid or expired: log in again."), "expired"
            ) from None
        mobile = _wechat_call(lambda: wechat.get_client().phone_number(data["phone_code"]), "phone_code")
        member, _created = _logged_in(
            lambda: member_link_openid(openid=openid, mobile=mobile, referral_code=data.get("referral_code", ""))
        )
        return Response(TokenPairSerializer(member_tokens_issue(member_id=member.pk)).data)


class DevLoginApi(PublicApi):
    """Only when ``HUIYUAN_DEV_LOGIN`` is on; otherwise 404 and absent from the schema."""

    throttle_scope = "auth"
    extra_error_statuses = (403,)

    @staticmethod
    def excluded_from_schema() -> bool:
        return not settings.HUIYUAN_DEV_LOGIN

    class InputSerializer(StrictSerializer):
        mobile = serializers.CharField(max_length=32)

    @extend_schema(
        operation_id="auth_dev_login",
        request=InputSerializer,
        responses={200: TokenPairSerializer},
        tags=["auth"],
        summary="Development login by mobile number (local and test only)",
    )
    def post(self, request):
        if not settings.HUIYUAN_DEV_LOGIN:
            raise Http404
        data = self.validated(self.InputSerializer, request.data)
        member, _created = _logged_in(lambda: member_get_or_register(mobile=data["mobile"]))
        return Response(TokenPairSerializer(member_tokens_issue(member_id=member.pk)).data)


class TokenRefreshApi(PublicApi):
    throttle_scope = "auth"
    extra_error_statuses = (401,)

    class InputSerializer(StrictSerializer):
        refresh = serializers.CharField(max_length=2048)

    @extend_schema(
        operation_id="auth_refresh",
        request=InputSerializer,
        responses={200: TokenPairSerializer},
        tags=["auth"],
        summary="Trade a refresh token for a new pair (the old one stops working)",
    )
    def post(self, request):
        data = self.validated(self.InputSerializer, request.data)
        try:
            pair = member_tokens_rotate(refresh=data["refresh"])
        except tokens.RefreshRefused:
            raise errors.RefreshRefused() from None
        return Response(TokenPairSerializer(pair).data)


class LogoutApi(MemberApi):
    extra_error_statuses = (403,)

    class InputSerializer(StrictSerializer):
        refresh = serializers.CharField(max_length=2048)

    @extend_schema(
        operation_id="auth_logout",
        request=InputSerializer,
        responses={204: None},
        tags=["auth"],
        summary="Revoke a refresh token",
    )
    def post(self, request):
        data = self.validated(self.InputSerializer, request.data)
        owner = member_token_owner(refresh=data["refresh"])
        if owner is None:
            raise _field_error("refresh", _("This is not a valid refresh token."))
        if owner != self.principal.member_id:
            raise PermissionDenied(_("This refresh token belongs to someone else."))
        member_token_revoke(refresh=data["refresh"])
        return Response(status=status.HTTP_204_NO_CONTENT)
