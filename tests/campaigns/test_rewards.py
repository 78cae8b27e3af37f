"""The points catalogue: segment and tier prices, exclusive rewards, stock and per-member limits,
idempotent redemptions, refusals that write nothing, collection, and the stock under concurrency."""

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connections, transaction
from django.db.models import Sum

from campaigns.models import Coupon, Reward, RewardPrice, RewardRedemption
from campaigns.services.coupons import coupon_redeem
from campaigns.services.rewards import (
    reward_redeem,
    reward_redemption_collect,
    reward_redemption_reverse,
    rewards_for_member,
)
from members.models import PointsAccount, PointsEntry, PointsLot
from members.services.errors import IdempotencyConflict
from members.services.points import points_grant
from tests.campaigns.conftest import run_in_threads
from tests.factories import (
    CouponTemplateFactory,
    MemberFactory,
    ProductFactory,
    RewardFactory,
    StoreFactory,
)

pytestmark = pytest.mark.django_db

MP = RewardRedemption.Channel.MINI_PROGRAM


def give(member, points: int, key: str = "") -> None:
    points_grant(
        member=member,
        points=points,
        kind="campaign_reward",
        reason="test",
        idempotency_key=key or f"g-{member.pk}-{points}",
    )


def balance(member) -> int:
    return PointsAccount.objects.filter(member=member).values_list("balance", flat=True).first() or 0


def ledger_consistent(member) -> bool:
    account = PointsAccount.objects.get(member=member)
    entries = PointsEntry.objects.filter(member=member).aggregate(total=Sum("points"))["total"] or 0
    lots = PointsLot.objects.filter(member=member).aggregate(total=Sum("remaining"))["total"] or 0
    return account.balance == entries == lots and account.balance >= 0


def refusal_code(exc: ValidationError, field: str = "reward") -> str:
    return exc.error_dict[field][0].code


@pytest.fixture
def coupon_reward(db):
    return RewardFactory(name="¥10 券", points_price=500, coupon_template=CouponTemplateFactory(amount="10.00"))


def test_a_member_of_the_segment_pays_the_segment_price_and_gets_the_coupon(place, coupon_reward, segments):
    # given: 400 points for champions, A a champion, B lost
    RewardPrice.objects.create(reward=coupon_reward, segment=segments["champions"], points_price=400)
    a, b = MemberFactory(), MemberFactory()
    place(a, "champions")
    place(b, "lost")
    give(a, 1000)
    give(b, 1000)
    # when
    for_a = reward_redeem(member=a, reward=coupon_reward, idempotency_key="k-a", channel=MP)
    for_b = reward_redeem(member=b, reward=coupon_reward, idempotency_key="k-b", channel=MP)
    # then
    assert (for_a.points, for_b.points) == (400, 500)
    assert (balance(a), balance(b)) == (600, 500)
    assert for_a.points_entry.points == -400 and for_a.points_entry.kind == PointsEntry.Kind.REDEEM
    assert for_a.coupon.member == a and for_a.coupon.template == coupon_reward.coupon_template
    assert for_a.status == RewardRedemption.Status.ISSUED
    assert ledger_consistent(a) and ledger_consistent(b)
    coupon_reward.refresh_from_db()
    assert coupon_reward.redeemed_count == 2


def test_the_lowest_of_base_segment_and_tier_prices_applies(place, coupon_reward, segments, ladder):
    # given: champions 450, gold 300; A a gold champion
    RewardPrice.objects.create(reward=coupon_reward, segment=segments["champions"], points_price=450)
    RewardPrice.objects.create(reward=coupon_reward, tier=ladder["gold"], points_price=300)
    a = MemberFactory(tier=ladder["gold"])
    place(a, "champions")
    silver = MemberFactory(tier=ladder["silver"])
    # when
    price_a = rewards_for_member(member=a).get(pk=coupon_reward.pk).member_price
    price_silver = rewards_for_member(member=silver).get(pk=coupon_reward.pk).member_price
    # then
    assert (price_a, price_silver) == (300, 500)


def test_a_reward_exclusive_to_a_segment_is_refused_to_others_and_hidden_from_them(place, segments):
    # given: a product exclusive to champions
    reward = RewardFactory(kind=Reward.Kind.PRODUCT, coupon_template=None, product=ProductFactory(), points_price=100)
    reward.exclusive_segments.set([segments["champions"]])
    champion, lost, nobody = MemberFactory(), MemberFactory(), MemberFactory()
    place(champion, "champions")
    place(lost, "lost")
    for member in (champion, lost, nobody):
        give(member, 1000)
    # when / then
    for member in (lost, nobody):
        assert not rewards_for_member(member=member).filter(pk=reward.pk).exists()
        with pytest.raises(ValidationError) as refused:
            reward_redeem(member=member, reward=reward, idempotency_key=f"x-{member.pk}", channel=MP)
        assert refusal_code(refused.value) == "not_eligible"
        assert balance(member) == 1000
    redemption = reward_redeem(member=champion, reward=reward, idempotency_key="c", channel=MP)
    assert redemption.status == RewardRedemption.Status.PENDING and redemption.coupon is None


def test_the_stock_runs_out(coupon_reward):
    # given: two left
    Reward.objects.filter(pk=coupon_reward.pk).update(stock=2)
    members = [MemberFactory() for _ in range(3)]
    for member in members:
        give(member, 1000)
    # when
    reward_redeem(member=members[0], reward=coupon_reward, idempotency_key="s0", channel=MP)
    reward_redeem(member=members[1], reward=coupon_reward, idempotency_key="s1", channel=MP)
    with pytest.raises(ValidationError) as refused:
        reward_redeem(member=members[2], reward=coupon_reward, idempotency_key="s2", channel=MP)
    # then
    assert refusal_code(refused.value) == "out_of_stock"
    assert balance(members[2]) == 1000
    coupon_reward.refresh_from_db()
    assert (coupon_reward.redeemed_count, coupon_reward.stock_left) == (2, 0)


def test_the_database_refuses_more_redeemed_than_the_stock(coupon_reward):
    Reward.objects.filter(pk=coupon_reward.pk).update(stock=1, redeemed_count=1)
    with pytest.raises(IntegrityError), transaction.atomic():
        Reward.objects.filter(pk=coupon_reward.pk).update(redeemed_count=2)


def test_the_limit_per_member(coupon_reward):
    # given: once per member
    Reward.objects.filter(pk=coupon_reward.pk).update(limit_per_member=1)
    member, other = MemberFactory(), MemberFactory()
    give(member, 2000)
    give(other, 2000)
    reward_redeem(member=member, reward=coupon_reward, idempotency_key="l1", channel=MP)
    # when
    with pytest.raises(ValidationError) as refused:
        reward_redeem(member=member, reward=coupon_reward, idempotency_key="l2", channel=MP)
    # then
    assert refusal_code(refused.value) == "limit_reached"
    assert balance(member) == 1500
    assert reward_redeem(member=other, reward=coupon_reward, idempotency_key="l3", channel=MP).points == 500
    listed = rewards_for_member(member=member).get(pk=coupon_reward.pk)
    assert listed.member_redeemed == 1


def test_the_same_key_replays_and_another_request_with_it_is_a_conflict(coupon_reward):
    # given
    member = MemberFactory()
    give(member, 2000)
    first = reward_redeem(member=member, reward=coupon_reward, idempotency_key="same", channel=MP)
    # when
    again = reward_redeem(member=member, reward=coupon_reward, idempotency_key="same", channel=MP)
    other_reward = RewardFactory(points_price=100)
    with pytest.raises(IdempotencyConflict):
        reward_redeem(member=member, reward=other_reward, idempotency_key="same", channel=MP)
    with pytest.raises(IdempotencyConflict):
        reward_redeem(member=member, reward=coupon_reward, idempotency_key="same", channel=RewardRedemption.Channel.POS)
    # then: one redemption, one debit, one coupon
    assert again.pk == first.pk and again.replayed and not first.replayed
    assert RewardRedemption.objects.count() == 1
    assert PointsEntry.objects.filter(member=member, kind=PointsEntry.Kind.REDEEM).count() == 1
    assert Coupon.objects.filter(member=member).count() == 1
    assert balance(member) == 1500


def test_insufficient_points_write_nothing(coupon_reward):
    # given
    member = MemberFactory()
    give(member, 499)
    # when
    with pytest.raises(ValidationError) as refused:
        reward_redeem(member=member, reward=coupon_reward, idempotency_key="poor", channel=MP)
    # then
    assert refusal_code(refused.value, "points") == "insufficient_points"
    assert balance(member) == 499
    assert not RewardRedemption.objects.exists() and not Coupon.objects.exists()
    coupon_reward.refresh_from_db()
    assert coupon_reward.redeemed_count == 0
    assert coupon_reward.coupon_template.issued_count == 0


@pytest.mark.parametrize(
    ("change", "code"),
    [({"is_active": False}, "inactive"), ({"starts_at": "2999-01-01T00:00:00Z"}, "not_started")],
)
def test_inactive_and_future_rewards_are_refused(coupon_reward, change, code):
    Reward.objects.filter(pk=coupon_reward.pk).update(**change)
    member = MemberFactory()
    give(member, 1000)
    with pytest.raises(ValidationError) as refused:
        reward_redeem(member=member, reward=coupon_reward, idempotency_key="w", channel=MP)
    assert refusal_code(refused.value) == code


def test_a_blocked_member_cannot_redeem(coupon_reward):
    member = MemberFactory()
    give(member, 1000)
    type(member).objects.filter(pk=member.pk).update(is_active=False)
    with pytest.raises(ValidationError) as refused:
        reward_redeem(member=member, reward=coupon_reward, idempotency_key="b", channel=MP)
    assert refusal_code(refused.value, "member") == "member_inactive"


def test_a_coupon_that_cannot_be_issued_refuses_the_redemption_and_takes_no_points(coupon_reward):
    coupon_reward.coupon_template.is_active = False
    coupon_reward.coupon_template.save(update_fields=["is_active"])
    member = MemberFactory()
    give(member, 1000)
    with pytest.raises(ValidationError) as refused:
        reward_redeem(member=member, reward=coupon_reward, idempotency_key="u", channel=MP)
    assert refusal_code(refused.value) == "unavailable"
    assert balance(member) == 1000 and not RewardRedemption.objects.exists()


def test_points_are_taken_from_the_lots_expiring_first(coupon_reward):
    # given: two lots (the first granted expires first: same life, earlier)
    member = MemberFactory()
    give(member, 300, "first")
    give(member, 300, "second")
    # when
    reward_redeem(member=member, reward=coupon_reward, idempotency_key="lots", channel=MP)
    # then
    assert list(PointsLot.objects.filter(member=member).order_by("id").values_list("remaining", flat=True)) == [0, 100]
    assert ledger_consistent(member)


def test_a_product_is_collected_once_at_a_store():
    # given
    reward = RewardFactory(kind=Reward.Kind.PRODUCT, coupon_template=None, product=ProductFactory(), points_price=100)
    member = MemberFactory()
    give(member, 100)
    store, other = StoreFactory(), StoreFactory()
    redemption = reward_redeem(member=member, reward=reward, idempotency_key="p", channel=MP)
    # when
    collected = reward_redemption_collect(redemption=redemption, store=store)
    again = reward_redemption_collect(redemption=redemption, store=store)
    # then
    assert collected.status == RewardRedemption.Status.COLLECTED and collected.collected_store == store
    assert again.collected_at == collected.collected_at
    with pytest.raises(ValidationError) as refused:
        reward_redemption_collect(redemption=redemption, store=other)
    assert refusal_code(refused.value, "redemption") == "already_collected"


# --- concurrency: real threads, real database -----------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_eight_members_racing_for_the_last_three_get_exactly_three():
    # given: 3 left, 8 members with enough points
    reward = RewardFactory(points_price=100, stock=3)
    members = [MemberFactory() for _ in range(8)]
    for member in members:
        give(member, 250)

    # when: all redeem at once
    def work(index: int):
        return reward_redeem(member=members[index], reward=reward, idempotency_key=f"race-{index}", channel=MP)

    results = run_in_threads(8, work)
    connections.close_all()
    # then: three redemptions, five refusals for the stock, and the ledgers add up
    won = [r for r in results if isinstance(r, RewardRedemption)]
    refused = [r for r in results if isinstance(r, ValidationError)]
    assert len(won) == 3, results
    assert len(refused) == 5 and all(refusal_code(r) == "out_of_stock" for r in refused), results
    reward.refresh_from_db()
    assert reward.redeemed_count == 3
    assert RewardRedemption.objects.filter(reward=reward).count() == 3
    assert Coupon.objects.count() == 3
    for member in members:
        assert ledger_consistent(member)
    assert sorted(balance(m) for m in members) == [150] * 3 + [250] * 5


@pytest.mark.django_db(transaction=True)
def test_one_member_racing_the_limit_and_the_same_key_redeems_once():
    # given: once per member; four requests with two keys, enough points for all
    reward = RewardFactory(points_price=100, limit_per_member=1)
    member = MemberFactory()
    give(member, 1000)

    def work(index: int):
        return reward_redeem(member=member, reward=reward, idempotency_key=f"k-{index % 2}", channel=MP)

    # when
    results = run_in_threads(4, work)
    connections.close_all()
    # then
    won = {r.pk for r in results if isinstance(r, RewardRedemption)}
    assert len(won) == 1, results
    assert all(isinstance(r, RewardRedemption) or refusal_code(r) == "limit_reached" for r in results), results
    assert balance(member) == 900 and ledger_consistent(member)


# --- reversing ---------------------------------------------------------------------------------------------


def test_a_coupon_redemption_is_reversed_while_the_coupon_is_unused(coupon_reward):
    # given: once per member, redeemed
    Reward.objects.filter(pk=coupon_reward.pk).update(limit_per_member=1, stock=1)
    member = MemberFactory()
    give(member, 600)
    redemption = reward_redeem(member=member, reward=coupon_reward, idempotency_key="rev", channel=MP)
    # when
    reversed_ = reward_redemption_reverse(redemption=redemption)
    again = reward_redemption_reverse(redemption=redemption)
    # then: coupon revoked, points back through the ledger, stock and limit free again
    assert (
        reversed_.status == RewardRedemption.Status.REVERSED and again.reversal_entry_id == reversed_.reversal_entry_id
    )
    assert reversed_.reversal_entry.points == 500 and reversed_.reversal_entry.reverses_id == redemption.points_entry_id
    assert Coupon.objects.get(pk=redemption.coupon_id).status == Coupon.Status.REVOKED
    assert balance(member) == 600 and ledger_consistent(member)
    coupon_reward.refresh_from_db()
    assert coupon_reward.redeemed_count == 0
    assert reward_redeem(member=member, reward=coupon_reward, idempotency_key="rev-2", channel=MP).points == 500


def test_a_used_coupon_or_a_product_cannot_be_reversed(coupon_reward):
    # given: a used coupon, and a product redemption
    member = MemberFactory()
    give(member, 1000)
    used = reward_redeem(member=member, reward=coupon_reward, idempotency_key="used", channel=MP)
    coupon_redeem(member=member, coupon=used.coupon, amount="50.00", idempotency_key="use-it")
    product = RewardFactory(kind=Reward.Kind.PRODUCT, coupon_template=None, product=ProductFactory(), points_price=100)
    pending = reward_redeem(member=member, reward=product, idempotency_key="prod", channel=MP)
    # when / then
    with pytest.raises(ValidationError):
        reward_redemption_reverse(redemption=used)
    with pytest.raises(ValidationError) as refused:
        reward_redemption_reverse(redemption=pending)
    assert refusal_code(refused.value, "redemption") == "not_reversible"
    assert balance(member) == 400 and ledger_consistent(member)
    assert not RewardRedemption.objects.filter(status=RewardRedemption.Status.REVERSED).exists()
