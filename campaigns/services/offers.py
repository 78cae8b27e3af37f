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

Topping up with an offer from the mini-program goes through ``members.services.top_ups`` and two
hooks registered in ``campaigns.hooks``:

- ``top_up_offer_resolve`` — when the intent is created (``POST /me/top-ups`` with ``offer``):
  the offer the member asked for, if they qualify now (segment or campaign grant, active, in its
  window) and a use is left — counting the member's still payable top-up intents with the offer
  as uses, so one offer cannot be put on several intents — and the amount reaches its minimum.
- ``top_up_offer_credit`` — when WeChat Pay confirms the intent: ``offer_top_up`` with the
  payment's key, which checks eligibility again and gives the bonus, the multiplier and an
  ``OfferTopUp`` use. When the offer is no longer valid it answers None and ``top_up_intent_confirm``
  credits the principal only (the member paid: money is never refused).
"""

import datetime as dt
import logging
from decimal import Decimal

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
from members.models import Member, Referral, TopUpIntent, WalletEntry
from members.money import to_money
from members.services.orders import IdempotencyConflict
from members.services.referrals import RewardPlan
from members.services.top_ups import TopUpOffer as TopUpBonus
from members.services.wallet import wallet_top_up
from segmentation.models import MemberRfm

__all__ = [
    "REFERRAL_COUPON_SIDES",
    "member_top_up_offers",
    "offer_top_up",
    "offers_for_member",
    "referral_coupons_revoke",
    "referral_reward_resolve",
    "referral_rule_for_member",
    "top_up_offer_credit",
    "top_up_offer_resolve",
]

logger = logging.getLogger(__name__)

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


def _intent_uses(*, member_id: int, codes: list[str]) -> dict[str, int]:
    """Top-up intents of the member holding each offer that are not yet an ``OfferTopUp`` use:
    still payable ones, and paid ones whose bonus was credited without a use (before uses were
    recorded at payment). A paid intent credited through ``offer_top_up`` is counted by its use."""
    if not codes:
        return {}
    pending = Q(status=TopUpIntent.Status.PENDING, expires_at__gt=timezone.now())
    paid_without_use = Q(
        status=TopUpIntent.Status.PAID,
        wallet_entry__offer_code=F("offer_code"),
        wallet_entry__offer_use__isnull=True,
    )
    rows = (
        TopUpIntent.objects.filter(member_id=member_id, offer_code__in=codes)
        .filter(pending | paid_without_use)
        .order_by()
        .values("offer_code")
        .annotate(n=Count("pk"))
    )
    return {row["offer_code"]: row["n"] for row in rows}


def member_top_up_offers(*, member_id: int) -> list[TopUpOffer]:
    """The top-up offers the member can use now, each with ``uses_left`` (None: no limit). Three queries."""
    offers = offers_for_member(member=Member(pk=member_id))  # reads only the primary key
    reserved = _intent_uses(member_id=member_id, codes=[offer.code for offer in offers])
    usable = []
    for offer in offers:
        if offer.per_member_limit is None:
            offer.uses_left = None
        else:
            offer.uses_left = offer.per_member_limit - offer.used - reserved.get(offer.code, 0)
            if offer.uses_left <= 0:
                continue
        usable.append(offer)
    return usable


# --- topping up from the mini-program (hooks of members.services.top_ups) ----------------------------


def top_up_offer_resolve(*, member: Member, amount: Decimal, offer_id: int | None) -> TopUpBonus | None:
    """The bonus of offer ``offer_id`` for a new top-up intent, checked now; None when the member
    asked for no offer or cannot use this one (``top_up_intent_create`` then refuses the offer)."""
    if offer_id is None:
        return None
    offer = next((offer for offer in member_top_up_offers(member_id=member.pk) if offer.pk == offer_id), None)
    if offer is None:
        return None
    if amount < offer.min_amount:
        raise _invalid(
            "amount",
            _("This offer needs a top-up of at least ¥%(min)s.") % {"min": offer.min_amount},
            "below_minimum",
        )
    return TopUpBonus(bonus=offer.bonus_amount, offer_code=offer.code)


def top_up_offer_credit(
    *,
    member: Member,
    offer_code: str,
    amount_paid,
    idempotency_key: str,
    bonus=None,
    reason: str = "",
    reference: str = "",
) -> WalletEntry | None:
    """Credit a paid top-up intent carrying ``offer_code`` through ``offer_top_up`` (the ``bonus``
    promised on the intent, multiplier, use), eligibility checked again; None when the offer is gone
    or no longer valid."""
    earlier = OfferTopUp.objects.select_related("offer").filter(idempotency_key=idempotency_key).first()
    if earlier is not None:
        # A retried callback whose first attempt used the offer: finish or replay that use, and let
        # any error through — falling back to a plain top-up could credit the principal twice.
        return offer_top_up(
            member=member,
            offer=earlier.offer,
            amount_paid=amount_paid,
            idempotency_key=idempotency_key,
            reason=reason,
            reference=reference,
        )
    offer = TopUpOffer.objects.filter(code=offer_code).first()
    if offer is None:
        logger.info("top-up %s: offer %s no longer exists", reference, offer_code)
        return None
    try:
        return offer_top_up(
            member=member,
            offer=offer,
            amount_paid=amount_paid,
            bonus=bonus,
            idempotency_key=idempotency_key,
            reason=reason,
            reference=reference,
        )
    except ValidationError as error:
        logger.info("top-up %s: offer %s not applied: %s", reference, offer_code, error.messages)
        return None


# --- topping up -------------------------------------------------------------------------------------------


def offer_top_up(
    *,
    member: Member,
    offer: TopUpOffer,
    amount_paid,
    idempotency_key: str,
    bonus=None,
    actor=None,
    reason: str = "",
    reference: str = "",
) -> WalletEntry:
    """Top the member's wallet up with ``amount_paid`` plus the offer's bonus (and multiplier).

    ``bonus`` is one promised earlier (on a top-up intent, when the member chose the offer); by
    default the offer's bonus now. Refused when the member does not qualify, the amount is below
    the offer's minimum, or the member has used it up. The same key returns the first top-up's
    entry. ``reason`` and ``reference`` default to the offer's name and ``offer:<code>``.
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
        bonus = offer.bonus_amount if bonus is None else to_money(bonus, field="bonus", allow_zero=True)
        use = _claim_use(key, offer=offer, member=member, amount=amount, bonus=bonus)
    return _complete_use(use, actor=actor, reason=reason, reference=reference)


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


def _claim_use(key: str, *, offer: TopUpOffer, member: Member, amount, bonus) -> OfferTopUp:
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
                    bonus=bonus,
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


def _complete_use(use: OfferTopUp, *, actor, reason: str = "", reference: str = "") -> WalletEntry:
    offer = use.offer
    try:
        entry = wallet_top_up(
            member=use.member,
            amount_paid=use.amount_paid,
            bonus=use.bonus,
            offer_code=offer.code,
            idempotency_key=f"offer-top-up:{use.pk}",
            actor=actor,
            reason=reason or _g("Top-up offer %(name)s") % {"name": offer.name},
            reference=(reference or f"offer:{offer.code}")[:100],
        )
    except IdempotencyConflict:
        # The top-up of this use may already be in the wallet: keep the use, never pay it twice.
        raise
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
        # Template rows are locked in id order, as in campaign grants, so two grants never deadlock.
        grants = sorted(grants, key=lambda grant: grant[2].pk if grant[2] else 0)
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
