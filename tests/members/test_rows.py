"""members.rows: one-row INSERT, UPDATE and SELECT (… FOR UPDATE) in short prepared statements."""

import datetime as dt
from decimal import Decimal

import pytest
from django.contrib.auth.models import Group
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.utils import timezone

from members import rows
from members.models import ApiIdempotencyRecord, Member, Order, PointsAccount, Store
from tests.concurrency import in_another_connection
from tests.factories import MemberFactory, OrderFactory, StoreFactory

pytestmark = pytest.mark.django_db

PAID_AT = dt.datetime(2026, 11, 1, 12, 30, 15, 123456, tzinfo=dt.UTC)
ORDERS = connection.ops.quote_name(Order._meta.db_table)


def field_values(instance) -> dict:
    return {field.attname: getattr(instance, field.attname) for field in type(instance)._meta.concrete_fields}


def lock_order_nowait(order_id: int):
    with transaction.atomic():
        return Order.objects.select_for_update(nowait=True).get(pk=order_id)


# --- insert ----------------------------------------------------------------------------------


def test_insert_writes_the_row_sets_the_pk_and_fills_timestamps_and_defaults():
    # given
    member = MemberFactory()
    order = Order(external_id="POS-1", member=member, store=member.home_store, paid_at=PAID_AT, amount=Decimal("38.50"))
    before = timezone.now()
    # when
    inserted = rows.insert(order)
    # then
    after = timezone.now()
    assert inserted is True
    assert order.pk is not None
    assert order._state.adding is False
    assert order._state.db == "default"
    assert before <= order.created_at <= after
    assert before <= order.updated_at <= after
    loaded = Order.objects.get(pk=order.pk)
    assert field_values(loaded) == field_values(order)
    assert loaded.refunded_amount == Decimal("0.00")
    assert loaded.status == Order.Status.PAID


def test_insert_keeps_callable_defaults_as_the_instance_has_them():
    # given a member whose referral code comes from a callable default
    store = StoreFactory()
    member = Member(mobile="13900009999", registered_at=PAID_AT, home_store=store)
    # when
    rows.insert(member)
    # then
    loaded = Member.objects.get(mobile="13900009999")
    assert loaded.pk == member.pk
    assert loaded.referral_code == member.referral_code != ""
    assert loaded.gender == Member.Gender.UNKNOWN
    assert field_values(loaded) == field_values(member)


def test_insert_of_a_model_whose_pk_is_a_one_to_one_field_returns_that_pk():
    # given
    member = MemberFactory()
    account = PointsAccount(member=member)
    # when
    rows.insert(account)
    # then
    assert account.pk == member.pk
    assert account._state.adding is False
    assert PointsAccount.objects.filter(member=member).values_list("balance", "debt").get() == (0, 0)


def test_insert_unless_conflict_writes_nothing_when_the_unique_value_exists():
    # given an order recorded under POS-1
    existing = OrderFactory(external_id="POS-1", amount=Decimal("38.50"))
    other = MemberFactory()
    duplicate = Order(external_id="POS-1", member=other, store=existing.store, paid_at=PAID_AT, amount=Decimal("99.00"))
    # when
    inserted = rows.insert(duplicate, unless_conflict_on=("store", "external_id"))
    # then
    assert inserted is False
    assert duplicate.pk is None
    assert duplicate._state.adding is True
    assert list(Order.objects.values_list("pk", "member_id", "amount")) == [
        (existing.pk, existing.member_id, Decimal("38.50"))
    ]


def test_insert_unless_conflict_inserts_a_new_unique_value():
    # given
    OrderFactory(external_id="POS-1")
    member = MemberFactory()
    order = Order(external_id="POS-2", member=member, store=member.home_store, paid_at=PAID_AT, amount=Decimal("1"))
    # when
    inserted = rows.insert(order, unless_conflict_on=("store", "external_id"))
    # then
    assert inserted is True
    assert Order.objects.get(external_id="POS-2").pk == order.pk


def test_insert_without_unless_conflict_raises_djangos_integrity_error_on_a_duplicate():
    # given
    existing = OrderFactory(external_id="POS-1")
    member = MemberFactory()
    duplicate = Order(external_id="POS-1", member=member, store=existing.store, paid_at=PAID_AT, amount=Decimal("1"))
    # when / then
    with pytest.raises(IntegrityError), transaction.atomic():
        rows.insert(duplicate)
    assert Order.objects.count() == 1


# --- update ----------------------------------------------------------------------------------


def test_update_writes_only_the_named_columns_and_updated_at():
    # given an order last written long ago, changed in memory in several fields
    long_ago = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
    order = OrderFactory(external_id="POS-1", amount=Decimal("38.50"))
    Order.objects.filter(pk=order.pk).update(created_at=long_ago, updated_at=long_ago)
    order.status = Order.Status.PARTIALLY_REFUNDED
    order.refunded_amount = Decimal("10.00")
    order.amount = Decimal("99.00")
    order.external_id = "CHANGED"
    before = timezone.now()
    # when
    rows.update(order, "status", "refunded_amount")
    # then
    loaded = Order.objects.get(pk=order.pk)
    assert loaded.status == Order.Status.PARTIALLY_REFUNDED
    assert loaded.refunded_amount == Decimal("10.00")
    assert loaded.amount == Decimal("38.50")
    assert loaded.external_id == "POS-1"
    assert loaded.created_at == long_ago
    assert before <= loaded.updated_at <= timezone.now()
    assert order.updated_at == loaded.updated_at


def test_update_finds_the_row_by_a_pk_that_is_a_one_to_one_field():
    # given two accounts
    account, other = (
        PointsAccount.objects.create(member=MemberFactory()),
        PointsAccount.objects.create(member=MemberFactory()),
    )
    # when
    account.balance, account.debt = 25, 3
    rows.update(account, "balance", "debt")
    # then only that account changed
    assert PointsAccount.objects.values_list("balance", "debt").get(pk=account.pk) == (25, 3)
    assert PointsAccount.objects.values_list("balance", "debt").get(pk=other.pk) == (0, 0)


def test_update_of_a_model_without_updated_at_writes_the_named_columns():
    # given a model without timestamps
    group = Group.objects.create(name="cashiers")
    # when
    group.name = "store managers"
    rows.update(group, "name")
    # then
    assert Group.objects.get(pk=group.pk).name == "store managers"


# --- get -------------------------------------------------------------------------------------


def test_get_returns_none_when_there_is_no_such_row():
    # given
    OrderFactory(external_id="POS-1")
    # when / then
    assert rows.get(Order, by="external_id", value="POS-404") is None
    assert rows.get(Order, by="id", value=0) is None
    assert rows.get(Order, by="id", value=0, lock=True) is None


def test_get_returns_the_order_as_the_orm_loads_it():
    # given an order with exact money and a datetime to the microsecond
    order = OrderFactory(
        external_id="POS-1",
        paid_at=PAID_AT,
        amount=Decimal("1234.56"),
        refunded_amount=Decimal("12.34"),
        status=Order.Status.PARTIALLY_REFUNDED,
    )
    # when
    got = rows.get(Order, by="external_id", value="POS-1")
    # then
    loaded = Order.objects.get(pk=order.pk)
    assert type(got) is Order
    assert field_values(got) == field_values(loaded)
    assert got.amount == Decimal("1234.56") and isinstance(got.amount, Decimal)
    assert got.refunded_amount == Decimal("12.34") and isinstance(got.refunded_amount, Decimal)
    assert got.paid_at == PAID_AT and got.paid_at.utcoffset() == dt.timedelta(0)
    assert got._state.adding is False
    assert got._state.db == "default"


def test_get_returns_the_member_as_the_orm_loads_it():
    # given a member with a date, an empty nullable field and a foreign key
    member = MemberFactory(mobile="13900001234", birthday=dt.date(1990, 2, 28), openid=None)
    # when
    got = rows.get(Member, by="mobile", value="13900001234")
    # then
    assert field_values(got) == field_values(Member.objects.get(pk=member.pk))
    assert got.birthday == dt.date(1990, 2, 28)
    assert got.openid is None
    assert got.home_store_id == member.home_store_id


def test_get_by_a_one_to_one_pk_and_by_id():
    # given
    member = MemberFactory()
    PointsAccount.objects.create(member=member, balance=42)
    # when
    account = rows.get(PointsAccount, by="member", value=member.pk)
    store = rows.get(Store, by="id", value=member.home_store_id)
    # then
    assert (account.pk, account.balance, account.debt) == (member.pk, 42, 0)
    assert field_values(store) == field_values(Store.objects.get(pk=member.home_store_id))


def test_get_converts_values_as_the_orm_does():
    # given a row with a JSON field (whose value the ORM decodes with the field's converter)
    record = ApiIdempotencyRecord.objects.create(
        store=StoreFactory(),
        key="k-1",
        operation="order_record",
        request_hash="0" * 64,
        response_status=201,
        response_body={"order": {"amount": "38.50", "points": 38}, "tags": ["a", "b"]},
    )
    # when
    got = rows.get(ApiIdempotencyRecord, by="id", value=record.pk)
    # then
    assert got.response_body == {"order": {"amount": "38.50", "points": 38}, "tags": ["a", "b"]}
    assert field_values(got) == field_values(ApiIdempotencyRecord.objects.get(pk=record.pk))


@pytest.mark.django_db(transaction=True)
def test_get_with_lock_holds_the_row_until_the_transaction_ends():
    # given
    order = OrderFactory()
    # when the row is read with lock=True and another connection tries to lock it
    with transaction.atomic():
        got = rows.get(Order, by="id", value=order.pk, lock=True)
        during = in_another_connection(lambda: lock_order_nowait(order.pk))
    after = in_another_connection(lambda: lock_order_nowait(order.pk))
    # then the other connection was refused while the transaction lasted, and not after
    assert got.pk == order.pk
    assert isinstance(during.get("error"), DatabaseError), during
    assert "value" not in during
    assert after.get("value") == order, after


@pytest.mark.django_db(transaction=True)
def test_get_without_lock_leaves_the_row_free():
    # given
    order = OrderFactory()
    # when
    with transaction.atomic():
        rows.get(Order, by="id", value=order.pk)
        during = in_another_connection(lambda: lock_order_nowait(order.pk))
    # then
    assert during.get("value") == order, during


# --- fetch_prepared --------------------------------------------------------------------------


@pytest.fixture(params=[True, False], ids=["prepared", "not-prepared"])
def prepare(request, settings):
    settings.HUIYUAN_PREPARE_STATEMENTS = request.param
    return request.param


def test_fetch_prepared_returns_the_rows_of_a_select(prepare):
    # given two members' orders
    member, other = MemberFactory(), MemberFactory()
    first = OrderFactory(member=member, amount=Decimal("38.50"))
    second = OrderFactory(member=member, amount=Decimal("12.00"))
    third = OrderFactory(member=other, amount=Decimal("7.25"))
    sql = f"SELECT id, amount FROM {ORDERS} WHERE member_id = %s ORDER BY id"
    # when the same statement runs again and again, with other parameters
    runs = [rows.fetch_prepared(sql, [member.pk]) for _ in range(3)]
    others = rows.fetch_prepared(sql, [other.pk])
    nobody = rows.fetch_prepared(sql, [0])
    # then
    assert runs == [[(first.pk, Decimal("38.50")), (second.pk, Decimal("12.00"))]] * 3
    assert others == [(third.pk, Decimal("7.25"))]
    assert nobody == []


def test_fetch_prepared_returns_nothing_for_an_update_and_makes_it(prepare):
    # given
    order = OrderFactory(amount=Decimal("38.50"))
    untouched = OrderFactory(amount=Decimal("38.50"))
    # when
    found = rows.fetch_prepared(f"UPDATE {ORDERS} SET refunded_amount = %s WHERE id = %s", [Decimal("8.50"), order.pk])
    # then
    assert found == []
    assert Order.objects.get(pk=order.pk).refunded_amount == Decimal("8.50")
    assert Order.objects.get(pk=untouched.pk).refunded_amount == Decimal("0.00")


def test_each_fetch_prepared_is_counted_as_one_query(prepare, django_assert_num_queries):
    # given
    order = OrderFactory()
    # when / then
    with django_assert_num_queries(2) as captured:
        rows.fetch_prepared(f"SELECT external_id FROM {ORDERS} WHERE id = %s", [order.pk])
        rows.fetch_prepared(f"UPDATE {ORDERS} SET status = %s WHERE id = %s", ["paid", order.pk])
    assert ORDERS in captured.captured_queries[0]["sql"]
    assert captured.captured_queries[1]["sql"].startswith(f"UPDATE {ORDERS}")


@pytest.mark.parametrize(("prepare_statements", "marker"), [(True, "huiyuan-on"), (False, "huiyuan-off")])
def test_statements_are_prepared_on_the_server_only_when_the_setting_says_so(settings, prepare_statements, marker):
    # given
    settings.HUIYUAN_PREPARE_STATEMENTS = prepare_statements
    # when
    found = rows.fetch_prepared(f"SELECT '{marker}'::text, %s::int", [7])
    # then
    assert found == [(marker, 7)]
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        prepared = [statement for (statement,) in cursor.fetchall() if marker in statement]
    assert bool(prepared) is prepare_statements


def test_the_result_status_fetch_prepared_checks_is_psycopgs_tuples_ok():
    from psycopg import pq

    assert rows._TUPLES_OK == pq.ExecStatus.TUPLES_OK
