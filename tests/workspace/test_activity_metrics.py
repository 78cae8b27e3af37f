"""Activity metrics (issue #19): daily and weekly active members (an order or any interaction),
the next-day / 7-day / 30-day retention of new members, per current segment and over time."""

import datetime as dt
from decimal import Decimal

import pytest
from django.utils import timezone

from tests.factories import InteractionFactory, MemberFactory, MemberRfmFactory, OrderFactory, RfmRunFactory
from workspace.activity import activity_report, daily_active, live_activity_report, retention, weekly_active
from workspace.activity_rollup import activity_rollup
from workspace.models import ActivityRollup, RetentionRollup

pytestmark = pytest.mark.django_db

TODAY = dt.date(2026, 11, 18)  # a Wednesday


def at(day: dt.date, hour: int = 12) -> dt.datetime:
    return timezone.make_aware(dt.datetime.combine(day, dt.time(hour)), timezone.get_default_timezone())


def day(n: int) -> dt.date:
    """``n`` days before TODAY."""
    return TODAY - dt.timedelta(days=n)


def by_start(buckets) -> dict:
    return {bucket.start: bucket for bucket in buckets}


def test_dau_counts_a_member_with_only_a_check_in():
    # given: one member checked in yesterday (no order), another paid an order yesterday and
    # checked in too; a third paid an order that was refunded in full
    checked_in, buyer, refunded = (MemberFactory() for _ in range(3))
    InteractionFactory(member=checked_in, occurred_at=at(day(1), 9))
    OrderFactory(member=buyer, paid_at=at(day(1), 10))
    InteractionFactory(member=buyer, occurred_at=at(day(1), 11))
    OrderFactory(
        member=refunded,
        paid_at=at(day(1)),
        amount=Decimal("30.00"),
        refunded_amount=Decimal("30.00"),
        status="refunded",
    )
    # when
    series = by_start(daily_active(days=7, today=TODAY))
    # then: the check-in counts; the buyer counts once; the refunded order does not count
    assert series[day(1)].active == 2
    assert series[day(2)].active == 0
    assert len(series) == 7 and min(series) == day(6) and max(series) == TODAY


def test_days_are_local_calendar_days():
    # given: an order at 23:30 and a check-in at 00:30 the next day, local time (Asia/Shanghai)
    member = MemberFactory()
    OrderFactory(member=member, paid_at=at(day(2), 23).replace(minute=30))
    InteractionFactory(member=member, occurred_at=at(day(1), 0).replace(minute=30))
    series = by_start(daily_active(days=7, today=TODAY))
    assert (series[day(2)].active, series[day(1)].active) == (1, 1)


def test_wau_counts_a_member_once_per_week_and_per_segment():
    # given: a member of segment S active on Monday, Tuesday and Wednesday of this week; another
    # without a current segment active last Friday
    run = RfmRunFactory()
    loyal = MemberRfmFactory(run=run).member
    segment_id = loyal.rfm.segment_id
    monday = TODAY - dt.timedelta(days=TODAY.weekday())
    for n in range(3):
        InteractionFactory(member=loyal, occurred_at=at(monday + dt.timedelta(days=n)))
    other = MemberFactory()
    OrderFactory(member=other, paid_at=at(monday - dt.timedelta(days=3)))
    # when
    weeks = by_start(weekly_active(weeks=4, today=TODAY))
    # then
    assert weeks[monday].active == 1
    assert weeks[monday].by_segment == {segment_id: 1}
    assert weeks[monday - dt.timedelta(days=7)].by_segment == {None: 1}
    assert len(weeks) == 4


def test_a_new_member_who_comes_back_the_next_day_is_retained_next_day():
    # given: registered and ordered the day before yesterday, back (ordered) yesterday
    back = MemberFactory(registered_at=at(day(2), 10))
    OrderFactory(member=back, paid_at=at(day(2), 10))
    OrderFactory(member=back, paid_at=at(day(1), 15))
    # and: registered the same day, ordered that day only
    gone = MemberFactory(registered_at=at(day(2), 11))
    OrderFactory(member=gone, paid_at=at(day(2), 11))
    # and: registered the same day, came back only three days later (7-day, not next-day)
    late = MemberFactory(registered_at=at(day(5), 9))
    InteractionFactory(member=late, occurred_at=at(day(2), 9))
    # when
    report = retention(days=10, today=TODAY)
    cohorts = {cohort.key: cohort for cohort in report["days"]}
    # then
    assert cohorts[day(2)].new == 2
    assert cohorts[day(2)].retained[1] == 1
    assert cohorts[day(2)].rate(1) == Decimal("0.5000")
    assert cohorts[day(5)].retained[1] == 0
    assert cohorts[day(5)].retained.get(7) is None  # day(5) + 7 has not begun: not shown yet
    assert cohorts[day(5)].rate(7) is None


def test_ordered_yesterday_and_back_today_counts_as_next_day_retained():
    member = MemberFactory(registered_at=at(day(1), 9))
    OrderFactory(member=member, paid_at=at(day(1), 9))
    InteractionFactory(member=member, occurred_at=at(TODAY, 9))
    report = retention(days=3, today=TODAY)
    cohort = next(cohort for cohort in report["days"] if cohort.key == day(1))
    assert (cohort.new, cohort.retained[1]) == (1, 1)
    assert report["total"].rate(1) == Decimal("1.0000")


def test_retention_windows_and_segments_over_the_period():
    # given: three members registered 40 days ago in two segments
    run = RfmRunFactory()
    a = MemberRfmFactory(run=run, member=MemberFactory(registered_at=at(day(40)))).member
    segment = a.rfm.segment
    b = MemberRfmFactory(run=run, member=MemberFactory(registered_at=at(day(40))), segment=segment).member
    c = MemberFactory(registered_at=at(day(40)))  # no current segment
    InteractionFactory(member=a, occurred_at=at(day(39)))  # next day: 1, 7, 30
    OrderFactory(member=b, paid_at=at(day(34)))  # day 6: 7 and 30
    OrderFactory(member=c, paid_at=at(day(15)))  # day 25: 30 only
    OrderFactory(member=c, paid_at=at(day(40)))  # the registration day itself does not count
    # when
    report = retention(days=45, today=TODAY)
    # then
    total = report["total"]
    assert total.new == 3
    assert (total.retained[1], total.retained[7], total.retained[30]) == (1, 2, 3)
    assert report["segments"][segment.pk].rate(7) == Decimal("1.0000")
    assert report["segments"][None].rate(7) == Decimal("0.0000")
    assert report["segments"][None].rate(30) == Decimal("1.0000")


def test_the_live_report_reads_in_three_statements(django_assert_max_num_queries):
    member = MemberFactory(registered_at=at(day(3)))
    InteractionFactory(member=member, occurred_at=at(day(2)))
    with django_assert_max_num_queries(3):
        report = live_activity_report(days=30, weeks=12, today=TODAY)
    assert len(report["daily"]) == 30 and len(report["weekly"]) == 12


def figures(report) -> tuple:
    kept = report["retention"]
    return (
        [(b.start, b.active, b.by_segment) for b in report["daily"][:-1]],  # the days that ended
        [(c.key, c.new, c.retained) for c in kept["days"]],
        {key: (c.new, c.retained) for key, c in kept["segments"].items()},
    )


def test_the_rollup_gives_the_live_figures_of_the_days_that_ended_and_twice_the_same_rows(
    django_assert_max_num_queries,
):
    # given: activity over the last 40 days, in a segment and without one
    run = RfmRunFactory()
    members = [MemberRfmFactory(run=run, member=MemberFactory(registered_at=at(day(35 - n)))).member for n in range(3)]
    members += [MemberFactory(registered_at=at(day(n))) for n in (2, 9, 20)]
    for n, member in enumerate(members):
        OrderFactory(member=member, paid_at=at(day(34 - 5 * n)))
        InteractionFactory(member=member, occurred_at=at(day(30 - 5 * n)))
        InteractionFactory(member=member, occurred_at=at(day(1)))
    InteractionFactory(member=members[0], occurred_at=at(TODAY, 8))  # today: read live
    # when: the rollup of the last 40 days, run twice
    activity_rollup(days=40, today=TODAY)
    rows = list(
        ActivityRollup.objects.order_by("period", "start", "segment_id").values_list(
            "period", "start", "segment_id", "active"
        )
    )
    cohorts = list(
        RetentionRollup.objects.order_by("day", "segment_id").values_list(
            "day", "segment_id", "new_members", "retained_1", "retained_7", "retained_30"
        )
    )
    activity_rollup(days=40, today=TODAY)
    # then: the same rows, and the report from them matches the live figures of the ended days
    assert (
        list(
            ActivityRollup.objects.order_by("period", "start", "segment_id").values_list(
                "period", "start", "segment_id", "active"
            )
        )
        == rows
    )
    assert (
        list(
            RetentionRollup.objects.order_by("day", "segment_id").values_list(
                "day", "segment_id", "new_members", "retained_1", "retained_7", "retained_30"
            )
        )
        == cohorts
    )
    with django_assert_max_num_queries(4):
        report = activity_report(days=30, weeks=4, today=TODAY)
    live = live_activity_report(days=30, weeks=4, today=day(1))  # as of the rollup: activity until yesterday
    assert [(b.start, b.active) for b in report["daily"][:-1]] == [(b.start, b.active) for b in live["daily"][1:]]
    assert report["daily"][-1].active == 1  # today, live
    assert report["daily"][-2].active == 6  # yesterday: all six checked in
    ended_weeks = [(b.start, b.active, b.by_segment) for b in report["weekly"]]
    assert ended_weeks == [(b.start, b.active, b.by_segment) for b in live["weekly"]]
    rolled, fresh = report["retention"], retention(days=30, today=day(1))
    live_cohorts = {c.key: (c.new, c.retained) for c in fresh["days"]}
    overlap = [c for c in rolled["days"] if c.key in live_cohorts]
    assert len(overlap) == 59
    assert [(c.new, c.retained) for c in overlap] == [live_cohorts[c.key] for c in overlap]
    assert sum(c.new for c in overlap) == 6
    assert rolled["total"].new == sum(c.new for c in rolled["days"] if c.key >= day(30)) == 3
    assert report["rolled_up_at"] is not None


def test_the_rollup_counts_a_member_who_came_back_the_next_day():
    member = MemberFactory(registered_at=at(day(3), 10))
    OrderFactory(member=member, paid_at=at(day(3), 10))
    InteractionFactory(member=member, occurred_at=at(day(2), 20), kind=3)  # check-in
    activity_rollup(days=5, today=TODAY)
    report = activity_report(days=7, today=TODAY)
    cohort = next(c for c in report["retention"]["days"] if c.key == day(3))
    assert (cohort.new, cohort.retained[1], cohort.rate(1)) == (1, 1, Decimal("1.0000"))
    assert next(b for b in report["daily"] if b.start == day(2)).active == 1


def test_the_nightly_task_catches_up_on_nights_it_missed():
    from workspace.tasks import activity_rollup_task

    today = timezone.localdate()
    member = MemberFactory(registered_at=at(today - dt.timedelta(days=10), 9))
    for back in (2, 3, 4, 5):  # active on the four days the scheduler was down
        InteractionFactory(member=member, occurred_at=at(today - dt.timedelta(days=back), 12), kind=3)
    activity_rollup(days=2, today=today - dt.timedelta(days=4))  # the last night it ran
    counts = activity_rollup_task()
    assert counts["days"] == 4  # not just the default two
    active_days = set(
        ActivityRollup.objects.filter(period=ActivityRollup.Period.DAY, active__gt=0).values_list("start", flat=True)
    )
    assert {today - dt.timedelta(days=back) for back in (2, 3, 4, 5)} <= active_days
