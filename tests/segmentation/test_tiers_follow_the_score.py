"""Issue #18, point 1 (seed 002: 根据RFM分值自动调整会员等级): a tier whose rule reads the RFM score
moves up as soon as the score does — on the order's live refresh and on a recompute, where a score
can rise without an order of the member's own — not one order late."""

from decimal import Decimal

import pytest
from django.db.models import F

from members.models import MemberRfmScore, Order, Tier, TierChange, TierRule
from members.services.orders import order_record
from members.services.tiers import tiers_upgrade_on_score
from segmentation.services import segment_recompute

from .builders import ago, member

pytestmark = pytest.mark.django_db


@pytest.fixture
def ladder(db):
    """普通 (entry), 银卡 (¥100 in 365 days), 金卡 (RFM score ≥ 3)."""
    entry = Tier.objects.create(code="normal", name="普通", rank=0)
    silver = Tier.objects.create(code="silver", name="银卡", rank=1)
    TierRule.objects.create(tier=silver, window_days=365, min_spend=Decimal("100.00"))
    gold = Tier.objects.create(code="gold", name="金卡", rank=2)
    gold_rule = TierRule.objects.create(tier=gold, window_days=365, min_rfm_score=3)
    return {"entry": entry, "silver": silver, "gold": gold, "gold_rule": gold_rule}


def score(who) -> int | None:
    return MemberRfmScore.objects.filter(member=who).values_list("score", flat=True).first()


def record(who, external_id: str, *, days_ago: int = 0, amount: str = "300.00"):
    return order_record(external_id=external_id, member=who, store=who.home_store, paid_at=ago(days_ago), amount=amount)


def test_the_third_order_in_30_days_lifts_the_tier_with_the_score_at_once(
    default_scheme, ladder, django_capture_on_commit_callbacks
):
    # given a member with two recent orders: score 2 (R and M high, F not yet), 银卡
    who = member()
    with django_capture_on_commit_callbacks(execute=True):
        record(who, "POS-1", days_ago=10)
        record(who, "POS-2", days_ago=5)
    segment_recompute()
    who.refresh_from_db()
    assert (score(who), who.tier) == (2, ladder["silver"])
    # when the third order comes in and its live refresh makes them 重要价值用户 (score 3)
    with django_capture_on_commit_callbacks(execute=True):
        record(who, "POS-3")
    # then the tier followed the score, without waiting for another order
    who.refresh_from_db()
    assert score(who) == 3
    assert who.tier == ladder["gold"]
    change = TierChange.objects.filter(member=who).latest("id")
    assert (change.reason, change.from_tier, change.order_id) == ("upgrade_on_score", ladder["silver"], None)
    assert "RFM" in change.detail


def test_a_recompute_lifts_the_tier_of_a_member_whose_refresh_was_lost(default_scheme, ladder):
    # given three recent orders written without their live refresh (a lost batch), after a run
    who = member()
    segment_recompute()
    for days in (9, 6, 3):
        Order.objects.create(
            external_id=f"LOST-{days}", member=who, store=who.home_store, paid_at=ago(days), amount=Decimal("200.00")
        )
    # when the nightly recompute runs
    segment_recompute()
    # then the new score moved the tier at once
    who.refresh_from_db()
    assert score(who) == 3 and who.tier == ladder["gold"]


def test_in_quintile_mode_a_score_risen_with_others_ranks_lifts_the_tier(quintile_scheme, ladder):
    # given ten buyers alike but for their spend, scored by quintiles, and 金卡 out of reach for now
    TierRule.objects.filter(pk=ladder["gold_rule"].pk).update(min_rfm_score=99)
    ladder["gold"].save()  # the ladder is cached per process: saving a tier clears it
    buyers = [member() for _ in range(10)]
    for index, who in enumerate(buyers):
        Order.objects.create(
            external_id=f"Q-{index}",
            member=who,
            store=who.home_store,
            paid_at=ago(7),
            amount=Decimal(f"{(index + 1) * 100}.00"),
        )
    segment_recompute()
    middle = buyers[4]
    before = score(middle)
    TierRule.objects.filter(pk=ladder["gold_rule"].pk).update(min_rfm_score=before + 1)
    ladder["gold"].save()
    middle.refresh_from_db()
    assert middle.tier != ladder["gold"]
    # when the five bigger spenders' orders are refunded in full, and the next run ranks again
    Order.objects.filter(member__in=buyers[5:]).update(status=Order.Status.REFUNDED, refunded_amount=F("amount"))
    segment_recompute()
    # then the member who did nothing has a higher score, and the tier that goes with it
    middle.refresh_from_db()
    assert score(middle) > before
    assert middle.tier == ladder["gold"]
    assert TierChange.objects.filter(member=middle, reason="upgrade_on_score").count() == 1


def test_the_upgrade_on_score_never_moves_anyone_down_and_runs_twice_harmlessly(default_scheme, ladder):
    # given a member given 金卡 by staff although their score is 0
    who = member()
    Order.objects.create(external_id="OLD", member=who, store=who.home_store, paid_at=ago(400), amount=Decimal("80"))
    segment_recompute()
    who.tier = ladder["gold"]
    who.save(update_fields=["tier"])
    # when
    moved = tiers_upgrade_on_score(), tiers_upgrade_on_score(member_ids=[who.pk])
    # then
    who.refresh_from_db()
    assert moved == (0, 0) and who.tier == ladder["gold"]
