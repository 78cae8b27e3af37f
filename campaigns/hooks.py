"""Hooks campaigns plugs into lower apps (points multipliers, referral reward resolvers, tier RFM
scores). Connected in ``CampaignsConfig.ready()``.

- ``campaign_points_multiplier`` — ``members.services.points`` multiplier provider: the highest
  ``MemberPointsMultiplier`` active when the order was paid (granted by a campaign benefit or a
  top-up offer). Multipliers do not stack: double points twice is still double points.
- ``referral_reward_resolve`` — ``members.services.referrals`` resolver: rewards by the referrer's
  segment (``campaigns.services.offers``); ``referral_coupons_revoke`` takes the unused coupons
  back when a referral is reversed (``register_referral_reversal_hook``).
- ``top_up_offer_resolve`` / ``top_up_offer_credit`` — ``members.services.top_ups`` hooks: the offer
  a member asks for when starting a top-up, and crediting it (bonus, multiplier, use) at payment
  (``campaigns.services.offers``).
- ``on_segment_changed_grant_transition_campaigns`` — ``segmentation.events.segment_changed``
  subscriber: when the segment entered is watched by a running transition campaign, queue
  ``campaign_transition_task`` (which calls ``campaign_grants_for_transition``). Cheap: the set of
  watched segments is cached for ``WATCHED_TTL`` seconds, since a recompute publishes an event per
  changed member.
"""

from decimal import Decimal

from members.caching import ProcessCache

WATCHED_TTL = 30.0


def campaign_points_multiplier(*, member, order) -> Decimal | None:
    """The highest campaign multiplier the member holds at the order's time (``None``: none).
    Its ``sql`` says the same inside the statement that earns a new order's points."""
    from django.db import connection

    from members import rows

    found = rows.fetch_prepared(
        f"SELECT {_points_multiplier_sql()}",
        {"member": member.pk, "paid_at": connection.ops.adapt_datetimefield_value(order.paid_at)},
    )
    value = found[0][0]
    return None if value is None else Decimal(str(value))


def _points_multiplier_sql() -> str:
    from django.db import connection

    from campaigns.models import MemberPointsMultiplier

    table = connection.ops.quote_name(MemberPointsMultiplier._meta.db_table)
    return (
        f"(SELECT MAX(multiplier) FROM {table} WHERE member_id = %(member)s "  # noqa: S608
        "AND starts_at <= %(paid_at)s AND ends_at > %(paid_at)s)"
    )


def referral_reward_resolve(*, referral):
    from campaigns.services.offers import referral_reward_resolve as resolve

    return resolve(referral=referral)


def referral_coupons_revoke(*, referral) -> None:
    from campaigns.services.offers import referral_coupons_revoke as revoke

    revoke(referral=referral)


def top_up_offer_resolve(*, member, amount, offer_id):
    from campaigns.services.offers import top_up_offer_resolve as resolve

    return resolve(member=member, amount=amount, offer_id=offer_id)


def top_up_offer_credit(*, member, offer_code, bonus, amount_paid, idempotency_key, reason, reference):
    from campaigns.services.offers import top_up_offer_credit as credit

    return credit(
        member=member,
        offer_code=offer_code,
        bonus=bonus,
        amount_paid=amount_paid,
        idempotency_key=idempotency_key,
        reason=reason,
        reference=reference,
    )


def _load_watched_segment_ids() -> frozenset:
    from campaigns.services.campaigns import transition_campaign_segment_ids

    return frozenset(transition_campaign_segment_ids())


_watched = ProcessCache(_load_watched_segment_ids, ttl=WATCHED_TTL)


def forget_watched_segments() -> None:
    """Drop the cached set of watched segments (called when a campaign's status changes)."""
    _watched.clear()


def _watched_segment_ids() -> frozenset:
    return _watched.get()


def on_segment_changed_grant_transition_campaigns(*, member_id: int, to_segment_id, run_id=None, **_payload) -> None:
    if to_segment_id is None or to_segment_id not in _watched_segment_ids():
        return
    from campaigns.tasks import campaign_transition_task

    campaign_transition_task.delay(member_id=member_id, to_segment_id=to_segment_id, run_id=run_id)


def connect() -> None:
    from members.services import referrals
    from members.services.points import register_multiplier_provider
    from segmentation.events import segment_changed

    campaign_points_multiplier.sql = _points_multiplier_sql()
    register_multiplier_provider(campaign_points_multiplier)
    referrals.register_referral_reward_resolver(referral_reward_resolve)
    referrals.register_referral_reversal_hook(referral_coupons_revoke)
    segment_changed.subscribe(on_segment_changed_grant_transition_campaigns)

    # The offer a member picks when starting a top-up (``POST /api/v1/me/top-ups`` with ``offer``):
    # checked and turned into the intent's bonus, then credited through ``offer_top_up`` at payment.
    from members.services import top_ups

    top_ups.register_top_up_offer_resolver(top_up_offer_resolve)
    top_ups.register_top_up_offer_credit(top_up_offer_credit)
