"""Reads of the campaigns app (coupons, campaigns, grants): querysets with related rows fetched.

The effect reports (a campaign's uplift and ROI, segments between two runs) are reads too, in
``campaigns.selectors.effect``.
"""

from django.db.models import Q, QuerySet
from django.utils import timezone

from campaigns.models import Campaign, CampaignGrant, Coupon
from members.models import Member

__all__ = [
    "campaign_grants_for_member",
    "campaign_list",
    "coupon_list",
    "coupons_for_member",
]


def coupon_list() -> QuerySet[Coupon]:
    return Coupon.objects.select_related("template", "member", "campaign")


def coupons_for_member(*, member: Member, usable_only: bool = False) -> QuerySet[Coupon]:
    """The member's coupons, newest first; ``usable_only``: issued and valid now."""
    coupons = Coupon.objects.filter(member_id=member.pk).select_related("template").prefetch_related("template__stores")
    if usable_only:
        now = timezone.now()
        coupons = coupons.filter(status=Coupon.Status.ISSUED, valid_from__lte=now, valid_until__gt=now)
    return coupons


def campaign_list() -> QuerySet[Campaign]:
    return Campaign.objects.select_related("target_transition_to").prefetch_related("segments", "benefits")


def campaign_grants_for_member(*, member: Member) -> QuerySet[CampaignGrant]:
    return CampaignGrant.objects.filter(member_id=member.pk).select_related("campaign")


def running_campaigns() -> QuerySet[Campaign]:
    now = timezone.now()
    return Campaign.objects.filter(
        Q(status=Campaign.Status.RUNNING),
        Q(starts_at__isnull=True) | Q(starts_at__lte=now),
        Q(ends_at__isnull=True) | Q(ends_at__gt=now),
    )
