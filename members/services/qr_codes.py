"""The member's QR code: what it encodes (their id, signed and timestamped), and reading it back at
the till. A code older than ``HUIYUAN_MEMBER_QR_MAX_AGE`` seconds, or tampered with, names no one."""

from django.conf import settings
from django.core import signing

QR_SALT = "huiyuan.member-qr"


def member_qr_code(member_id: int) -> str:
    """What the member's QR code encodes: their id, signed and timestamped."""
    return signing.TimestampSigner(salt=QR_SALT).sign(str(member_id))


def member_id_from_qr_code(value: str) -> int | None:
    """The member id a fresh, untampered QR code names; None when it is invalid or too old."""
    try:
        raw = signing.TimestampSigner(salt=QR_SALT).unsign(value, max_age=settings.HUIYUAN_MEMBER_QR_MAX_AGE)
        return int(raw)
    except (signing.BadSignature, ValueError):
        return None
