"""Refreshes after orders in batches: an order asks, a task refreshes every member asked for in one
statement — and nothing is lost when Redis or the refresh fails."""

from decimal import Decimal
from unittest import mock

import pytest

from members.services.orders import order_record
from segmentation import subscribers
from segmentation.models import MemberRfm, SegmentTransition
from segmentation.services import live, live_batch, member_rfm_refresh, members_rfm_refresh, segment_recompute
from segmentation.tasks import segment_live_refresh_task

from .builders import RFM_FIELDS, ago, buyers_after_a_run, member, order

pytestmark = pytest.mark.django_db


def row(who) -> MemberRfm:
    return MemberRfm.objects.select_related("segment").get(member=who)


@pytest.fixture
def queue():
    """An empty pending set and no scheduled flag for this test database, before and after."""
    assert live_batch.batching(), "the test settings use a Redis broker"
    client = live_batch._client()

    def clear():
        drains = [live_batch._processing_prefix() + drain.decode() for drain in client.hkeys(live_batch._drains_key())]
        client.delete(*live_batch._keys(), live_batch._drains_key(), *drains)

    clear()
    yield client
    clear()


@pytest.fixture
def queued_tasks():
    """Calls to queue the batch task, which then does not run."""
    with mock.patch.object(segment_live_refresh_task, "apply_async") as apply_async:
        yield apply_async


def lapsed_members(count: int) -> list:
    """Members in ``lost`` after a run (one old order each)."""
    members = [member() for _ in range(count)]
    for who in members:
        order(who, paid_at=ago(400), amount="80.00")
    segment_recompute()
    return members


def lapsed_members_who_bought(count: int, prefix: str, capture_on_commit) -> list:
    """``lapsed_members`` who then bought today (their orders' after-commit asks run)."""
    buyers = lapsed_members(count)
    with capture_on_commit(execute=True):
        for index, who in enumerate(buyers):
            order_record(
                external_id=f"{prefix}-{index}", member=who, store=who.home_store, paid_at=ago(0), amount="38.00"
            )
    return buyers


def test_orders_ask_and_one_task_is_queued_for_the_batch(
    default_scheme, queue, queued_tasks, django_capture_on_commit_callbacks
):
    # given
    buyers = lapsed_members(3)
    # when: four orders of three members
    with django_capture_on_commit_callbacks(execute=True):
        for index, who in enumerate([*buyers, buyers[0]]):
            order_record(external_id=f"B-{index}", member=who, store=who.home_store, paid_at=ago(0), amount="38.00")
    # then: each member once in the set, one task queued with the batch delay, nothing refreshed yet
    assert {int(m) for m in queue.smembers(live_batch._keys()[0])} == {who.pk for who in buyers}
    assert queued_tasks.call_count == 1
    assert queued_tasks.call_args.kwargs == {"countdown": 1.0}
    assert {row(who).segment.slug for who in buyers} == {"lost"}


def test_the_drain_refreshes_every_member_asked_for_in_one_statement(
    default_scheme,
    queue,
    queued_tasks,
    published,
    django_capture_on_commit_callbacks,
    django_assert_num_queries,
    settings,
):
    # given: three lapsed members bought today and asked for a refresh
    settings.HUIYUAN_SETTINGS_CACHE_SECONDS = 10  # as in production: the tier ladder is cached per process
    buyers = lapsed_members_who_bought(3, "D", django_capture_on_commit_callbacks)
    member_rfm_refresh(member_id=member().pk)  # the process has loaded the run's scoring and the ladder
    # when
    with django_assert_num_queries(1), django_capture_on_commit_callbacks(execute=True):
        written = live_batch.live_refresh_drain()
    # then
    assert written == 3
    assert live_batch.pending_count() == 0
    assert not queue.exists(live_batch._keys()[1])
    for who in buyers:
        fresh = row(who)
        assert (fresh.recency_days, fresh.frequency, fresh.monetary, fresh.segment.slug) == (
            0,
            1,
            Decimal("38.00"),
            "promising",
        )
    transitions = SegmentTransition.objects.filter(source=SegmentTransition.Source.LIVE, member__in=buyers).order_by(
        "member_id"
    )
    assert [(t.member_id, t.from_segment.slug, t.to_segment.slug) for t in transitions] == [
        (who.pk, "lost", "promising") for who in sorted(buyers, key=lambda who: who.pk)
    ]
    assert sorted((e["member_id"], e["from_slug"], e["to_slug"]) for e in published if e["from_slug"]) == sorted(
        (who.pk, "lost", "promising") for who in buyers
    )


def test_with_eager_tasks_the_segment_is_fresh_when_the_order_commits(
    default_scheme, queue, django_capture_on_commit_callbacks
):
    # given
    (who,) = lapsed_members(1)
    # when: the task runs at once (as in the test settings)
    with django_capture_on_commit_callbacks(execute=True):
        order_record(external_id="E-1", member=who, store=who.home_store, paid_at=ago(0), amount="38.00")
    # then
    assert row(who).segment.slug == "promising"
    assert live_batch.pending_count() == 0


def test_a_failed_batch_puts_its_members_back(default_scheme, queue, queued_tasks, django_capture_on_commit_callbacks):
    # given
    buyers = lapsed_members_who_bought(2, "F", django_capture_on_commit_callbacks)
    # when: the refresh fails
    with (
        mock.patch.object(live_batch, "members_rfm_refresh", side_effect=RuntimeError("database went away")),
        pytest.raises(RuntimeError),
    ):
        live_batch.live_refresh_drain()
    # then: still pending, and the next drain does it
    assert live_batch.pending_count() == 2
    assert live_batch.live_refresh_drain() == 2
    assert {row(who).segment.slug for who in buyers} == {"promising"}


def test_members_a_dead_drain_was_refreshing_are_refreshed_after_its_lease(
    default_scheme, queue, queued_tasks, django_capture_on_commit_callbacks
):
    # given: two members asked for
    buyers = lapsed_members_who_bought(2, "K", django_capture_on_commit_callbacks)
    # when: the worker dies in the middle of the batch (no exception handler runs: SIGKILL, OOM)
    with (
        mock.patch.object(live_batch, "members_rfm_refresh", side_effect=SystemExit("killed")),
        pytest.raises(SystemExit),
    ):
        live_batch.live_refresh_drain()
    # then: the members are not lost; a drain within the lease leaves them to the dead one
    assert live_batch.pending_count() == 2
    assert live_batch.live_refresh_drain() == 0
    # and the first drain after the lease refreshes them (a lease of -1 s: as if it had run out)
    with mock.patch.object(live_batch, "DRAIN_LEASE_SECONDS", -1):
        assert live_batch.live_refresh_drain() == 2
    assert {row(who).segment.slug for who in buyers} == {"promising"}
    assert live_batch.pending_count() == 0


def test_a_chunk_whose_pop_reply_was_lost_is_refreshed_after_the_lease(
    default_scheme, queue, queued_tasks, django_capture_on_commit_callbacks
):
    # given: two members asked for; Redis runs the pop but its reply never arrives
    import redis

    buyers = lapsed_members_who_bought(2, "L", django_capture_on_commit_callbacks)
    real_pop = live_batch._pop_chunk

    def pop_then_lose_the_reply(*args):
        real_pop(*args)
        raise redis.TimeoutError("Timeout reading from socket")

    # when
    with (
        mock.patch.object(live_batch, "_pop_chunk", side_effect=pop_then_lose_the_reply),
        pytest.raises(redis.TimeoutError),
    ):
        live_batch.live_refresh_drain()
    # then: nothing is lost; a drain after the lease refreshes both
    assert live_batch.pending_count() == 2
    with mock.patch.object(live_batch, "DRAIN_LEASE_SECONDS", -1):
        assert live_batch.live_refresh_drain() == 2
    assert {row(who).segment.slug for who in buyers} == {"promising"}


def test_drains_at_once_never_refresh_one_ask_twice(
    default_scheme, queue, queued_tasks, django_capture_on_commit_callbacks
):
    # given: two lost members asked for after an order each
    buyers = lapsed_members_who_bought(2, "O", django_capture_on_commit_callbacks)
    real_refresh = live_batch.members_rfm_refresh
    inner = []

    def refresh_while_another_drain_starts(*, member_ids):
        if not inner:
            inner.append(live_batch.live_refresh_drain())
        return real_refresh(member_ids=member_ids)

    # when: a second drain starts while the first is refreshing its chunk
    with mock.patch.object(live_batch, "members_rfm_refresh", side_effect=refresh_while_another_drain_starts):
        written = live_batch.live_refresh_drain()
    # then: the second took nothing, and each member moved once
    assert (inner, written) == ([0], 2)
    moves = SegmentTransition.objects.filter(member__in=buyers, to_segment__slug="promising")
    assert sorted(moves.values_list("member_id", flat=True)) == sorted(who.pk for who in buyers)
    assert live_batch.pending_count() == 0


def test_without_redis_the_member_is_refreshed_at_once(
    default_scheme, settings, queue, queued_tasks, django_capture_on_commit_callbacks
):
    # given: the broker cannot be reached
    (who,) = lapsed_members(1)
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"
    # when
    with django_capture_on_commit_callbacks(execute=True):
        order_record(external_id="R-1", member=who, store=who.home_store, paid_at=ago(0), amount="38.00")
    # then
    assert row(who).segment.slug == "promising"
    assert not queued_tasks.called


def test_batching_off_refreshes_at_once_and_asks_nothing(
    default_scheme, settings, queue, queued_tasks, django_capture_on_commit_callbacks
):
    (who,) = lapsed_members(1)
    settings.SEGMENTATION_LIVE_BATCH_SECONDS = 0
    with django_capture_on_commit_callbacks(execute=True):
        order_record(external_id="O-1", member=who, store=who.home_store, paid_at=ago(0), amount="38.00")
    assert row(who).segment.slug == "promising"
    assert live_batch.pending_count() == 0
    assert not queued_tasks.called


def test_an_ask_after_the_drain_started_queues_the_next_batch(default_scheme, queue, queued_tasks):
    # given: a drain deletes the flag before popping
    (who,) = lapsed_members(1)
    subscribers.refresh_member_on_order(member_id=who.pk)
    assert queued_tasks.call_count == 1
    live_batch.live_refresh_drain()
    # when: another order asks
    subscribers.refresh_member_on_order(member_id=who.pk)
    # then: it queues a task of its own
    assert queued_tasks.call_count == 2
    assert live_batch.pending_count() == 1


def test_many_members_at_once_agree_with_one_at_a_time(quintile_scheme):
    # given: a quintile run, then new orders and a refund for several members
    buyers = buyers_after_a_run(9, recent=6)
    never_bought = member()
    fields = RFM_FIELDS
    ids = [who.pk for who in [*buyers, never_bought]]
    # when
    for member_id in ids:
        member_rfm_refresh(member_id=member_id)
    one_at_a_time = list(MemberRfm.objects.filter(member_id__in=ids).order_by("member_id").values_list(*fields))
    transitions = SegmentTransition.objects.count()
    MemberRfm.objects.filter(member_id__in=ids).update(source_version=None)
    written = members_rfm_refresh(member_ids=[*ids, ids[0], 10**12])  # a repeat and a member that does not exist
    # then: the same rows, and no transition for what did not change
    assert written == len(ids)
    assert list(MemberRfm.objects.filter(member_id__in=ids).order_by("member_id").values_list(*fields)) == one_at_a_time
    assert SegmentTransition.objects.count() == transitions


def test_a_batch_scores_with_a_run_that_replaced_the_cached_one(default_scheme, queue):
    # given: the process knows an older run
    (who,) = lapsed_members(1)
    live._current[0] = None
    assert member_rfm_refresh(member_id=who.pk) is True
    newer = segment_recompute()
    order(who, paid_at=ago(0), amount="38.00")
    # when
    assert members_rfm_refresh(member_ids=[who.pk]) == 1
    # then
    assert row(who).run_id == newer.pk


def test_an_ask_while_the_drain_runs_is_never_left_without_a_task(default_scheme, queue, queued_tasks):
    # given: one member asked; another asks while the drain is popping
    first, second = lapsed_members(2)
    subscribers.refresh_member_on_order(member_id=first.pk)
    real_pop = live_batch._pop_chunk
    asked = []

    def pop_while_another_asks(*args):
        popped = real_pop(*args)
        if popped and not asked:
            asked.append(second.pk)
            subscribers.refresh_member_on_order(member_id=second.pk)
        return popped

    # when
    with mock.patch.object(live_batch, "_pop_chunk", side_effect=pop_while_another_asks):
        live_batch.live_refresh_drain()
    # then: the late ask was drained too, or it queued a task of its own
    assert asked
    assert live_batch.pending_count() == 0 or queued_tasks.call_count == 2


def test_an_ask_whose_task_could_not_be_queued_lets_the_next_ask_queue_one(default_scheme, queue, queued_tasks):
    # given: queueing the batch task fails once (the broker hiccups)
    first, second = lapsed_members(2)
    queued_tasks.side_effect = [ConnectionError("broker away"), None]
    subscribers.refresh_member_on_order(member_id=first.pk)
    # when: the next order asks
    subscribers.refresh_member_on_order(member_id=second.pk)
    # then: it queued the task, and both members wait in the batch
    assert queued_tasks.call_count == 2
    assert live_batch.pending_count() == 2
