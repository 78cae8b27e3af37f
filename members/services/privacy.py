"""Members' personal data (PIPL): blocking a member, exporting what we hold about them, erasing it.

- **Blocking** (``member_block`` / ``member_unblock``, many members in one statement): ``Member.is_active``
  false. A blocked member cannot log in or refresh a token, their access tokens are refused at once (401), no QR code is
  issued, and a till cannot serve them (lookup, order, top-up, spend: 400 ``member_inactive``). Refunds
  of their orders and stored value still go through, so that money can always go back.
- **Export** (``member_data_export``): a JSON-ready document with the member's profile and every row
  of any app that points at the member — orders, refunds, points and wallet ledgers, top-ups,
  referrals, tier changes, coupons, segments, messages, tasks — and the rows that point at those
  (refunds of the orders, entries of the wallet). Found through the model registry, so a table added
  later is exported without changing this module (and ``members`` imports no higher app).
- **Erasure** (``member_erase``): irreversible and idempotent. The member row stays, anonymised:
  name, birthday and openid cleared, gender unknown, the mobile number replaced by a placeholder
  that no real number can take (``0`` + the member id: mainland mobiles start with 1; the column
  stays unique), a new referral code (the old one, shared with friends, names no one), inactive. The
  admin's history of the member is renamed too. Orders, refunds and the points and wallet ledgers
  are kept untouched, so every balance still equals its ledger (``reconcile`` stays clean) and the
  brand's figures do not change. Refused while the wallet holds principal — money the member paid in
  must be refunded first (``wallet_refund_top_up``). Pending top-ups are closed. Higher apps erase
  what they keep through ``member_erased``.
"""

from collections import defaultdict
from datetime import datetime

from django.contrib.admin.models import LogEntry
from django.contrib.contenttypes.models import ContentType
from django.core import serializers
from django.core.exceptions import ValidationError
from django.db import IntegrityError, models, transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from members.events import member_erased
from members.lock_objects import member_lock
from members.models import Member, TopUpIntent, Wallet
from members.referral_codes import new_referral_code

__all__ = [
    "EXPORT_FORMAT",
    "erased_mobile",
    "member_block",
    "member_data_export",
    "member_erase",
    "member_unblock",
]

EXPORT_FORMAT = "huiyuan.member-data/1"
PROFILE_FIELDS = (
    "id",
    "mobile",
    "name",
    "gender",
    "birthday",
    "registered_at",
    "channel",
    "openid",
    "referral_code",
    "is_active",
    "erased_at",
    "created_at",
    "updated_at",
)
_CODE_ATTEMPTS = 5


def erased_mobile(member_id: int) -> str:
    """The placeholder an erased member's mobile number becomes: 11 characters, unique, never a real
    number (mainland mobile numbers start with 1)."""
    return f"0{member_id:010d}"


# --- blocking ---------------------------------------------------------------------------------------


def member_block(*, member_ids) -> int:
    """Block these members (idempotent; one statement): see the module's doc for what that stops.
    Returns how many were active before."""
    return Member.objects.filter(pk__in=list(member_ids), is_active=True).update(
        is_active=False, updated_at=timezone.now()
    )


def member_unblock(*, member_ids) -> int:
    """Let these blocked members in again (idempotent); erased members stay inactive for good.
    Returns how many were unblocked."""
    return Member.objects.filter(pk__in=list(member_ids), is_active=False, erased_at__isnull=True).update(
        is_active=True, updated_at=timezone.now()
    )


# --- export -----------------------------------------------------------------------------------------


def _reverse_relations(model: type[models.Model]) -> list[models.ForeignObjectRel]:
    """Every foreign key or one-to-one of any app that points at ``model`` (hidden ones included)."""
    return [
        field
        for field in model._meta.get_fields(include_hidden=True)
        if field.auto_created and not field.concrete and (field.one_to_many or field.one_to_one)
    ]


def _rows(queryset) -> list[dict]:
    return [{"id": row["pk"], **row["fields"]} for row in serializers.serialize("python", queryset.order_by("pk"))]


def member_data_export(*, member_id: int, now: datetime | None = None) -> dict:
    """Everything held about the member, as a JSON-ready document (dates and amounts become strings
    with ``DjangoJSONEncoder``). ``records`` maps ``app_label.Model`` to its rows: first every row
    that points at the member, then every row that points at one of those (refunds of the orders,
    entries of the wallet). Other members' rows (the people they referred) are never included."""
    member = Member.objects.select_related("home_store", "tier", "referrer").get(pk=member_id)
    profile = {name: getattr(member, name) for name in PROFILE_FIELDS}
    profile["home_store"] = member.home_store.code if member.home_store_id else None
    profile["tier"] = member.tier.code if member.tier_id else None
    profile["referred_by_code"] = member.referrer.referral_code if member.referrer_id else None

    records: dict[str, dict[int, dict]] = defaultdict(dict)
    first_level: dict[type[models.Model], set] = defaultdict(set)
    for relation in _reverse_relations(Member):
        related = relation.related_model
        if related is Member:  # the members they referred: other people's data
            continue
        queryset = related._default_manager.filter(**{relation.field.name: member_id})
        for row in _rows(queryset):
            records[related._meta.label][row["id"]] = row
            first_level[related].add(row["id"])
    for parent, ids in list(first_level.items()):
        for relation in _reverse_relations(parent):
            related = relation.related_model
            if related is Member or not ids:
                continue
            queryset = related._default_manager.filter(**{f"{relation.field.name}__in": ids})
            for row in _rows(queryset):
                records[related._meta.label].setdefault(row["id"], row)
    return {
        "format": EXPORT_FORMAT,
        "exported_at": now or timezone.now(),
        "member": profile,
        "records": {label: list(rows.values()) for label, rows in sorted(records.items())},
    }


# --- erasure ----------------------------------------------------------------------------------------


def member_erase(*, member: Member) -> Member:
    """Erase the member's personal data for good (see the module's doc). Erasing an erased member
    changes nothing and returns it."""
    for attempt in range(_CODE_ATTEMPTS):
        try:
            with transaction.atomic(durable=True):
                return _erase(member.pk)
        except IntegrityError:  # the new referral code was taken meanwhile: draw another
            if attempt == _CODE_ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")


def _erase(member_id: int) -> Member:
    member = member_lock(member_id=member_id)
    if member.erased_at is not None:
        return member
    wallet = Wallet.objects.filter(member_id=member_id).only("principal").first()
    if wallet is not None and wallet.principal > 0:
        raise ValidationError(
            {
                "wallet": ValidationError(
                    _(
                        "The wallet still holds %(principal)s yuan the member paid in: refund it first "
                        "(a refund of their top-ups), then erase."
                    )
                    % {"principal": wallet.principal},
                    code="wallet_not_empty",
                )
            }
        )
    now = timezone.now()
    member.name = ""
    member.mobile = erased_mobile(member.pk)
    member.gender = Member.Gender.UNKNOWN
    member.birthday = None
    member.openid = None
    member.referral_code = new_referral_code()
    member.is_active = False
    member.erased_at = now
    member.save(
        update_fields=[
            "name",
            "mobile",
            "gender",
            "birthday",
            "openid",
            "referral_code",
            "is_active",
            "erased_at",
            "updated_at",
        ]
    )
    TopUpIntent.objects.filter(member_id=member.pk, status=TopUpIntent.Status.PENDING).update(
        status=TopUpIntent.Status.CLOSED, updated_at=now
    )
    LogEntry.objects.filter(content_type=ContentType.objects.get_for_model(Member), object_id=str(member.pk)).update(
        object_repr=str(member)[:200]
    )
    member_erased.publish(member_id=member.pk)
    return member
