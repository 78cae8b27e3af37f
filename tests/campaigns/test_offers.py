"""Segment offers: top-up offers by segment (seed 002) and referral rewards by the referrer's segment."""

import datetime as dt
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.test import TestCase
from django.utils import timezone

from campaigns.models import Campaign, CampaignBenefit, Coupon, OfferTopUp, ReferralRewardRule, TopUpOffer
from campaigns.playbook import playbook_install
from campaigns.services.campaigns import campaign_grant_to_member, campaign_launch
from campaigns.services.offers import offer_top_up, offers_for_member, referral_rewards_revoke
from members.models import LoyaltyProgram, PointsEntry, Referral, Wallet
from members.services.points import points_for_order
from members.services.referrals import referral_complete_for_order, referral_register
from tests.campaigns.conftest import run_in_threads
from tests.factories import MemberFactory, OrderFactory


@pytest.fixture
def seed_offers(default_scheme):
    """Seed 002's three top-up offers from the playbook, turned on."""
    playbook_install()
    TopUpOffer.objects.update(is_active=True)
    return {offer.code: offer for offer in TopUpOffer.objects.all()}


@pytest.fixture
def seed_referral_rules(default_scheme):
    """Seed 002's referral rules, turned on, rewarding by segment only (no program points)."""
    playbook_install()
    ReferralRewardRule.objects.update(is_active=True)
    program = LoyaltyProgram.current()
    program.referral_referrer_points = program.referral_referee_points = 0
    program.save()


def codes(offers) -> set[str]:
    return {offer.code for offer in offers}


# --- top-up offers ---------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_member_sees_only_the_offers_of_their_segment(seed_offers, place):
    # given
    newcomer, champion, sleeping, big_spender = (MemberFactory() for _ in range(4))
    place(newcomer, "promising")
    place(champion, "champions")
    place(sleeping, "lost")
    place(big_spender, "big_spenders")

    # when / then
    assert codes(offers_for_member(member=newcomer)) == {"new-member-200-20"}
    assert codes(offers_for_member(member=champion)) == {"champions-1000-150"}
    assert codes(offers_for_member(member=sleeping)) == {"sleeping-300-50"}
    assert codes(offers_for_member(member=big_spender)) == set()
    assert codes(offers_for_member(member=MemberFactory())) == set()  # never computed: no segment


@pytest.mark.django_db
def test_an_offer_for_everyone_in_its_window(seed_offers):
    member = MemberFactory()
    for_all = TopUpOffer.objects.create(name="All", code="all-100-5", min_amount="100", bonus_amount="5")
    TopUpOffer.objects.create(
        name="Over",
        code="over",
        min_amount="100",
        bonus_amount="5",
        valid_until=timezone.now() - dt.timedelta(days=1),
        valid_from=timezone.now() - dt.timedelta(days=9),
    )

    assert codes(offers_for_member(member=member)) == {for_all.code}


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("segment", "code", "paid", "bonus"),
    [
        ("no_purchase", "new-member-200-20", "200.00", "20.00"),
        ("champions", "champions-1000-150", "1000.00", "150.00"),
        ("lost", "sleeping-300-50", "300.00", "50.00"),
    ],
)
def test_the_top_up_offer_gives_the_bonus_of_the_members_segment(seed_offers, place, segment, code, paid, bonus):
    # given
    member = MemberFactory()
    place(member, segment)

    # when
    entry = offer_top_up(member=member, offer=seed_offers[code], amount_paid=paid, idempotency_key="pay-1")

    # then
    assert (entry.principal_delta, entry.bonus_delta) == (Decimal(paid), Decimal(bonus))
    assert entry.offer_code == code
    wallet = Wallet.objects.get(member=member)
    assert (wallet.principal, wallet.bonus) == (Decimal(paid), Decimal(bonus))


@pytest.mark.django_db
def test_champions_also_get_double_points_after_their_top_up(seed_offers, place):
    # given
    champion = MemberFactory()
    place(champion, "champions")
    before = OrderFactory(member=champion, amount=Decimal("100.00"), paid_at=timezone.now() - dt.timedelta(days=1))

    # when
    offer_top_up(member=champion, offer=seed_offers["champions-1000-150"], amount_paid="1000", idempotency_key="p")
    after = OrderFactory(member=champion, amount=Decimal("100.00"), paid_at=timezone.now() + dt.timedelta(hours=1))

    # then
    assert points_for_order(order=before) == 100
    assert points_for_order(order=after) == 200


@pytest.mark.django_db
def test_the_sleeping_offer_carries_its_product_restriction(seed_offers):
    offer = seed_offers["sleeping-300-50"]

    assert offer.product_tags == "唤醒商品"
    assert offer.restriction.tags == ("唤醒商品",)
    assert "wake-up products" in offer.restriction_note_en
    assert "唤醒商品" in offer.restriction_note


@pytest.mark.django_db
def test_top_up_refusals(seed_offers, place):
    # given
    sleeping = MemberFactory()
    place(sleeping, "lost")
    offer = seed_offers["sleeping-300-50"]

    # when / then: another segment's offer, too little, then used up
    with pytest.raises(ValidationError) as other_segment:
        offer_top_up(member=sleeping, offer=seed_offers["champions-1000-150"], amount_paid="1000", idempotency_key="a")
    with pytest.raises(ValidationError) as too_little:
        offer_top_up(member=sleeping, offer=offer, amount_paid="299.99", idempotency_key="b")
    first = offer_top_up(member=sleeping, offer=offer, amount_paid="300", idempotency_key="c")
    retried = offer_top_up(member=sleeping, offer=offer, amount_paid="300", idempotency_key="c")
    with pytest.raises(ValidationError) as used_up:
        offer_top_up(member=sleeping, offer=offer, amount_paid="300", idempotency_key="d")
    assert "offer" in other_segment.value.error_dict
    assert "amount_paid" in too_little.value.error_dict
    assert retried.pk == first.pk
    assert "offer" in used_up.value.error_dict
    assert Wallet.objects.get(member=sleeping).bonus == Decimal("50.00")
    assert codes(offers_for_member(member=sleeping)) == set()


@pytest.mark.django_db(transaction=True)
def test_the_per_member_limit_holds_under_concurrent_top_ups(default_scheme, seed_offers, place):
    member = MemberFactory()
    place(member, "promising")
    offer = seed_offers["new-member-200-20"]

    results = run_in_threads(
        4, lambda i: offer_top_up(member=member, offer=offer, amount_paid="200", idempotency_key=f"till-{i}")
    )

    assert sum(not isinstance(r, Exception) for r in results) == 1, results
    assert OfferTopUp.objects.filter(member=member).count() == 1
    assert Wallet.objects.get(member=member).bonus == Decimal("20.00")


@pytest.mark.django_db
def test_a_campaign_can_give_an_offer_to_members_outside_its_segments(seed_offers, segments, place):
    # given: a big spender (no offer of their own) is granted a campaign whose benefit is the champions' offer
    member = MemberFactory()
    place(member, "big_spenders")
    campaign = Campaign.objects.create(name="Try stored value", slug="try-stored-value")
    campaign.segments.set([segments["big_spenders"]])
    CampaignBenefit.objects.create(
        campaign=campaign, kind=CampaignBenefit.Kind.TOP_UP_OFFER, top_up_offer=seed_offers["champions-1000-150"]
    )
    campaign_launch(campaign=campaign)
    assert codes(offers_for_member(member=member)) == set()

    # when
    campaign_grant_to_member(campaign=campaign, member=member, cause="batch")

    # then
    assert codes(offers_for_member(member=member)) == {"champions-1000-150"}


# --- referral rewards ------------------------------------------------------------------------------------


def complete_referral(referrer):
    referee = MemberFactory(registered_at=timezone.now())
    referral_register(referee=referee, code=referrer.referral_code)
    order = OrderFactory(member=referee, amount=Decimal("88.00"))
    with TestCase.captureOnCommitCallbacks(execute=True):  # referral_completed → the rule's rewards
        referral_complete_for_order(order_id=order.pk)
    return referee


def coupon_values(member) -> list[str]:
    return sorted(
        f"{c.template.amount or 0:.0f}:{c.template.kind}"
        for c in Coupon.objects.filter(member=member).select_related("template")
    )


def referral_points(member) -> int:
    return sum(
        PointsEntry.objects.filter(member=member, kind=PointsEntry.Kind.REFERRAL_REWARD).values_list(
            "points", flat=True
        )
    )


@pytest.mark.django_db
def test_a_champion_referrer_gets_both_sides_50_yuan_coupons_and_1000_points(seed_referral_rules, place):
    referrer = MemberFactory()
    place(referrer, "champions")

    referee = complete_referral(referrer)

    assert coupon_values(referrer) == coupon_values(referee) == ["50:fixed_amount"]
    assert referral_points(referrer) == referral_points(referee) == 1000


@pytest.mark.django_db
def test_an_ordinary_referrer_gets_both_sides_20_yuan_coupons(seed_referral_rules, place):
    referrer = MemberFactory()
    place(referrer, "big_spenders")

    referee = complete_referral(referrer)

    assert coupon_values(referrer) == coupon_values(referee) == ["20:fixed_amount"]
    assert referral_points(referrer) == referral_points(referee) == 0


@pytest.mark.django_db
def test_a_sleeping_referrer_also_gets_an_activation_pack(seed_referral_rules, place):
    referrer = MemberFactory()
    place(referrer, "lost")

    referee = complete_referral(referrer)

    assert coupon_values(referrer) == ["0:gift_item", "20:fixed_amount"]
    assert coupon_values(referee) == ["20:fixed_amount"]


@pytest.mark.django_db
def test_a_rule_adds_to_the_programs_points(seed_referral_rules, place):
    LoyaltyProgram.objects.update(referral_referrer_points=200, referral_referee_points=100)
    referrer = MemberFactory()
    place(referrer, "champions")

    referee = complete_referral(referrer)

    assert (referral_points(referrer), referral_points(referee)) == (1200, 1100)
    assert "referrer" in Referral.objects.get(referee=referee).reward_note


@pytest.mark.django_db
def test_without_active_rules_the_programs_default_points_apply(default_scheme, place):
    playbook_install()  # rules installed, but inactive
    referrer = MemberFactory()
    place(referrer, "champions")

    referee = complete_referral(referrer)

    assert not Coupon.objects.exists()
    assert (referral_points(referrer), referral_points(referee)) == (200, 100)


@pytest.mark.django_db
def test_a_reversed_referral_can_take_its_unused_coupons_back(seed_referral_rules, place):
    from campaigns.services.coupons import coupon_redeem

    # given: a sleeping referrer's referral paid three coupons; the referee used theirs
    referrer = MemberFactory()
    place(referrer, "lost")
    referee = complete_referral(referrer)
    used = Coupon.objects.get(member=referee)
    coupon_redeem(member=referee, coupon=used, amount="60.00", idempotency_key="r")

    # when
    revoked = referral_rewards_revoke(referral_id=Referral.objects.get(referee=referee).pk)

    # then
    assert revoked == 2
    assert set(Coupon.objects.filter(member=referrer).values_list("status", flat=True)) == {"revoked"}
    assert Coupon.objects.get(pk=used.pk).status == "redeemed"


@pytest.mark.django_db
def test_a_full_refund_within_the_period_takes_back_the_referral_coupons_and_points(seed_referral_rules, place):
    from members.models import Order
    from members.services.orders import refund_record
    from members.services.referrals import referral_reverse_for_refund

    # given: a champion's referral paid both sides a 50-yuan coupon and 1000 points
    referrer = MemberFactory()
    place(referrer, "champions")
    referee = complete_referral(referrer)
    order = Order.objects.get(member=referee)
    # when: the qualifying order is refunded in full
    with TestCase.captureOnCommitCallbacks(execute=True):  # referral_reversed → the rule's rewards back
        refund = refund_record(external_id="R-REF", order=order, amount=order.amount).refund
    referral_reverse_for_refund(refund_id=refund.pk)  # a retry changes nothing
    referral_rewards_revoke(referral_id=Referral.objects.get(referee=referee).pk)  # nor does this one
    # then: the coupons are revoked and the points reversed
    assert Referral.objects.get(referee=referee).status == Referral.Status.REVERSED
    assert set(Coupon.objects.filter(member__in=[referrer, referee]).values_list("status", flat=True)) == {"revoked"}
    assert referral_points(referrer) == referral_points(referee) == 1000  # the grants stay in the ledger…
    assert referrer.points_account.balance == 0  # …and are reversed by reversal entries


@pytest.mark.django_db
def test_an_offer_top_up_retried_with_a_conflicting_body_never_pays_twice(seed_offers, place, django_user_model):
    from members.services.orders import IdempotencyConflict

    # given: staff topped a champion up through the offer
    champion = MemberFactory()
    place(champion, "champions")
    offer = seed_offers["champions-1000-150"]
    first = offer_top_up(member=champion, offer=offer, amount_paid="1000", idempotency_key="desk-1", reason="till 1")
    # …but the worker died between crediting the wallet and linking the entry to the offer's use
    OfferTopUp.objects.filter(idempotency_key="desk-1").update(wallet_entry=None)
    # when: the same key comes back with another reason (another clerk, another language)…
    with pytest.raises(IdempotencyConflict):
        offer_top_up(member=champion, offer=offer, amount_paid="1000", idempotency_key="desk-1", reason="till 2")
    # …and once more as first sent
    again = offer_top_up(member=champion, offer=offer, amount_paid="1000", idempotency_key="desk-1", reason="till 1")
    # then: one top-up, one use
    assert again.pk == first.pk
    assert OfferTopUp.objects.filter(member=champion).count() == 1
    wallet = Wallet.objects.get(member=champion)
    assert (wallet.principal, wallet.bonus) == (Decimal("1000.00"), Decimal("150.00"))
