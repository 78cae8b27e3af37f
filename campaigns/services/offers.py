"""Segment offers: which top-up offers a member qualifies for, topping up with one, and referral
rewards by the referrer's segment (seed 002).

A member qualifies for an active offer in its window when the offer names no segment, names the
member's current segment (``MemberRfm``), or was given to them by a campaign grant (benefit
"stored-value offer") — and they have uses left (``per_member_limit``).

``offer_top_up`` claims a use first (an ``OfferTopUp`` row whose ``(offer, member, sequence)`` is
unique and ``sequence ≤ per_member_limit``: the limit holds under concurrency), then tops the wallet
up through ``members.services.wallet.wallet_top_up`` (its own durable transaction; key
``offer-top-up:<use id>``) with the offer's bonus and code, then links the entry and gives the
offer's points multiplier. Every step is idempotent, so a retry with the same key after a crash
between them finishes the job and never pays twice.
"""

import datetime as dt

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Count, Exists, F, OuterRef, Q, Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.translation import gettext as _g
from django.utils.translation import gettext_lazy as _

from campaigns.models import (
    CampaignBenefit,
    Coupon,
    MemberPointsMultiplier,
    OfferTopUp,
    ReferralRewardRule,
    TopUpOffer,
)
from campaigns.services.coupons import CouponUnavailable, coupon_grant
from members.models import Member, Referral, WalletEntry
from members.money import to_money
from members.services.orders import IdempotencyConflict
from members.services.referrals import RewardPlan
from members.services.wallet import wallet_top_up
from segmentation.models import MemberRfm

__all__ = [
    "REFERRAL_COUPON_SIDES",
    "offer_top_up",
    "offers_for_member",
    "referral_coupons_revoke",
    "referral_reward_resolve",
    "referral_rule_for_member",
]

MAX_KEY_LENGTH = 100
CLAIM_ATTEMPTS = 5
REFERRAL_COUPON_SIDES = ("referrer", "referee", "referrer-extra")


def _invalid(field: str, message, code: str) -> ValidationError:
    return ValidationError({field: ValidationError(message, code=code)})


def _member_segment_id(member_id: int) -> int | None:
    return MemberRfm.objects.filter(member_id=member_id).values_list("segment_id", flat=True).first()


# --- which offers ---------------------------------------------------------------------------------------


def _qualifying_offers(*, member: Member, now: dt.datetime):
    segment_id = _member_segment_id(member.pk)
    through = TopUpOffer.segments.through
    for_everyone = ~Exists(through.objects.filter(topupoffer_id=OuterRef("pk")))
    for_segment = Exists(through.objects.filter(topupoffer_id=OuterRef("pk"), segment_id=segment_id))
    given = Exists(
        CampaignBenefit.objects.filter(
            kind=CampaignBenefit.Kind.TOP_UP_OFFER,
            top_up_offer_id=OuterRef("pk"),
            campaign__grants__member_id=member.pk,
            campaign__grants__is_control=False,
        )
    )
    uses = (
        OfferTopUp.objects.filter(offer_id=OuterRef("pk"), member_id=member.pk)
        .order_by()
        .values("offer_id")
        .annotate(n=Count("pk"))
        .values("n")
    )
    return (
        TopUpOffer.objects.filter(is_active=True)
        .filter(Q(valid_from__isnull=True) | Q(valid_from__lte=now))
        .filter(Q(valid_until__isnull=True) | Q(valid_until__gt=now))
        .filter(for_everyone | (for_segment if segment_id is not None else Q(pk__in=[])) | given)
        .annotate(used=Coalesce(Subquery(uses), 0))
        .filter(Q(per_member_limit__isnull=True) | Q(used__lt=F("per_member_limit")))
    )


def offers_for_member(*, member: Member) -> list[TopUpOffer]:
    """The top-up offers ``member`` can use now: by segment, given by a campaign, with uses left."""
    return list(_qualifying_offers(member=member, now=timezone.now()).order_by("min_amount", "pk"))


# --- topping up -------------------------------------------------------------------------------------------


def offer_top_up(*, member: Member, offer: TopUpOffer, amount_paid, idempotency_key: str, actor=None) -> WalletEntry:
    """Top the member's wallet up with ``amount_paid`` plus the offer's bonus (and multiplier).

    Refused when the member does not qualify, the amount is below the offer's minimum, or the
    member has used it up. The same key returns the first top-up's entry.
    """
    key = (idempotency_key or "").strip()
    if not key:
        raise _invalid("idempotency_key", _("An idempotency key is required."), "required")
    if len(key) > MAX_KEY_LENGTH:
        raise _invalid("idempotency_key", _("An idempotency key has at most 100 characters."), "max_length")
    amount = to_money(amount_paid, field="amount_paid")
    use = _existing_use(key, offer=offer, member=member, amount=amount)
    if use is None:
        offer = TopUpOffer.objects.get(pk=offer.pk)
        if not any(candidate.pk == offer.pk for candidate in offers_for_member(member=member)):
            raise _invalid("offer", _("This offer is not available to this member."), "not_eligible")
        if amount < offer.min_amount:
            raise _invalid(
                "amount_paid",
                _("This offer needs a top-up of at least ¥%(min)s.") % {"min": offer.min_amount},
                "below_minimum",
            )
        use = _claim_use(key, offer=offer, member=member, amount=amount)
    return _complete_use(use, actor=actor)


def _existing_use(key: str, *, offer: TopUpOffer, member: Member, amount) -> OfferTopUp | None:
    use = OfferTopUp.objects.select_related("offer").filter(idempotency_key=key).first()
    if use is None:
        return None
    if use.offer_id != offer.pk or use.member_id != member.pk or use.amount_paid != amount:
        raise IdempotencyConflict(
            {
                "idempotency_key": ValidationError(
                    _("The idempotency key %(key)s was already used for a different top-up.") % {"key": key},
                    code="conflict",
                )
            }
        )
    return use


def _claim_use(key: str, *, offer: TopUpOffer, member: Member, amount) -> OfferTopUp:
    for _attempt in range(CLAIM_ATTEMPTS):
        try:
            with transaction.atomic():
                used = OfferTopUp.objects.filter(offer_id=offer.pk, member_id=member.pk).count()
                if offer.per_member_limit is not None and used >= offer.per_member_limit:
                    raise _invalid("offer", _("You have already used this offer."), "limit_reached")
                use = OfferTopUp.objects.create(
                    offer=offer,
                    member=member,
                    sequence=used + 1,
                    amount_paid=amount,
                    bonus=offer.bonus_amount,
                    idempotency_key=key,
                )
                use.offer = offer
                return use
        except IntegrityError:
            existing = _existing_use(key, offer=offer, member=member, amount=amount)
            if existing is not None:
                return existing
            # A concurrent use took this sequence number: count again.
    raise _invalid("offer", _("You have already used this offer."), "limit_reached")


def _complete_use(use: OfferTopUp, *, actor) -> WalletEntry:
    offer = use.offer
    try:
        entry = wallet_top_up(
            member=use.member,
            amount_paid=use.amount_paid,
            bonus=use.bonus,
            offer_code=offer.code,
            idempotency_key=f"offer-top-up:{use.pk}",
            actor=actor,
            reason=_g("Top-up offer %(name)s") % {"name": offer.name},
            reference=f"offer:{offer.code}"[:100],
        )
    except ValidationError:
        # Nothing was paid in: give the use back, so the member can try again.
        OfferTopUp.objects.filter(pk=use.pk, wallet_entry__isnull=True).delete()
        raise
    with transaction.atomic():
        OfferTopUp.objects.filter(pk=use.pk, wallet_entry__isnull=True).update(
            wallet_entry=entry, updated_at=timezone.now()
        )
        if offer.points_multiplier and offer.multiplier_days:
            MemberPointsMultiplier.objects.bulk_create(
                [
                    MemberPointsMultiplier(
                        member_id=use.member_id,
                        multiplier=offer.points_multiplier,
                        starts_at=entry.created_at,
                        ends_at=entry.created_at + dt.timedelta(days=offer.multiplier_days),
                        source=f"offer:{offer.code}"[:100],
                        idempotency_key=f"offer-top-up:{use.pk}:multiplier",
                    )
                ],
                ignore_conflicts=True,
            )
    return entry


# --- referral rewards -----------------------------------------------------------------------------------


def referral_rule_for_member(*, member_id: int) -> ReferralRewardRule | None:
    """The active rule for a referrer: the one for their current segment, else the active default."""
    segment_id = _member_segment_id(member_id)
    rules = ReferralRewardRule.objects.filter(is_active=True).select_related(
        "referrer_coupon_template", "referee_coupon_template", "referrer_extra_template"
    )
    if segment_id is not None:
        rule = rules.filter(referrer_segment_id=segment_id).first()
        if rule is not None:
            return rule
    return rules.filter(referrer_segment__isnull=True).first()


def referral_reward_resolve(*, referral: Referral) -> RewardPlan | None:
    """The referral reward resolver (registered in ``campaigns.hooks``): the plan by the referrer's
    segment, or ``None`` (the program's default points) when no active rule applies.

    ``RewardPlan`` carries points only, so the rule's coupons are granted here, inside the
    referral's completing transaction (``referral_complete_for_order`` calls resolvers under its
    locks, once per referral): keys ``referral:<id>:<side>:coupon`` make them idempotent, and they
    commit or roll back with the referral. Outside a transaction (a preview) nothing is granted.
    """
    rule = referral_rule_for_member(member_id=referral.referrer_id)
    if rule is None:
        return None
    notes = [rule.name]
    if transaction.get_connection().in_atomic_block:
        grants = (  # the sides are REFERRAL_COUPON_SIDES
            ("referrer", referral.referrer_id, rule.referrer_coupon_template),
            ("referee", referral.referee_id, rule.referee_coupon_template),
            ("referrer-extra", referral.referrer_id, rule.referrer_extra_template),
        )
        members = Member.objects.in_bulk([referral.referrer_id, referral.referee_id])
        for side, member_id, template in grants:
            if template is None:
                continue
            try:
                coupon_grant(
                    template=template,
                    member=members[member_id],
                    source=f"referral:{referral.pk}",
                    idempotency_key=f"referral:{referral.pk}:{side}:coupon",
                )
                notes.append(f"{side}: {template.name}")
            except CouponUnavailable:
                notes.append(_g("%(side)s: %(coupon)s unavailable") % {"side": side, "coupon": template.name})
    return RewardPlan(referrer_points=rule.referrer_points, referee_points=rule.referee_points, note="; ".join(notes))


def referral_coupons_revoke(*, referral: Referral) -> int:
    """Revoke the still unused coupons a referral granted (its qualifying order was refunded in
    full). For a referral reversal hook in ``members.services.referrals``; runs in the caller's
    transaction. Returns how many were revoked; used coupons are kept."""
    keys = [f"referral:{referral.pk}:{side}:coupon" for side in REFERRAL_COUPON_SIDES]
    now = timezone.now()
    return Coupon.objects.filter(idempotency_key__in=keys, status=Coupon.Status.ISSUED).update(
        status=Coupon.Status.REVOKED,
        revoked_at=now,
        revoke_reason=_g("The referral was reversed."),
        updated_at=now,
    )
