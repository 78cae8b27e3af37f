"""A scheme may let chosen interactions count for R (#19; seed 001: R counts 关键互动 — a service
used, an activity joined): R is then the days since the last order or counted interaction, in the
nightly recompute (one piece or split), the preview and the live refresh alike; F and M still count
orders; a member who never bought stays without R."""

import datetime as dt

import pytest

from members.models import Interaction
from members.services.interactions import EventIn, interactions_record
from segmentation.models import MemberRfm, RfmRun
from segmentation.services import segment_recompute
from segmentation.tasks import segment_recompute_task
from tests.factories import InteractionFactory

from .builders import AS_OF, ago, days_before, member, order

pytestmark = pytest.mark.django_db
Kind = Interaction.Kind


def result(who) -> tuple:
    row = MemberRfm.objects.select_related("segment").get(member=who)
    return row.recency_days, row.frequency, row.segment.slug if row.segment else None


@pytest.fixture
def people():
    """A champion by F and M whose last order was 40 days before D, who checked in 5 days before
    and viewed a page 2 days before; and a member who never bought but checked in."""
    lapsing = member()
    for days in (40, 50, 60):
        order(lapsing, days_ago=days, amount="200.00")
    InteractionFactory(member=lapsing, kind=Kind.CHECK_IN, occurred_at=days_before(5))
    InteractionFactory(member=lapsing, kind=Kind.PAGE_VIEW, occurred_at=days_before(2))
    InteractionFactory(member=lapsing, kind=Kind.SERVICE_USED, occurred_at=days_before(-3))  # after D: not yet
    visitor = member()
    InteractionFactory(member=visitor, kind=Kind.CHECK_IN, occurred_at=days_before(1))
    return lapsing, visitor


def test_without_counted_kinds_r_is_orders_only(default_scheme, people):
    lapsing, visitor = people
    segment_recompute(as_of=AS_OF)
    assert result(lapsing) == (40, 3, "loyal_at_risk")
    assert result(visitor)[:2] == (None, 0)


def test_a_counted_check_in_makes_r_recent(default_scheme, people):
    # given: check-ins and services count for R
    default_scheme.activity_kinds = [Kind.CHECK_IN, Kind.SERVICE_USED]
    default_scheme.save(update_fields=["activity_kinds"])
    lapsing, visitor = people
    segment_recompute(as_of=AS_OF)
    # then: the check-in 5 days before D, not the page view, not the service after D
    assert result(lapsing) == (5, 3, "champions")
    assert result(visitor)[:2] == (None, 0), "a member who never bought gets no R from visits"
    assert RfmRun.objects.get(is_current=True).params["activity_kinds"] == [Kind.CHECK_IN, Kind.SERVICE_USED]


def test_a_split_run_counts_them_as_the_one_piece_run(default_scheme, people):
    default_scheme.activity_kinds = [Kind.CHECK_IN]
    default_scheme.save(update_fields=["activity_kinds"])
    lapsing, _visitor = people
    segment_recompute_task.delay(as_of=AS_OF.isoformat(), chunks=2).get()
    assert result(lapsing) == (5, 3, "champions")


def test_a_check_in_at_the_till_refreshes_the_segment_at_once(default_scheme, django_capture_on_commit_callbacks):
    # given: a run counting check-ins, and a member whose last order was 40 days ago
    default_scheme.activity_kinds = [Kind.CHECK_IN]
    default_scheme.save(update_fields=["activity_kinds"])
    who = member()
    for days in (40, 45, 50):
        order(who, paid_at=ago(days), amount="200.00")
    segment_recompute()
    assert result(who)[0] == 40
    # when: a page view (not counted), then a check-in today
    with django_capture_on_commit_callbacks(execute=True):
        interactions_record(member=who, events=[EventIn("p1", Kind.PAGE_VIEW, ago(0))], source=1)
    assert result(who)[0] == 40
    with django_capture_on_commit_callbacks(execute=True):
        interactions_record(
            member=who, events=[EventIn("c1", Kind.CHECK_IN, ago(0) - dt.timedelta(minutes=1))], source=2
        )
    # then
    assert result(who) == (0, 3, "champions")
