"""Reads of the staff workspace: a member's 360 in a fixed number of queries, and the follow-up
tasks a user works on.

``member_360`` gathers what the member page shows, in the order a clerk needs it — who the member
is, what they hold, their segment and its history, what they can use now, what they bought (and
which product categories they favour), whom
they brought, what we sent them and what staff must do — each list cut to its latest rows, so the
page costs the same number of queries for a member of one order as for one of a thousand. It reads
through the selectors of the apps below (``members``, ``segmentation``, ``campaigns``); what a user
may see of it (masked mobiles, names) is decided by the admin with ``members.selectors``.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import F, Q, QuerySet
from django.utils import timezone

from campaigns.models import Coupon, FollowUpTask, OutboxMessage, TopUpOffer
from campaigns.selectors.stamps import StampProgress, member_stamp_cards
from campaigns.services.offers import member_top_up_offers
from members.apis.selectors import MemberProfile, member_profile, related_or_none
from members.models import Member, MemberTag, Order, Referral, RestrictedBonus, Wallet
from members.selectors import (
    CategoryShare,
    OrderSummary,
    member_order_summary,
    member_recent_orders,
    member_top_categories,
    staff_store_ids,
    wallet_restricted_bonuses,
)
from segmentation.clv_selectors import member_clv
from segmentation.models import MemberCategory, SegmentTransition
from segmentation.product_selectors import Recommendation, member_favourite_categories, member_recommended_products
from segmentation.selectors import segment_explain

PERSONAL_DATA_PERMISSION = "members.view_personal_data"  # names and birthdays (analysts have not)
RECENT_ORDERS = 20
SEGMENT_HISTORY = 12
USABLE_COUPONS = 20
REFERRALS = 20
MESSAGES = 10
OPEN_TASKS = 20


@dataclass(frozen=True)
class Member360:
    member: Member  # with home store, tier, wallet and the referral that brought them
    profile: MemberProfile  # tier, next tier with progress, points (expiring soon), wallet
    order_summary: OrderSummary
    recent_orders: list[Order]
    top_categories: list[CategoryShare]  # by net spend on order lines over the last 365 days, top 3
    favourite_categories: list[MemberCategory]  # the same, as of the nightly run (what campaigns target)
    recommended_products: list[Recommendation]  # related to recent purchases, not bought yet
    segment: dict  # segmentation.selectors.segment_explain
    segment_history: list[SegmentTransition]  # newest first
    clv: dict | None  # segmentation.clv_selectors.member_clv: P(alive), expected value, explanation
    coupons: list[Coupon]  # issued and valid now, the soonest to expire first
    offers: list[TopUpOffer]  # each with ``uses_left``
    stamp_cards: list[StampProgress]  # active cards they collect on: stamps k/N, when the oldest expires
    restricted_bonuses: list[RestrictedBonus]  # bonus in the wallet limited to some products, with some left
    tags: list[MemberTag]  # staff's tags by name, with who added them; then the rules' tags
    referrals_made: list[Referral]
    messages: list[OutboxMessage]  # newest first
    open_tasks: list[FollowUpTask]  # due first

    @property
    def wallet(self) -> Wallet | None:
        return related_or_none(self.member, "wallet")

    @property
    def referred_by(self) -> Referral | None:
        return related_or_none(self.member, "referral")


def member_360(*, member_id: int) -> Member360:
    """Everything the member page shows, in about fifteen queries whatever the member's history."""
    now = timezone.now()
    member = Member.objects.select_related("home_store", "tier", "wallet", "referral__referrer").get(pk=member_id)
    summary = member_order_summary(member_id=member_id)
    return Member360(
        member=member,
        profile=member_profile(member_id=member_id, now=now),
        order_summary=summary,
        recent_orders=list(member_recent_orders(member_id=member_id, limit=RECENT_ORDERS)) if summary.count else [],
        top_categories=member_top_categories(member_id=member_id, now=now) if summary.count else [],
        favourite_categories=member_favourite_categories(member_id=member_id) if summary.count else [],
        recommended_products=member_recommended_products(member_id=member_id, now=now) if summary.count else [],
        segment=segment_explain(member=member),
        segment_history=list(
            SegmentTransition.objects.filter(member_id=member_id)
            .select_related("from_segment", "to_segment")
            .order_by("-created_at", "-id")[:SEGMENT_HISTORY]
        ),
        clv=member_clv(member_id=member_id),
        coupons=list(
            Coupon.objects.filter(
                member_id=member_id, status=Coupon.Status.ISSUED, valid_from__lte=now, valid_until__gt=now
            )
            .select_related("template")
            .order_by("valid_until", "id")[:USABLE_COUPONS]
        ),
        offers=member_top_up_offers(member_id=member_id),
        stamp_cards=member_stamp_cards(member_id=member_id, now=now),
        tags=list(
            MemberTag.objects.filter(member_id=member_id)
            .select_related("added_by", "rule")
            .order_by(F("rule_id").asc(nulls_first=True), "name")
        ),
        restricted_bonuses=(
            wallet_restricted_bonuses(wallet_id=member.wallet.pk)
            if related_or_none(member, "wallet") and member.wallet.bonus
            else []
        ),
        referrals_made=list(
            Referral.objects.filter(referrer_id=member_id)
            .select_related("referee")
            .order_by("-created_at", "-id")[:REFERRALS]
        ),
        messages=list(OutboxMessage.objects.filter(member_id=member_id).order_by("-created_at", "-id")[:MESSAGES]),
        open_tasks=list(
            FollowUpTask.objects.filter(member_id=member_id, status=FollowUpTask.Status.OPEN)
            .select_related("store", "assignee", "campaign")
            .order_by("due_date", "id")[:OPEN_TASKS]
        ),
    )


def followups_in_scope(*, user, queryset: QuerySet[FollowUpTask] | None = None) -> QuerySet[FollowUpTask]:
    """The follow-up tasks ``user`` works on: for store staff and managers, those of their stores
    and those assigned to them; every task for roles that see every store."""
    queryset = FollowUpTask.objects.all() if queryset is None else queryset
    store_ids = staff_store_ids(user=user)
    if store_ids is None:
        return queryset
    return queryset.filter(Q(store_id__in=store_ids) | Q(assignee_id=user.pk))
