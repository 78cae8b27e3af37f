"""Fault drill: Redis, the Celery broker, is restarted while tasks wait in it — nothing is lost,
nothing is done twice.

Three kinds of queued work, each sent twice (as an ``acks_late`` redelivery or a repeated beat
would send it): an outbox message's delivery (``outbox_deliver_task``), a due after-order trigger
firing (``trigger_fire_pending_task``) and the points expiry (``points_expire_task``). No worker is
running; Redis is killed (``SIGKILL``) and started again; then a real worker starts.

- **A broker that keeps its data** (``appendonly yes``, ``appendfsync always`` — the deployment
  guide's Redis): the six messages are still there after the restart; the worker runs them; the
  message is sent once (one attempt), the firing fires once and its own message is sent once, the
  expired lot gives one ``expire`` entry.
- **A broker that loses its data**: the queue comes back empty; what beat sends next — the
  minute's outbox flush, the hour's trigger sweep, the night's expiry — finds the due work in
  PostgreSQL and does it, once each.

``reconcile`` is clean after each.
"""

import datetime as dt
import signal

import pytest
from django.core.management import call_command
from django.utils import timezone

from campaigns.models import OutboxMessage, Trigger, TriggerFiring
from campaigns.services.outbox import message_enqueue
from campaigns.tasks import outbox_deliver_task, outbox_flush_task, trigger_fire_pending_task, triggers_sweep_task
from members.models import PointsAccount, PointsEntry, PointsLot
from members.services.points import points_grant
from members.tasks import points_expire_task
from tests.drills.conftest import wait_until
from tests.factories import MemberFactory, OrderFactory, StoreFactory, TriggerFactory, TriggerFiringFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

Sent = OutboxMessage.Status.SENT


def due_work():
    """A member with a message to deliver, a due after-order firing and 120 expired points."""
    store = StoreFactory()
    member = MemberFactory(home_store=store)
    message = message_enqueue(member=member, template="welcome", payload={"n": 1}, dedupe_key="drill:welcome")
    trigger = TriggerFactory(
        kind=Trigger.Kind.AFTER_ORDER, inactivity_days=None, delay_days=1, is_active=True, message_template="thanks"
    )
    order = OrderFactory(member=member, paid_at=timezone.now() - dt.timedelta(days=2))
    firing = TriggerFiringFactory(
        trigger=trigger, member=member, cause_key=f"order:{order.pk}", due_at=timezone.now() - dt.timedelta(days=1)
    )
    points_grant(member=member, points=120, kind="campaign_reward", reason="drill", idempotency_key="drill:grant")
    PointsLot.objects.filter(member=member).update(expires_at=timezone.now() - dt.timedelta(hours=1))
    return member, message, firing


def done(member, message, firing) -> bool:
    firing.refresh_from_db()
    return (
        OutboxMessage.objects.filter(pk=message.pk, status=Sent).exists()
        and firing.status == TriggerFiring.Status.FIRED
        and OutboxMessage.objects.filter(pk=firing.message_id, status=Sent).exists()
        and PointsEntry.objects.filter(member=member, kind=PointsEntry.Kind.EXPIRE).exists()
    )


def assert_done_once(member, message, firing) -> None:
    firing.refresh_from_db()
    assert firing.status == TriggerFiring.Status.FIRED
    assert TriggerFiring.objects.count() == 1
    assert sorted(OutboxMessage.objects.values_list("pk", "status", "attempts")) == sorted(
        [(message.pk, Sent, 1), (firing.message_id, Sent, 1)]
    )
    assert list(PointsEntry.objects.filter(member=member).order_by("pk").values_list("kind", "points")) == [
        ("campaign_reward", 120),
        ("expire", -120),
    ]
    assert PointsAccount.objects.get(member=member).balance == 0
    call_command("reconcile")


def test_queued_tasks_survive_a_broker_restart_and_run_once(drill_broker, start_worker):
    # given due work whose tasks wait in Redis, each sent twice, and no worker running
    member, message, firing = due_work()
    for _twice in range(2):
        outbox_deliver_task.delay(message.pk)
        trigger_fire_pending_task.delay([firing.pk])
        points_expire_task.delay()
    assert drill_broker.queued() == 6

    # when Redis is killed and started again, then a worker starts
    drill_broker.restart()
    assert drill_broker.queued() == 6, "the broker lost queued tasks"
    worker = start_worker()
    wait_until(lambda: done(member, message, firing), what="the queued work to be done")
    wait_until(lambda: drill_broker.queued() == 0, what="the duplicates to be taken")

    # then each piece of work was done once
    assert worker.process.poll() is None
    assert_done_once(member, message, firing)


def test_work_lost_with_the_broker_is_done_by_the_next_beat(drill_broker, start_worker):
    # given due work whose tasks wait in Redis
    member, message, firing = due_work()
    outbox_deliver_task.delay(message.pk)
    trigger_fire_pending_task.delay([firing.pk])
    points_expire_task.delay()
    assert drill_broker.queued() == 3

    # when Redis comes back without its data, a worker starts and beat sends its next jobs
    drill_broker.restart(lose_data=True)
    assert drill_broker.queued() == 0
    worker = start_worker()
    outbox_flush_task.delay()
    triggers_sweep_task.delay()
    points_expire_task.delay()
    wait_until(lambda: done(member, message, firing), what="the lost work to be done")
    wait_until(lambda: drill_broker.queued() == 0, what="the queue to empty")

    # then each piece of work was done once
    assert worker.process.poll() is None
    assert_done_once(member, message, firing)
    worker.kill(signal.SIGTERM)
