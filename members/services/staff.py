"""What staff do with members' personal data that is recorded (``StaffAccess``, append-only).

- ``member_mobile_reveal`` — show a member's full mobile number: needs ``members.view_full_mobile``,
  and is recorded (who, when, which member).
- ``member_counter_lookup`` — the member standing at the counter, found by their full mobile number
  (any spelling) or the QR code of their mini-program: any store's staff may serve them; when the
  member is outside the user's stores the look is recorded.
"""

from django.core.exceptions import PermissionDenied
from django.utils.translation import gettext_lazy as _

from members.models import Member, StaffAccess
from members.selectors import member_get_by_mobile, member_in_scope, mobile_or_none
from members.services.qr_codes import member_id_from_qr_code

REVEAL_PERMISSION = "members.view_full_mobile"


def member_mobile_reveal(*, user, member: Member) -> str:
    """The member's full mobile number, recorded as revealed by ``user``."""
    if user is None or not user.has_perm(REVEAL_PERMISSION):
        raise PermissionDenied(_("You are not allowed to see full mobile numbers."))
    StaffAccess.objects.create(user=user, member=member, kind=StaffAccess.Kind.MOBILE_REVEALED)
    return member.mobile


def member_counter_lookup(*, user, term: str) -> Member | None:
    """The member ``term`` names exactly — a full mobile number or a member QR code — whatever
    their store; ``None`` when it names no one. Recorded when outside the user's stores."""
    term = (term or "").strip()
    member, via = None, ""
    if mobile_or_none(term) is not None:
        member, via = member_get_by_mobile(mobile=term), "mobile"
    else:
        member_id = member_id_from_qr_code(term)
        if member_id is not None:
            member, via = Member.objects.filter(pk=member_id).first(), "qr_code"
    if member is not None and not member_in_scope(user=user, member_id=member.pk):
        StaffAccess.objects.create(user=user, member=member, kind=StaffAccess.Kind.COUNTER, via=via)
    return member
