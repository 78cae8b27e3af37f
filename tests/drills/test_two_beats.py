"""Fault drill: two beat schedulers at once (a second ``celery beat`` started by mistake, or two
machines both told to run it) — every periodic job is then sent twice at the same moment, and
must still do its work once.

Each job of ``config/periodic.py`` runs twice concurrently, on two threads with their own database
connections released together by a barrier, as two workers would run the two copies. What makes it
safe is the job's own guard: the recompute's and the trigger sweep's PostgreSQL advisory locks (the
second copy does nothing), conditional updates (the reaper marks a dead run failed once), the
outbox's single-statement claim (one copy sends), unique idempotency keys on ledger entries (one
``expire`` entry per lot), and set-based updates guarded by the state
they change (tiers, coupons, campaigns). ``reconcile`` is clean after all of them.

The drill refuses a new schedule nobody has drilled: it compares its jobs with ``SCHEDULES``; the
two it leaves out say why (``NOT_DRILLED_HERE``).
"""

import datetime as dt
import threading

import pytest
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from campaigns.models import Campaign, Coupon, OutboxMessage, TriggerFiring
from campaigns.services.outbox import message_enqueue
from campaigns.tasks import campaigns_advance_task, coupons_expire_task, outbox_flush_task, triggers_sweep_task
from config.periodic import SCHEDULES
from members.models import ApiIdempotencyRecord, Interaction, Member, PointsEntry, PointsLot, TierChange
from members.services.points import points_grant
from members.tasks import (
    idempotency_records_purge_task,
    interactions_prune_task,
    points_expire_task,
    reconcile_task,
    tier_downgrade_task,
)
from segmentation.models import MemberRfm, RfmRun, SegmentTransition
from segmentation.tasks import segment_recompute_reap_task, segment_recompute_task
from tests.factories import (
    ApiIdempotencyRecordFactory,
    CampaignFactory,
    CouponFactory,
    MemberFactory,
    MemberTierStatusFactory,
    OrderFactory,
    RfmRunFactory,
    StoreFactory,
    TriggerFactory,
)

pytestmark = pytest.mark.slow

JOBS = {  # in this order: the reaper first, as the recompute reaps too
    "segmentation.tasks.segment_recompute_reap_task": segment_recompute_reap_task,
    "segmentation.tasks.segment_recompute_task": segment_recompute_task,
    "members.tasks.points_expire_task": points_expire_task,
    "members.tasks.tier_downgrade_task": tier_downgrade_task,
    "members.tasks.reconcile_task": reconcile_task,
    "members.tasks.idempotency_records_purge_task": idempotency_records_purge_task,
    "members.tasks.interactions_prune_task": interactions_prune_task,
    "campaigns.tasks.coupons_expire_task": coupons_expire_task,
    "campaigns.tasks.campaigns_advance_task": campaigns_advance_task,
    "campaigns.tasks.outbox_flush_task": outbox_flush_task,
    "campaigns.tasks.triggers_sweep_task": triggers_sweep_task,
}
NOT_DRILLED_HERE = {  # and why
    "workspace.tasks.activity_rollup_task": (
        "one transaction under an advisory lock deletes and rewrites the same rows "
        "(tests/workspace/test_activity_metrics.py)"
    ),
    "segmentation.tasks.segment_live_refresh_task": "a Redis-backed drain, with its own concurrency tests",
    "segmentation.clv_tasks.clv_fit_task": "a PyMC fit, too slow for the suite (a session advisory lock guards it)",
    "segmentation.tasks.product_preferences_task": (
        "one transaction under an advisory lock: a second beat's run waits, then rewrites nothing unchanged"
    ),
    "segmentation.tasks.rule_tags_task": (
        "one transaction under an advisory lock; two at once: tests/segmentation/test_rule_tags.py"
    ),
}


def twice_at_once(task) -> list:
    """Run ``task`` on two threads at the same moment; return both results (re-raise an error)."""
    barrier, outcomes = threading.Barrier(2), []

    def run():
        try:
            barrier.wait(10)
            outcomes.append(("value", task()))
        except Exception as exc:
            outcomes.append(("error", exc))
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not any(thread.is_alive() for thread in threads), "a copy of the job is still running"
    for kind, value in outcomes:
        if kind == "error":
            raise value
    return [value for _kind, value in outcomes]


def test_every_schedule_is_drilled():
    assert {schedule.task for schedule in SCHEDULES} == set(JOBS) | set(NOT_DRILLED_HERE)


@pytest.mark.django_db(transaction=True)
def test_two_beats_sending_every_job_at_once_do_its_work_once(default_scheme, ladder):
    # given work due for every periodic job
    now = timezone.now()
    store = StoreFactory()
    buyers = [MemberFactory(home_store=store) for _ in range(12)]
    for index, member in enumerate(buyers):  # for the recompute: recent buyers, none lapsed
        for order in range(1 + index % 4):
            OrderFactory(member=member, paid_at=now - dt.timedelta(days=2 + 10 * order + index), amount=20 + index)
    silver = MemberFactory(home_store=store, tier=ladder["silver"])  # last qualified 120 days ago: retention over
    MemberTierStatusFactory(member=silver, tier=ladder["silver"], last_qualified_at=now - dt.timedelta(days=120))
    OrderFactory(member=silver, paid_at=now - dt.timedelta(days=150), amount="600.00")
    lapsed = MemberFactory(home_store=store)  # last bought 62 days ago: the 60-day trigger is due
    OrderFactory(member=lapsed, paid_at=now - dt.timedelta(days=62))
    TriggerFactory(is_active=True)  # inactivity, 60 days, a win-back message
    saver = MemberFactory(home_store=store)  # points that expired an hour ago
    points_grant(member=saver, points=80, kind="campaign_reward", reason="drill", idempotency_key="drill:80")
    PointsLot.objects.filter(member=saver).update(expires_at=now - dt.timedelta(hours=1))
    coupon = CouponFactory(member=saver, granted_at=now - dt.timedelta(days=40))
    campaign = CampaignFactory(status=Campaign.Status.SCHEDULED, starts_at=now - dt.timedelta(minutes=3))
    welcome = message_enqueue(member=saver, template="welcome", payload={}, dedupe_key="drill:welcome")
    abandoned = RfmRunFactory(  # its worker died: no session says it is alive
        scheme=default_scheme, status=RfmRun.Status.RUNNING, started_at=now - dt.timedelta(hours=1), finished_at=None
    )
    old_answer = ApiIdempotencyRecordFactory()
    ApiIdempotencyRecord.objects.filter(pk=old_answer.pk).update(created_at=now - dt.timedelta(days=30))
    Interaction.objects.bulk_create(  # one to keep, one past the retention
        Interaction(member=saver, kind=1, source=1, occurred_at=now - dt.timedelta(days=days), event_id=f"drill-{days}")
        for days in (1, 500)
    )
    members = Member.objects.count()

    # when every job is sent by two beats at once
    results = {name: twice_at_once(task) for name, task in JOBS.items()}

    # then each did its work once
    abandoned.refresh_from_db()
    assert abandoned.status == RfmRun.Status.FAILED
    assert sorted(results["segmentation.tasks.segment_recompute_reap_task"]) == [0, 1]
    assert RfmRun.objects.filter(status=RfmRun.Status.SUCCEEDED).count() in (1, 2)  # 2: one after the other
    assert any(run_id is not None for run_id in results["segmentation.tasks.segment_recompute_task"])
    assert MemberRfm.objects.count() == members
    assert SegmentTransition.objects.count() == members, "every member entered a segment once"
    assert list(PointsEntry.objects.filter(member=saver).values_list("kind", "points").order_by("pk")) == [
        ("campaign_reward", 80),
        ("expire", -80),
    ]
    downgrades = TierChange.objects.filter(member=silver, reason=TierChange.Reason.SCHEDULED_DOWNGRADE)
    assert downgrades.count() == 1
    assert sorted(results["members.tasks.tier_downgrade_task"]) == [0, 1]
    coupon.refresh_from_db()
    campaign.refresh_from_db()
    assert coupon.status == Coupon.Status.EXPIRED
    assert campaign.status == Campaign.Status.RUNNING
    assert not ApiIdempotencyRecord.objects.exists()
    assert list(Interaction.objects.values_list("event_id", flat=True)) == ["drill-1"]
    assert sorted(results["members.tasks.interactions_prune_task"]) == [0, 1]
    firing = TriggerFiring.objects.get()
    assert (firing.member_id, firing.status) == (lapsed.pk, TriggerFiring.Status.FIRED)
    assert sorted(OutboxMessage.objects.values_list("pk", "status", "attempts")) == sorted(
        [(welcome.pk, OutboxMessage.Status.SENT, 1), (firing.message_id, OutboxMessage.Status.SENT, 1)]
    )
    assert results["members.tasks.reconcile_task"] == [0, 0]
    call_command("reconcile")
