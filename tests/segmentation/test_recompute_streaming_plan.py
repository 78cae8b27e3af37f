"""With the orders' covering index ``(member_id, paid_at) INCLUDE (amount, refunded_amount)``
(issue 22) the recompute streams — an index-only scan in member order, merge-joined to the members
and to the current results — and gives exactly the numbers, transitions and snapshots of the hash
plan it uses without the index."""

import pytest
from django.db import connection, transaction

from members.models import Member
from segmentation.models import MemberRfm, RfmRun, Scheme, SegmentSnapshot, SegmentTransition
from segmentation.services import recompute, segment_recompute
from segmentation.tasks import segment_recompute_task

from .builders import AS_OF, RFM_FIELDS, mixed_data, order

pytestmark = pytest.mark.django_db

COVERING = (
    "CREATE INDEX bench_order_cover ON members_order USING btree (member_id, paid_at) INCLUDE (amount, refunded_amount)"
)


def results() -> list:
    return list(MemberRfm.objects.order_by("member_id").values_list("member_id", "as_of", *RFM_FIELDS))


def snapshot(run: RfmRun) -> dict:
    return {s.segment_id: sorted(s.member_ids) for s in SegmentSnapshot.objects.filter(run=run)}


def transitions(run: RfmRun) -> set:
    return set(SegmentTransition.objects.filter(run=run).values_list("member_id", "from_segment_id", "to_segment_id"))


def plan_of_next_build(monkeypatch) -> list:
    """The plan PostgreSQL chose for the next run's CREATE TABLE … AS SELECT."""
    plans = []
    original = recompute._build_next

    def explained(cursor, run, scored):
        select_list, params = recompute._select_list(run)
        scored_sql, scored_params = scored
        with recompute._streaming_plan(cursor):
            cursor.execute(
                f"EXPLAIN SELECT {select_list}, x.previous_segment_id FROM ({scored_sql}) x",
                [*params, *scored_params],
            )
            plans.append("\n".join(line for (line,) in cursor.fetchall()))
        return original(cursor, run, scored)

    monkeypatch.setattr(recompute, "_build_next", explained)
    return plans


def test_the_covering_index_plan_gives_the_hash_plans_numbers(default_scheme, monkeypatch):
    # given: mixed data, a first run, then new orders that move some members (transitions)
    mixed_data(seed=5)
    scheme = Scheme.objects.get(slug="seed-002-four-quadrants")  # quintiles: ranks over everyone
    Scheme.objects.update(is_active=False)
    Scheme.objects.filter(pk=scheme.pk).update(is_active=True)
    segment_recompute(as_of=AS_OF)
    for who in Member.objects.order_by("id")[:8]:
        for days in (1, 2, 3, 4):
            order(who, days_ago=days, amount="900.00")
    plans = plan_of_next_build(monkeypatch)
    # when: the next run without the index (the hash plan), rolled back, then with the index
    with transaction.atomic():
        without = segment_recompute(as_of=AS_OF)
        expected, expected_snapshot, expected_transitions = results(), snapshot(without), transitions(without)
        transaction.set_rollback(True)
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # no pending foreign-key checks on the orders
        cursor.execute(COVERING)
        cursor.execute("ANALYZE members_order")
        assert recompute._has_covering_index(cursor)
    with_index = segment_recompute(as_of=AS_OF)
    # then: the plans differ as intended — no hash table of every member — the results do not
    assert "bench_order_cover" not in plans[0]
    assert "Hash" not in plans[1]  # (on 40 members the planner reads them as it likes; bench/rfm.py shows the plan)
    assert expected_transitions, "the new orders move members"
    assert results() == expected
    assert snapshot(with_index) == expected_snapshot
    assert transitions(with_index) == expected_transitions
    # and a split run (its chunks aggregated over the index) agrees too
    run_id = segment_recompute_task.delay(as_of=AS_OF.isoformat(), chunks=3).get()
    assert RfmRun.objects.get(pk=run_id).status == RfmRun.Status.SUCCEEDED
    assert results() == expected
