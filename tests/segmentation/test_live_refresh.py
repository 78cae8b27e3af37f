"""Fresh between runs: an order or refund updates that member at once, with the last run's scoring."""

import datetime as dt
from decimal import Decimal

import pytest
from django.utils import timezone

from members.services.orders import order_record, refund_record
from segmentation.models import MemberRfm, SegmentTransition
from segmentation.services import member_rfm_refresh, segment_recompute

from .builders import ago, member, order

pytestmark = pytest.mark.django_db


def row(who) -> MemberRfm:
    return MemberRfm.objects.select_related("segment").get(member=who)


def test_a_lapsed_member_who_buys_today_leaves_lost_at_once(
    default_scheme, published, django_capture_on_commit_callbacks
):
    # given: last night's run put the member in lost
    who = member()
    order(who, paid_at=ago(400), amount="80.00")
    run = segment_recompute()
    assert row(who).segment.slug == "lost"
    # when: the POS records an order today
    with django_capture_on_commit_callbacks(execute=True):
        order_record(external_id="POS-1", member=who, store=who.home_store, paid_at=ago(0), amount="38.00")
    # then
    fresh = row(who)
    assert (fresh.recency_days, fresh.frequency, fresh.monetary, fresh.segment.slug) == (
        0,
        1,
        Decimal("38.00"),
        "promising",
    )
    assert fresh.run_id == run.pk
    transition = SegmentTransition.objects.get(source=SegmentTransition.Source.LIVE)
    assert (transition.member_id, transition.from_segment.slug, transition.to_segment.slug) == (
        who.pk,
        "lost",
        "promising",
    )
    assert [(e["from_slug"], e["to_slug"], e["source"]) for e in published] == [("lost", "promising", "live")]


def test_a_refund_updates_m_at_once(default_scheme, django_capture_on_commit_callbacks):
    # given: a champion by 500.00 exactly
    who = member()
    orders = [order(who, paid_at=ago(days), amount=amount) for days, amount in ((1, "200.00"), (3, "150.00"))]
    order(who, paid_at=ago(5), amount="150.00")
    segment_recompute()
    assert row(who).segment.slug == "champions"
    # when
    with django_capture_on_commit_callbacks(execute=True):
        refund_record(external_id="RF-1", order=orders[0], amount="0.01")
    # then
    assert (row(who).monetary, row(who).segment.slug) == (Decimal("499.99"), "loyal_low_spend")


def test_the_refresh_scores_with_the_last_runs_cut_points(quintile_scheme):
    # given: a quintile run over ten buyers spending 100..1000
    buyers = []
    for index in range(10):
        who = member()
        order(who, paid_at=ago(index * 10), amount=f"{(index + 1) * 100}.00")
        buyers.append(who)
    segment_recompute()
    scored = {who.pk: (row(who).r_score, row(who).m_score) for who in buyers}
    newcomer = member()
    order(newcomer, paid_at=ago(35), amount="550.00")
    # when: every member is refreshed one by one
    for who in [*buyers, newcomer]:
        assert member_rfm_refresh(member_id=who.pk)
    # then: members keep exactly the run's scores; the newcomer scores like the run's neighbours
    assert {who.pk: (row(who).r_score, row(who).m_score) for who in buyers} == scored
    assert (row(newcomer).r_score, row(newcomer).m_score) == scored[buyers[4].pk] == (3, 3)


def test_the_refresh_keeps_working_after_a_run_replaced_the_table(default_scheme):
    # given: a refresh (its statement is now prepared on this connection), then a new run
    who = member()
    order(who, paid_at=ago(400))
    segment_recompute()
    assert member_rfm_refresh(member_id=who.pk)
    segment_recompute()
    order(who, paid_at=ago(0))
    # when
    refreshed = member_rfm_refresh(member_id=who.pk)
    # then
    assert refreshed
    assert row(who).segment.slug == "promising"


def test_nothing_happens_before_the_first_run(default_scheme):
    # given
    who = member()
    order(who, paid_at=ago(1))
    # when
    refreshed = member_rfm_refresh(member_id=who.pk)
    # then
    assert refreshed is False
    assert not MemberRfm.objects.exists()


def test_a_run_keeps_rows_an_order_refreshed_after_it_started(default_scheme):
    # given: a run, then a member refreshed "after the next run started" (a concurrent order)
    who, other = member(), member()
    order(who, paid_at=ago(400))
    order(other, paid_at=ago(400))
    segment_recompute()
    later = timezone.now() + dt.timedelta(hours=1)
    MemberRfm.objects.filter(member=who).update(updated_at=later, recency_days=0, segment_id=None)
    # when
    run = segment_recompute()
    # then: the fresher row wins, and the run records no transition for it
    assert (row(who).recency_days, row(who).segment_id) == (0, None)
    assert row(other).segment.slug == "lost"
    assert not SegmentTransition.objects.filter(run=run, member=who).exists()


def test_a_refresh_that_saw_older_orders_never_overwrites_a_fresher_one(default_scheme):
    # given: a row written by a refresh that saw an order change later than any this member has
    who = member()
    order(who, paid_at=ago(400))
    segment_recompute()
    future = timezone.now() + dt.timedelta(minutes=5)
    MemberRfm.objects.filter(member=who).update(source_version=future, recency_days=7)
    order(who, paid_at=ago(1))
    # when
    written = member_rfm_refresh(member_id=who.pk)
    # then
    assert written is False
    assert row(who).recency_days == 7
