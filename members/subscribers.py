"""Everything ``members`` does when its own domain events fire — listed in one place.

Connected in ``MembersConfig.ready()``. Handlers run after the publishing transaction commits, in
the order they are subscribed here; each runs in its own transaction and is idempotent, and a
failing one is logged without stopping the next (``members.events.DomainEvent``).

An order's tier and points are the exception: they are written *in the order's transaction*
(in-transaction handlers), so an order is never recorded without them and a POS gets its answer
after one commit. Order matters: the tier is evaluated first, so the qualifying order earns points
at the new tier's multiplier; a referral completes after commit, once the order's points are in
(scheduled by an in-transaction handler, and only for a referred member).
"""

from django.db import transaction

from members.events import member_registered, order_recorded, refund_recorded
from members.services.points import points_clawback_for_refund, points_earn_for_new_order
from members.services.referrals import referral_complete_for_order, referral_pending_for, referral_reverse_for_refund
from members.services.tiers import tier_assign_initial, tier_evaluate_for_new_order


def on_member_registered_assign_tier(*, member_id: int, **_payload) -> None:
    tier_assign_initial(member_id=member_id)


def on_order_recorded_evaluate_tier(*, instance, **_payload) -> None:
    tier_evaluate_for_new_order(order=instance)


def on_order_recorded_earn_points(*, instance, **_payload) -> None:
    points_earn_for_new_order(order=instance)


def on_order_recorded_complete_referral(*, instance, order_id: int, member_id: int, **_payload) -> None:
    """Only a referred member can have a pending referral (``Member.referrer``, as the tier's lock
    just read it): for every other order this costs nothing. The referral completes after commit,
    once the order's points are in; a failure there is logged and leaves the order standing."""
    if instance.member.referrer_id is None:
        return
    transaction.on_commit(lambda: _complete_referral(order_id=order_id, member_id=member_id), robust=True)


def _complete_referral(*, order_id: int, member_id: int) -> None:
    if referral_pending_for(member_id=member_id):
        referral_complete_for_order(order_id=order_id)


def on_refund_recorded_claw_back_points(*, refund_id: int, **_payload) -> None:
    points_clawback_for_refund(refund_id=refund_id)


def on_refund_recorded_reverse_referral(*, refund_id: int, **_payload) -> None:
    referral_reverse_for_refund(refund_id=refund_id)


def connect() -> None:
    member_registered.subscribe(on_member_registered_assign_tier)
    order_recorded.subscribe(on_order_recorded_evaluate_tier, in_transaction=True)
    order_recorded.subscribe(on_order_recorded_earn_points, in_transaction=True)
    order_recorded.subscribe(on_order_recorded_complete_referral, in_transaction=True)
    refund_recorded.subscribe(on_refund_recorded_claw_back_points)
    refund_recorded.subscribe(on_refund_recorded_reverse_referral)
