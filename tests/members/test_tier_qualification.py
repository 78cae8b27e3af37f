"""The order path asks "which tier does this member qualify for?" with a one-member scan
(``_qualification_for``); the scheduled downgrade asks for many members with one statement
(``_qualifications_for``). Both must always agree — on random ladders and order histories."""

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
def test_one_member_scan_agrees_with_the_many_member_statement(rules, orders, rfm_score):
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
    # when both ask
    one = tiers._qualification_for(member_id=member.pk, as_of=AS_OF, ladder=ladder)
    many = tiers._qualifications_for(member_ids=[member.pk], as_of=AS_OF, ladder=ladder).get(member.pk)
    with transaction.atomic():  # the order path: the scan that also locks the member row
        lock_row, totals = tiers._scan(member_id=member.pk, as_of=AS_OF, windows=tiers._windows(ladder), lock=True)
        locked = tiers._qualification_for(
            member_id=member.pk, as_of=AS_OF, ladder=ladder, totals=totals, rfm_score=lock_row.rfm_score
        )
    # then they name the same tier, for the same reason
    assert (one.tier.pk if one else None) == (many.tier.pk if many else None)
    assert (one.detail if one else None) == (many.detail if many else None)
    assert (locked.detail if locked else None) == (one.detail if one else None)
    assert lock_row.tier_id == member.tier_id
