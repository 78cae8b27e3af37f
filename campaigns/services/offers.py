"""Segment offers: which top-up offers a member qualifies for, topping up with one, and referral
rewards by the referrer's segment (seed 002).

Referral rules add to what ``members`` gives every completed referral (the program's points): when
``referral_completed`` is published, ``referral_rewards_grant`` gives the rule of the referrer's
segment — coupons and extra points; ``referral_reversed`` makes ``referral_rewards_revoke`` take
them back. (To reward by segment only, set the program's referral points to 0.)

A member qualifies for an active offer in its window when the offer names no segment, names the
member's current segment (``MemberRfm``), or was given to them by a campaign grant (benefit
"stored-value offer") — and they have uses left (``per_member_limit``).

``offer_top_up`` — at the till (``POST /pos/wallet/top-up`` with ``offer``), in the admin's top-up
form, and in the demo — applies the mini-program's rules: the member qualifies now and has a use
left, counting the mini-program's intents that hold the offer (``member_top_up_offers``; refused on
``offer`` with ``not_eligible`` or, once used up, ``limit_reached``), and the amount reaches the
minimum (``below_minimum`` on ``amount_paid``). It claims a use first (an ``OfferTopUp`` row whose
``(offer, member, sequence)`` is unique and ``sequence ≤ per_member_limit``: the limit holds under
concurrency), then tops the wallet up through ``members.services.wallet.wallet_top_up`` (its own
durable transaction; key ``offer-top-up:<use id>``; the ceilings of the ``store`` it is made at)
with the offer's bonus and code, then links the entry and gives the offer's points multiplier.
Every step is idempotent, so a retry with the same key after a crash between them finishes the job
and never pays twice; a top-up the wallet refuses (a ceiling, a blocked member) gives the use back.
The use keeps the bonus and the product restriction of the offer as they were when it was claimed,
and the top-up grants those: a retry after an operator edited the offer's restriction replays the
first answer (or finishes the interrupted top-up) with the restriction first promised.

Topping up with an offer from the mini-program (``POST /me/top-ups`` with ``offer``) is
``offer_top_up_intent_create``: the offer the member asked for is checked now — they qualify
(segment or campaign grant, active, in its window), a use is left (the member's still payable and
paid intents with the offer count as uses, so one offer cannot be put on several intents) and the
amount reaches its minimum — and its bonus, code and multiplier are written on the intent through
``members.services.top_ups.top_up_intent_create``. WeChat Pay's confirmation credits what the
intent says (``members``), with no call back into this app: the member gets what they were shown.
"""

import datetime as dt
import logging

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
    OfferTopUp,
    ReferralRewardRule,
    TopUpOffer,
)
from campaigns.services.coupons import CouponUnavailable, coupon_grant
from members.lock_objects import points_accounts_lock, referral_lock
from members.models import Member, MemberPointsMultiplier, PointsEntry, Referral, Store, TopUpIntent, WalletEntry
from members.money import to_money
from members.services.orders import IdempotencyConflict
from members.services.points import points_grant_locked, points_reverse_locked
from members.services.top_ups import top_up_intent_create
from members.services.wallet import wallet_top_up
from segmentation.models import MemberRfm

__all__ = [
    "REFERRAL_COUPON_SIDES",
    "member_top_up_offers",
    "offer_top_up",
    "offer_top_up_intent_create",
    "offers_for_member",
    "referral_rewards_grant",
    "referral_rewards_revoke",
    "referral_rule_for_member",
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


def _qualifying_offers(*, member: Member, now: dt.datetime, with_uses_left: bool = True):
    """The offers ``member`` qualifies for at ``now``; only those with uses left unless ``with_uses_left`` is off."""
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
    qualifying = (
        TopUpOffer.objects.filter(is_active=True)
        .filter(Q(valid_from__isnull=True) | Q(valid_from__lte=now))
        .filter(Q(valid_until__isnull=True) | Q(valid_until__gt=now))
        .filter(for_everyone | (for_segment if segment_id is not None else Q(pk__in=[])) | given)
    )
    if not with_uses_left:
        return qualifying
    return qualifying.annotate(used=Coalesce(Subquery(uses), 0)).filter(
        Q(per_member_limit__isnull=True) | Q(used__lt=F("per_member_limit"))
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


# --- topping up from the mini-program -------------------------------------------------------------------


def offer_top_up_intent_create(*, member: Member, amount, offer_id: int | None = None) -> TopUpIntent:
    """Start a mini-program top-up of ``amount``, with offer ``offer_id`` when given: refused (field
    ``offer``, ``not_eligible``) when the member cannot use it now, (field ``amount``,
    ``below_minimum``) below its minimum. The offer's bonus, code and multiplier go on the intent."""
    amount = to_money(amount)
    if offer_id is None:
        return top_up_intent_create(member=member, amount=amount)
    offer = next((offer for offer in member_top_up_offers(member_id=member.pk) if offer.pk == offer_id), None)
    if offer is None:
        raise _invalid("offer", _("This offer is not available to you."), "not_eligible")
    if amount < offer.min_amount:
        raise _invalid(
            "amount",
            _("This offer needs a top-up of at least ¥%(min)s.") % {"min": offer.min_amount},
            "below_minimum",
        )
    multiplier = offer.points_multiplier if offer.points_multiplier and offer.multiplier_days else None
    return top_up_intent_create(
        member=member,
        amount=amount,
        bonus=offer.bonus_amount,
        offer_code=offer.code,
        points_multiplier=multiplier,
        multiplier_days=offer.multiplier_days if multiplier else 0,
        restriction=offer.restriction,
    )


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
    store: Store | None = None,
) -> WalletEntry:
    """Top the member's wallet up with ``amount_paid`` plus the offer's bonus (and multiplier).

    ``bonus`` is one promised earlier (on a top-up intent, when the member chose the offer); by
    default the offer's bonus now. Refused when the member does not qualify (``not_eligible``), has
    used it up (``limit_reached``: the mini-program's intents holding it count) or the amount is below
    the offer's minimum; and by the wallet over the ceilings of ``store`` (where the top-up is made;
    the brand's when ``None``). The same key returns the first top-up's entry. ``reason`` and
    ``reference`` default to the offer's name and ``offer:<code>``.
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
        _usable_check(member=member, offer=offer)
        if amount < offer.min_amount:
            raise _invalid(
                "amount_paid",
                _("This offer needs a top-up of at least ¥%(min)s.") % {"min": offer.min_amount},
                "below_minimum",
            )
        bonus = offer.bonus_amount if bonus is None else to_money(bonus, field="bonus", allow_zero=True)
        use = _claim_use(key, offer=offer, member=member, amount=amount, bonus=bonus)
    return _complete_use(use, actor=actor, reason=reason, reference=reference, store=store)


def _usable_check(*, member: Member, offer: TopUpOffer) -> None:
    """Refuse an offer the member cannot use now, by the rules of the mini-program's list
    (``member_top_up_offers``): ``not_eligible`` when they do not qualify, ``limit_reached`` when
    they qualify but have no use left."""
    if any(candidate.pk == offer.pk for candidate in member_top_up_offers(member_id=member.pk)):
        return
    if _qualifying_offers(member=member, now=timezone.now(), with_uses_left=False).filter(pk=offer.pk).exists():
        raise _invalid("offer", _("This member has used up this offer."), "limit_reached")
    raise _invalid("offer", _("This offer is not available to this member."), "not_eligible")


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
                if offer.per_member_limit is not None:
                    held = _intent_uses(member_id=member.pk, codes=[offer.code]).get(offer.code, 0)
                    if used + held >= offer.per_member_limit:
                        raise _invalid("offer", _("This member has used up this offer."), "limit_reached")
                use = OfferTopUp.objects.create(
                    offer=offer,
                    member=member,
                    sequence=used + 1,
                    amount_paid=amount,
                    bonus=bonus,
                    product_tags=offer.product_tags,
                    product_categories=offer.product_categories,
                    idempotency_key=key,
                )
                use.offer = offer
                return use
        except IntegrityError:
            existing = _existing_use(key, offer=offer, member=member, amount=amount)
            if existing is not None:
                return existing
            # A concurrent use took this sequence number: count again.
    raise _invalid("offer", _("This member has used up this offer."), "limit_reached")


def _complete_use(
    use: OfferTopUp, *, actor, reason: str = "", reference: str = "", store: Store | None = None
) -> WalletEntry:
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
            store=store,
            restriction=use.restriction,  # as claimed: a retry grants what the first attempt did
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


def referral_rewards_grant(*, referral_id: int) -> list[str]:
    """Give a completed referral the rule of the referrer's segment (or the active default rule):
    its coupons and its points, on top of the program's referral points ``members`` gave. Runs after
    the referral completed (``referral_completed``, through ``referral_rewards_task``); idempotent
    (keys ``referral:<id>:<side>:coupon`` and ``referral:<id>:<side>:rule``), and nothing once the
    referral was reversed. Returns what was given, as notes (also kept on the referral)."""
    referral = Referral.objects.filter(pk=referral_id, status=Referral.Status.COMPLETED).first()
    rule = referral and referral_rule_for_member(member_id=referral.referrer_id)
    if rule is None:
        return []
    notes = [rule.name]
    with transaction.atomic(durable=True):
        accounts = points_accounts_lock(member_ids=[referral.referrer_id, referral.referee_id])
        referral = referral_lock(referral_id=referral.pk)
        if referral.status != Referral.Status.COMPLETED:
            return []
        grants = (  # the sides are REFERRAL_COUPON_SIDES
            ("referrer", referral.referrer_id, rule.referrer_coupon_template),
            ("referee", referral.referee_id, rule.referee_coupon_template),
            ("referrer-extra", referral.referrer_id, rule.referrer_extra_template),
        )
        members = Member.objects.in_bulk([referral.referrer_id, referral.referee_id])
        # Template rows are locked in id order, as in campaign grants, so two grants never deadlock.
        for side, member_id, template in sorted(grants, key=lambda grant: grant[2].pk if grant[2] else 0):
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
        for side, member_id, points in (
            ("referrer", referral.referrer_id, rule.referrer_points),
            ("referee", referral.referee_id, rule.referee_points),
        ):
            if points > 0:
                points_grant_locked(
                    account=accounts[member_id],
                    points=points,
                    kind=PointsEntry.Kind.REFERRAL_REWARD,
                    reason=_g("Referral reward %(rule)s") % {"rule": rule.name},
                    idempotency_key=f"referral:{referral.pk}:{side}:rule",
                    reference=f"referral:{referral.pk}",
                )
        note = "; ".join(notes)[:200]
        Referral.objects.filter(pk=referral.pk).update(reward_note=note, updated_at=timezone.now())
    return notes


def referral_rewards_revoke(*, referral_id: int) -> int:
    """Take back what ``referral_rewards_grant`` gave a referral that was reversed (its qualifying
    order was refunded in full): the still unused coupons are revoked (used ones are kept) and the
    rule's points reversed (the spent part becomes debt, as ``members`` does with its own).
    Idempotent. Returns how many coupons were revoked."""
    keys = [f"referral:{referral_id}:{side}:coupon" for side in REFERRAL_COUPON_SIDES]
    now = timezone.now()
    rule_entries = list(
        PointsEntry.objects.filter(
            idempotency_key__in=[f"referral:{referral_id}:{side}:rule" for side in ("referrer", "referee")]
        )
    )
    with transaction.atomic(durable=True):
        accounts = points_accounts_lock(member_ids=[entry.member_id for entry in rule_entries])
        reason = _g("Referral %(id)s was reversed") % {"id": referral_id}
        for entry in rule_entries:
            points_reverse_locked(
                account=accounts[entry.member_id],
                entry=entry,
                idempotency_key=f"{entry.idempotency_key}:reversal",
                reason=reason,
            )
        return Coupon.objects.filter(idempotency_key__in=keys, status=Coupon.Status.ISSUED).update(
            status=Coupon.Status.REVOKED,
            revoked_at=now,
            revoke_reason=_g("The referral was reversed."),
            updated_at=now,
        )
