"""Row locks of one member taken by different paths never deadlock: a member is locked ``FOR NO KEY
UPDATE``, which lets the foreign-key checks of rows pointing at the member through."""

import io
import threading

import pytest
from django.db import transaction
from django.utils import timezone

from members.events import orders_imported
from members.models import Member, Order, PointsAccount
from members.services import points as points_service
from members.services.imports import orders_import
from members.services.orders import order_record
from tests.concurrency import in_another_connection, wait_until_another_waits_for_a_lock
from tests.factories import MemberFactory, record_order

pytestmark = pytest.mark.django_db(transaction=True)


def both(first, second) -> dict:
    """Run the two on their own connections at once; their outcomes by name."""
    outcomes = {}
    threads = [
        threading.Thread(target=lambda name=name, fn=fn: outcomes.__setitem__(name, in_another_connection(fn)))
        for name, fn in (("first", first), ("second", second))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(40)
    return outcomes


def test_a_pos_order_sent_while_an_import_of_the_same_order_commits(monkeypatch):
    # given: an import has inserted order DUP-1 and is about to commit
    member = MemberFactory()
    store = member.home_store
    paid_at = timezone.now().replace(microsecond=0)
    csv = (
        "order_id,member_mobile,store_code,paid_at,amount\n"
        f"DUP-1,{member.mobile},{store.code},{paid_at.isoformat()},38.00\n"
    ).encode()
    inserted = threading.Event()

    def before_the_import_commits(**_payload):
        inserted.set()
        wait_until_another_waits_for_a_lock("%INSERT INTO%members_order%")

    def the_pos_sends_it_too():
        assert inserted.wait(10)
        return record_order(Member.objects.get(pk=member.pk), paid_at=paid_at, external_id="DUP-1")

    # the import publishes its event inside its transaction, after the inserts: stop there
    publish = orders_imported.publish
    monkeypatch.setattr(orders_imported, "publish", lambda **payload: (before_the_import_commits(), publish(**payload)))
    # when
    outcomes = both(lambda: orders_import(file=io.BytesIO(csv), historical=True), the_pos_sends_it_too)
    # then: both finish — the POS gets the imported order back — and it is there once
    assert [outcome.get("error") for outcome in outcomes.values()] == [None, None]
    assert outcomes["second"]["value"].created is False
    assert Order.objects.filter(external_id="DUP-1").count() == 1


def test_a_points_redemption_commits_while_an_order_of_the_member_waits_for_the_account(monkeypatch):
    # given: a member with points; a redemption holds the account and has written its entry
    member = MemberFactory()
    store = member.home_store
    with transaction.atomic():
        order_record(external_id="R-0", member=member, store=store, paid_at=timezone.now(), amount="500.00")
    assert PointsAccount.objects.get(member=member).balance > 10
    debited = threading.Event()
    real_debit = points_service._debit

    def debit_then_wait_for_the_order(*args, **kwargs):
        entry = real_debit(*args, **kwargs)
        debited.set()
        wait_until_another_waits_for_a_lock("%FOR UPDATE%")  # the order, at the points account
        return entry  # commit: the entry's foreign-key check needs the member row

    monkeypatch.setattr(points_service, "_debit", debit_then_wait_for_the_order)

    def redeem():
        return points_service.points_redeem(
            member=Member.objects.get(pk=member.pk), points=10, idempotency_key="redeem-1", reason="till"
        )

    def buy():
        assert debited.wait(10)
        return record_order(Member.objects.get(pk=member.pk), paid_at=timezone.now(), external_id="R-1")

    # when
    outcomes = both(redeem, buy)
    # then: neither was picked as a deadlock victim
    assert [outcome.get("error") for outcome in outcomes.values()] == [None, None]
