"""Registering members."""

from datetime import date, datetime

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from members.events import member_registered
from members.mobile import normalize_mobile
from members.models import Member, Store
from members.referral_codes import new_referral_code
from members.services.tiers import tier_assign_initial

_REFERRAL_CODE_ATTEMPTS = 5


def member_register(
    *,
    mobile: str,
    name: str = "",
    gender: str = Member.Gender.UNKNOWN,
    birthday: date | None = None,
    registered_at: datetime | None = None,
    channel: str = Member.Channel.STORE,
    home_store: Store | None = None,
    openid: str | None = None,
    referrer: Member | None = None,
    referral_code: str = "",
) -> Member:
    """Create a member and give them the entry tier, in one transaction; then ``member_registered``
    tells the higher apps. A mobile number (in any of its spellings) registers once.

    ``referral_code`` keeps a code the member already has (a migration from another system, the
    demo brand); by default a new one is drawn."""
    try:
        mobile = normalize_mobile(mobile)
    except ValidationError as exc:
        raise ValidationError({"mobile": exc.messages}) from None
    if Member.objects.filter(mobile=mobile).exists():
        raise ValidationError({"mobile": _("A member with this mobile number already exists.")}, code="duplicate")
    member = Member(
        mobile=mobile,
        name=name.strip(),
        gender=gender,
        birthday=birthday,
        registered_at=registered_at or timezone.now(),
        channel=channel,
        home_store=home_store,
        openid=openid or None,
        referrer=referrer,
    )
    member.full_clean(exclude=["referral_code"], validate_unique=False)
    for attempt in range(_REFERRAL_CODE_ATTEMPTS):
        member.referral_code = (referral_code if attempt == 0 else "") or new_referral_code()
        try:
            with transaction.atomic():
                member.save()
                tier_assign_initial(member_id=member.pk)
                member_registered.publish(member_id=member.pk)
            return member
        except IntegrityError:
            member.pk = None
            if Member.objects.filter(mobile=mobile).exists():
                raise ValidationError(
                    {"mobile": _("A member with this mobile number already exists.")}, code="duplicate"
                ) from None
            if openid and Member.objects.filter(openid=openid).exists():
                raise ValidationError({"openid": _("This openid belongs to another member.")}) from None
            if attempt == _REFERRAL_CODE_ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")
