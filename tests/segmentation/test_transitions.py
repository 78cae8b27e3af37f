"""Every run stores every member whose segment changed and publishes one event per change after
commit; the migration matrix between any two runs is one query."""

import datetime as dt

import pytest

from segmentation.models import MemberRfm, RfmRun, Segment, SegmentTransition
from segmentation.selectors import ABSENT, segment_migration_matrix
from segmentation.services import recompute, run_transitions_publish, segment_recompute

from .builders import AS_OF, local, member, order

pytestmark = pytest.mark.django_db


def slug_id(slug: str) -> int:
    return Segment.objects.get(scheme__slug="rfm-default", slug=slug).pk


def test_the_first_run_records_every_member_entering_a_segment(
    default_scheme, published, django_capture_on_commit_callbacks
):
    # given
    buyer = member()
    order(buyer, days_ago=2)
    never = member()
    # when
    with django_capture_on_commit_callbacks(execute=True):
        run = segment_recompute(as_of=AS_OF)
    # then
    rows = set(SegmentTransition.objects.values_list("member_id", "from_segment_id", "to_segment_id", "source"))
    assert rows == {(buyer.pk, None, slug_id("promising"), "run"), (never.pk, None, slug_id("no_purchase"), "run")}
    assert run.transition_count == 2
    assert sorted((event["member_id"], event["from_slug"], event["to_slug"]) for event in published) == sorted(
        [(buyer.pk, None, "promising"), (never.pk, None, "no_purchase")]
    )


def test_a_later_run_records_only_the_changes_and_emits_each_once(
    default_scheme, published, django_capture_on_commit_callbacks
):
    # given: two members and a first run
    mover, stayer = member(), member()
    order(mover, days_ago=40)
    order(stayer, days_ago=40)
    first = segment_recompute(as_of=AS_OF)
    first.refresh_from_db()
    published.clear()
    order(mover, days_ago=1, amount="900.00")
    # when
    with django_capture_on_commit_callbacks(execute=True):
        second = segment_recompute(as_of=AS_OF)
    # then
    transitions = list(
        SegmentTransition.objects.filter(run=second).values_list("member_id", "from_segment_id", "to_segment_id")
    )
    assert transitions == [(mover.pk, slug_id("lost"), slug_id("big_spenders"))]
    assert [(e["member_id"], e["from_slug"], e["to_slug"], e["run_id"]) for e in published] == [
        (mover.pk, "lost", "big_spenders", second.pk)
    ]
    # publishing the run again (a retried task) emits nothing more
    assert run_transitions_publish(run_id=second.pk) == 0
    assert len(published) == 1


def test_nothing_is_emitted_before_commit(default_scheme, published, django_capture_on_commit_callbacks):
    # given
    order(member(), days_ago=2)
    # when
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        segment_recompute(as_of=AS_OF)
    # then
    assert published == []
    assert len(callbacks) == 1


def test_the_migration_matrix_between_two_runs(default_scheme):
    # given: run 1 with three members
    lost_then_promising, lost_both, promising_then_lost = member(), member(), member()
    order(lost_then_promising, days_ago=100)
    order(lost_both, days_ago=100)
    order(promising_then_lost, days_ago=5)
    run_1 = segment_recompute(as_of=AS_OF)
    # ... run 2, 60 days later: one bought again, one newcomer registered in between
    later = AS_OF + dt.timedelta(days=60)
    order(lost_then_promising, paid_at=local(later - dt.timedelta(days=1)))
    newcomer = member(registered=local(AS_OF + dt.timedelta(days=10)))
    run_2 = segment_recompute(as_of=later)
    # when
    matrix = segment_migration_matrix(from_run=run_1, to_run=run_2)
    # then
    assert matrix["cells"] == {
        (slug_id("lost"), slug_id("promising")): 1,
        (slug_id("lost"), slug_id("lost")): 1,
        (slug_id("promising"), slug_id("lost")): 1,
        (ABSENT, slug_id("no_purchase")): 1,
    }
    assert newcomer.pk
    assert segment_migration_matrix(from_run=run_2, to_run=run_1)["cells"][(slug_id("no_purchase"), ABSENT)] == 1


@pytest.mark.parametrize("most_move", [True, False])
def test_transitions_are_the_same_from_the_summary_pass_or_a_statement_of_their_own(
    default_scheme, monkeypatch, most_move
):
    # given: a first run, then a mover, a stayer and a newcomer
    mover, stayer = member(), member()
    order(mover, days_ago=40)
    order(stayer, days_ago=2)
    segment_recompute(as_of=AS_OF)
    was = MemberRfm.objects.get(member=mover).segment_id
    order(mover, days_ago=1)
    newcomer = member()
    # when: the second run inserts its transitions apart (as a first run does) or in the summary's pass
    monkeypatch.setattr(recompute, "_most_members_move", lambda run: most_move)
    run = segment_recompute(as_of=AS_OF)
    # then: the same transitions, counted
    rows = set(SegmentTransition.objects.filter(run=run).values_list("member_id", "from_segment_id", "to_segment_id"))
    assert rows == {
        (mover.pk, was, slug_id("promising")),
        (newcomer.pk, None, slug_id("no_purchase")),
    }
    assert run.transition_count == 2


def test_only_a_first_run_or_changed_rules_insert_transitions_apart(default_scheme):
    # given: a buyer, and no run yet
    order(member(), days_ago=2)
    # then: a first run moves everyone
    assert recompute._most_members_move(RfmRun(scheme=default_scheme, params={})) is True
    # when: a run is current
    first = segment_recompute(as_of=AS_OF)
    # then: a run with its rules moves few, one with edited rules most
    assert recompute._most_members_move(RfmRun(scheme=default_scheme, params=first.params)) is False
    edited = RfmRun(scheme=default_scheme, params={**first.params, "r_max_days": 999})
    assert recompute._most_members_move(edited) is True
