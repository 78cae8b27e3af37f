"""Mini-program accounts: linking a WeChat openid to a member, changing the bound mobile number.

A member always has a mobile number, so a WeChat user becomes a member only once they give a
verified number (WeChat's ``getPhoneNumber``): the member with that number gets the openid, or a
new member is registered with both. A number or an openid already bound to someone else is a
conflict (code ``duplicate``), never silently moved.

A blocked or erased member (``Member.is_active`` false) cannot log in: ``MemberInactive`` is raised
before anything is written. (An erased member's mobile number and openid were cleared, so that person
may register again as a new member.)
"""

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.utils.translation import gettext_lazy as _

from members.lock_objects import member_lock
from members.mobile import normalize_mobile
from members.models import Member
from members.services.members import member_register
from members.services.referrals import referral_register


class MemberInactive(PermissionDenied):
    """The member is blocked (or erased): no login, no tokens."""


def member_login_check(member: Member) -> Member:
    """``member``, if they may log in; ``MemberInactive`` if they are blocked."""
    if not member.is_active:
        raise MemberInactive(_("This member account is blocked."))
    return member


def _canonical_mobile(mobile: str) -> str:
    try:
        return normalize_mobile(mobile)
    except ValidationError as exc:
        raise ValidationError({"mobile": ValidationError(exc.messages[0], code="invalid_mobile")}) from None


def _duplicate(field: str, message) -> ValidationError:
    return ValidationError({field: ValidationError(message, code="duplicate")})


def member_link_openid(*, openid: str, mobile: str, referral_code: str = "") -> tuple[Member, bool]:
    """The member with ``mobile`` now logs in with ``openid``; registered first if there is none.

    Returns ``(member, created)``. A referral code counts only for a member registered here (it
    is for new members); for an existing member it is ignored.
    """
    openid = (openid or "").strip()
    if not openid:
        raise ValidationError({"openid": _("An openid is required.")})
    mobile = _canonical_mobile(mobile)
    with transaction.atomic():
        by_openid = Member.objects.filter(openid=openid).only("id", "mobile").first()
        if by_openid is not None:
            if by_openid.mobile != mobile:
                raise _duplicate("mobile", _("This WeChat account is already bound to another mobile number."))
            return member_login_check(Member.objects.get(pk=by_openid.pk)), False
        existing = Member.objects.filter(mobile=mobile).only("id").first()
        if existing is not None:
            member = member_login_check(member_lock(member_id=existing.pk))
            if member.openid and member.openid != openid:
                raise _duplicate("mobile", _("This mobile number is bound to another WeChat account."))
            member.openid = openid
            member.save(update_fields=["openid", "updated_at"])
            return member, False
        member = member_register(mobile=mobile, channel=Member.Channel.MINI_PROGRAM, openid=openid)
        if (referral_code or "").strip():
            try:
                referral_register(referee=member, code=referral_code)
            except ValidationError as exc:
                raise ValidationError({"referral_code": exc.error_dict.get("code", exc.messages)}) from None
        return member, True


def member_get_or_register(*, mobile: str) -> tuple[Member, bool]:
    """The member with ``mobile`` (any spelling), registered from the mini-program if new."""
    mobile = _canonical_mobile(mobile)
    member = Member.objects.filter(mobile=mobile).first()
    if member is not None:
        return member_login_check(member), False
    try:
        return member_register(mobile=mobile, channel=Member.Channel.MINI_PROGRAM), True
    except ValidationError:
        member = Member.objects.filter(mobile=mobile).first()  # registered meanwhile
        if member is None:
            raise
        return member, False


def member_change_mobile(*, member: Member, mobile: str) -> Member:
    """Bind ``mobile`` (verified by the caller) to ``member``; refused if another member has it."""
    mobile = _canonical_mobile(mobile)
    taken = _duplicate("mobile", _("This mobile number belongs to another member."))
    if Member.objects.filter(mobile=mobile).exclude(pk=member.pk).exists():
        raise taken
    try:
        with transaction.atomic():
            locked = member_lock(member_id=member.pk)
            if locked.mobile != mobile:
                locked.mobile = mobile
                locked.save(update_fields=["mobile", "updated_at"])
    except IntegrityError:
        raise taken from None
    member.mobile = mobile
    return locked
