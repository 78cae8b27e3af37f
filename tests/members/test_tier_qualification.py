""" "Which tier does this member qualify for?" — one SQL statement (``_qualifying_sql``), asked for
one member by the order path (``_lock_and_qualify``, which also locks the member row) and for many
by the scheduled runs (``_qualifications_for``). Checked on random ladders and order histories
against the rules written out here, in plain Python, as the module docstring states them."""

import datetime as dt
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.db import transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from members.models import MemberRfmScore, Order, Tier, TierRule
from members.services import tiers
from tests.factories import MemberFactory, OrderFactory

pytestmark = pytest.mark.django_db

AS_OF = dt.datetime(2026, 6, 1, 12, 0, tzinfo=ZoneInfo("Asia/Shanghai"))

spend = st.sampled_from([Decimal("0.01"), Decimal("38.00"), Decimal("76.00"), Decimal("158.00")])
rules = st.lists(
    st.fixed_dictionaries(
        {
            "rank": st.integers(1, 3),
            "window_days": st.sampled_from([7, 30, 90, 365]),
            "min_spend": st.one_of(st.none(), spend),
            "min_orders": st.one_of(st.none(), st.integers(1, 3)),
            "min_rfm_score": st.one_of(st.none(), st.none(), st.integers(2, 6)),
        }
    ).filter(lambda rule: any(rule[name] is not None for name in ("min_spend", "min_orders", "min_rfm_score"))),
    min_size=1,
    max_size=4,
)
orders = st.lists(
    st.tuples(
        st.integers(0, 120),  # days before AS_OF (0 = the moment itself)
        st.sampled_from(["38.00", "38.00", "120.00", "9.90"]),
        st.sampled_from(["none", "none", "part", "all"]),
    ),
    max_size=6,
)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rules=rules, orders=orders, rfm_score=st.one_of(st.none(), st.integers(1, 7)))
def test_the_statement_gives_what_the_rules_say(rules, orders, rfm_score):
    # given a random ladder, a member with a random order history and maybe an RFM score
    Order.objects.all().delete()
    TierRule.objects.all().delete()
    Tier.objects.all().delete()
    Tier.objects.create(code="entry", name="entry", rank=0)
    by_rank = {}
    for rule in rules:
        tier = by_rank.get(rule["rank"]) or Tier.objects.create(
            code=f"t{rule['rank']}", name=f"tier {rule['rank']}", rank=rule["rank"]
        )
        by_rank[rule["rank"]] = tier
        TierRule.objects.create(
            tier=tier,
            window_days=rule["window_days"],
            min_spend=rule["min_spend"],
            min_orders=rule["min_orders"],
            min_rfm_score=rule["min_rfm_score"],
        )
    member = MemberFactory()
    for days_before, amount, refunded in orders:
        amount = Decimal(amount)
        refunded_amount = {"none": Decimal("0.00"), "part": amount / 2, "all": amount}[refunded].quantize(
            Decimal("0.01")
        )
        status = {"none": Order.Status.PAID, "part": Order.Status.PARTIALLY_REFUNDED, "all": Order.Status.REFUNDED}
        OrderFactory(
            member=member,
            amount=amount,
            refunded_amount=refunded_amount,
            status=status[refunded],
            paid_at=AS_OF - dt.timedelta(days=days_before),
        )

    if rfm_score is not None:
        MemberRfmScore.objects.create(member=member, score=rfm_score)
    ladder = tiers._load_ladder()
    # when the order path and the scheduled run ask
    with transaction.atomic():
        locked = tiers._lock_and_qualify(member_id=member.pk, as_of=AS_OF, ladder=ladder)
    many = tiers._qualifications_for(member_ids=[member.pk], as_of=AS_OF, ladder=ladder).get(member.pk)
    # then both name the tier and rule the rules give, for the same reason
    expected = expected_rule(rules=TierRule.objects.select_related("tier"), member=member, rfm_score=rfm_score)
    assert (locked.qualification.rule.pk if locked.qualification else None) == (expected.pk if expected else None)
    assert (many.rule.pk if many else None) == (expected.pk if expected else None)
    assert (locked.qualification.detail if locked.qualification else None) == (many.detail if many else None)
    assert locked.tier_id == member.tier_id


def expected_rule(*, rules, member, rfm_score):
    """The rules as the module docstring states them: net spend (amount - refunded) and orders
    that are not fully refunded, paid in (as_of - window, as_of]; every set condition must hold;
    the highest tier wins, then the rule with the lowest id."""
    holding = []
    for rule in rules:
        window = Order.objects.filter(
            member=member, paid_at__gt=AS_OF - dt.timedelta(days=rule.window_days), paid_at__lte=AS_OF
        ).exclude(status=Order.Status.REFUNDED)
        spend = sum((order.amount - order.refunded_amount for order in window), Decimal("0"))
        count = len(window)
        if (rule.min_spend is not None or rule.min_orders is not None) and count == 0:
            continue
        if rule.min_spend is not None and spend < rule.min_spend:
            continue
        if rule.min_orders is not None and count < rule.min_orders:
            continue
        if rule.min_rfm_score is not None and (rfm_score is None or rfm_score < rule.min_rfm_score):
            continue
        holding.append(rule)
    return min(holding, key=lambda rule: (-rule.tier.rank, rule.pk), default=None)
