"""Orders files are staged by a COPY of their text and parsed in PostgreSQL (issue #22): the rows
in the tills' spelling in one statement, any other through the cell parsers. The result — counts,
every bad row's line and message, the orders written — must be exactly that of reading the file
row by row in Python, which a file that does not suit the COPY (quoted cells, a row of another
width) still gets."""

import datetime as dt
import io
from decimal import Decimal

import psycopg
import pytest
from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from members.models import Member, Order, Store
from members.services import imports
from members.services.imports import orders_import
from tests.factories import MemberFactory, StoreFactory

pytestmark = pytest.mark.django_db

HEADER = "order_id,member_mobile,store_code,paid_at,amount\n"


@pytest.fixture
def shop(db):
    store = StoreFactory(code="S001")
    StoreFactory(code="S002")
    MemberFactory(mobile="13800138000", home_store=store)
    MemberFactory(mobile="13900139000", home_store=store)
    return store


def run(text: str, *, encoding: str = "utf-8", dry_run: bool = False):
    bad: list[tuple[int, str]] = []
    result = orders_import(
        file=io.BytesIO(text.encode(encoding)),
        historical=True,
        dry_run=dry_run,
        on_bad_row=lambda line, message: bad.append((line, message)),
    )
    return result, bad


@pytest.fixture
def paths(monkeypatch):
    """Which way each import staged its file."""
    taken: list[str] = []
    in_database = imports._OrderStaging._stage_in_database

    def database(self, reader):
        staged = in_database(self, reader)
        taken.append("python" if staged is None else "database")
        return staged

    monkeypatch.setattr(imports._OrderStaging, "_stage_in_database", database)
    return taken


def test_a_tills_file_is_parsed_in_the_database(shop, paths):
    # given a file as a till writes it, CRLF line ends and no newline at the end
    text = HEADER.replace("\n", "\r\n") + (
        "A-1,13800138000,S001,2025-05-11 15:46:46,972.96\r\n"
        "A-2,13900139000,S002,2025-05-12T09:30,8\r\n"
        "A-3,13800138000,S001,2024-02-29,0.5"
    )
    # when
    result, bad = run(text)
    # then
    assert paths == ["database"] and bad == [] and (result.rows, result.created) == (3, 3)
    orders = {order.external_id: order for order in Order.objects.all()}
    assert orders["A-1"].amount == Decimal("972.96") and orders["A-3"].amount == Decimal("0.50")
    assert timezone.localtime(orders["A-1"].paid_at).replace(tzinfo=None) == dt.datetime(2025, 5, 11, 15, 46, 46)
    assert timezone.localtime(orders["A-2"].paid_at).replace(tzinfo=None) == dt.datetime(2025, 5, 12, 9, 30)
    assert orders["A-2"].store.code == "S002"


def test_other_spellings_and_bad_rows_keep_their_lines_and_messages(shop, paths):
    # given a file mostly in the tills' spelling, with other spellings, bad cells and a blank row
    text = HEADER + (
        "A-1,13800138000,S001,2025-05-11 15:46:46,972.96\n"  # 2
        "A-2, 139 0013 9000 ,S001,2025/05/12 09:30,¥12.50\n"  # 3: other spellings, good
        ",,,,\n"  # 4: blank, skipped
        "A-3,13800138000,S001,2025-02-29 10:00,10\n"  # 5: no 29 February in 2025
        "A-4,13800138000,S009,2025-03-01 10:00,10\n"  # 6: no such store
        "A-5,13800138000,S001,2025-03-01 10:00,1e309\n"  # 7: not an amount
        "A-6,13800138000,S001,2025-03-01 10:00,0.00\n"  # 8: not positive
        "A-7,13700137000,S001,2025-03-01 10:00,10\n"  # 9: no such member
        "A-8,13800138000,S001,2999-03-01 10:00,10\n"  # 10: the future
        "A-9,13800138000,S001,2025-03-01 24:00,10\n"  # 11: no such hour
        "'=A-10,13800138000,S001,2025-03-01 10:00,10\n"  # 12: the formula guard goes
    )
    # when
    result, bad = run(text, dry_run=True)
    # then the same answer as row by row in Python
    assert paths == ["database"]
    assert [line for line, _message in bad] == [5, 6, 7, 8, 9, 10, 11]
    assert result.rows == 10 and result.error_count == 7  # the blank row is not one
    python_result, python_bad = run_in_python(text)
    assert python_bad == bad and python_result.rows == result.rows


def run_in_python(text: str):
    original = imports._OrderStaging._stage_in_database
    imports._OrderStaging._stage_in_database = lambda self, reader: None
    try:
        return run(text, dry_run=True)
    finally:
        imports._OrderStaging._stage_in_database = original


@pytest.mark.parametrize(
    "text",
    [
        HEADER + 'A-1,13800138000,S001,2025-05-11 15:46:46,"972.96"\nA-2,13800138000,S001,2025-05-12,x\n',
        HEADER + "A-1,13800138000,S001,2025-05-11 15:46:46\nA-2,13800138000,S001,2025-05-12,x\n",
        HEADER + "A-1,13800138000,S001,2025-05-11 15:46:46,10\n\nA-2,13800138000,S001,2025-05-12,x\n",
        HEADER + "A-1,13800138000,S001,2025-05-11 15:46:46,10\nA-2,13800138000,S001,2025-05-12,x,extra\n",
    ],
    ids=["quoted", "short-row", "blank-line", "long-row"],
)
def test_a_file_that_does_not_suit_the_copy_is_read_row_by_row(shop, paths, text):
    # when
    _result, bad = run(text, dry_run=True)
    # then the other way, with the same lines as ever
    assert paths == ["python"]
    assert bad == run_in_python(text)[1] and bad and bad[-1][0] == text.count("\n")


def test_a_gbk_file_with_a_chinese_header_is_parsed_in_the_database(shop, paths):
    text = "订单号,会员手机号,门店编码,支付时间,金额\nA-1,13800138000,S001,2025-05-11 15:46:46,972.96\n"
    result, bad = run(text, encoding="gbk")
    assert paths == ["database"] and bad == [] and result.created == 1 and result.encoding == "gb18030"


def test_a_reimport_through_the_database_changes_nothing(shop, paths):
    text = HEADER + "A-1,13800138000,S001,2025-05-11 15:46:46,972.96\nA-2,13900139000,S001,2025-05-12,10\n"
    run(text)
    result, bad = run(text)
    assert paths == ["database", "database"]
    assert (result.created, result.unchanged, bad) == (0, 2, [])
    assert Order.objects.count() == 2


ID = st.sampled_from(["A-1", "A-2", "B 3", " A-1", "'=x", "x" * 65, "", "订单7"])
MOBILE = st.sampled_from(["13800138000", "13900139000", "+86 138 0013 8000", "1380013800", "23800138000", ""])
STORE = st.sampled_from(["S001", "S002", " S001", "s001", "S009", ""])
PAID = st.sampled_from(
    [
        "2025-05-11 15:46:46",
        "2025-05-11T15:46",
        "2025-05-11",
        "2024-02-29",
        "2025-02-29",
        "2025-04-31 10:00",
        "2025-13-01",
        "2025/05/11 15:46",
        "2025-05-11 15:46:46.250",
        "2025-05-11T15:46:46+08:00",
        "2999-01-01",
        "0999-01-01",
        "2025-05-11 25:00",
        "",
    ]
)
AMOUNT = st.sampled_from(
    ["972.96", "8", "0.5", "0.00", "00.10", "1.234", "9999999999.99", "12345678901", "¥12.50", "1e309", ".5", ""]
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(st.tuples(ID, MOBILE, STORE, PAID, AMOUNT), min_size=1, max_size=12))
def test_the_database_reads_any_file_exactly_as_python_does(shop, rows):
    # given any mix of spellings, good and bad cells, repeated ids
    text = HEADER + "".join(",".join(row) + "\n" for row in rows)
    # when the file is read both ways
    database_result, database_bad = run(text, dry_run=True)
    python_result, python_bad = run_in_python(text)
    # then every count and every bad row's line and message agree
    assert database_bad == python_bad
    assert (database_result.rows, database_result.created, database_result.unchanged) == (
        python_result.rows,
        python_result.created,
        python_result.unchanged,
    )


def replication_role() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SHOW session_replication_role")
        return cursor.fetchone()[0]


def watch_inserts(monkeypatch, attribute: str) -> list[bool]:
    """``attribute`` of the staging after each historical insert, in order."""
    seen: list[bool] = []
    insert = imports._OrderStaging.insert

    def watched(self, run):
        insert(self, run)
        seen.append(getattr(self, attribute))

    monkeypatch.setattr(imports._OrderStaging, "insert", watched)
    return seen


@pytest.fixture
def inserts(monkeypatch):
    """Whether each historical insert went without the foreign keys' row triggers."""
    return watch_inserts(monkeypatch, "without_row_triggers")


def test_the_references_are_checked_once_per_member_and_row_triggers_are_back_on_after(shop, inserts):
    # given a connection that may switch row triggers off (the test database's owner)
    text = HEADER + "A-1,13800138000,S001,2025-05-11 15:46:46,972.96\nA-2,13800138000,S002,2025-05-12,10\n"
    # when
    result, bad = run(text)
    # then the insert went without them, and they are on again for the rest of the transaction
    assert inserts == [True] and result.created == 2 and bad == []
    assert replication_role() == "origin"


def test_without_the_privilege_the_row_triggers_run(shop, inserts, monkeypatch):
    monkeypatch.setattr(imports._OrderStaging, "_row_triggers_off", staticmethod(lambda cursor: False))
    result, bad = run(HEADER + "A-1,13800138000,S001,2025-05-11 15:46:46,972.96\n")
    assert inserts == [False] and result.created == 1 and bad == []
    assert replication_role() == "origin"


def test_a_member_gone_since_the_check_turns_the_row_triggers_back_on(shop):
    # given a checked row whose member is not there
    staging = imports._OrderStaging(batch_size=10, on_rows=None)
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE TEMPORARY TABLE {staging.checked} (member_id bigint, store_id bigint, outcome text)")
        cursor.execute(
            f"INSERT INTO {staging.checked} VALUES (%s, %s, 'new'), (%s, %s, 'new')",
            [shop.members.first().pk, shop.pk, 987654321, shop.pk],
        )
        assert staging._row_triggers_off(cursor)
        # when
        held = staging._references_held(cursor)
    staging.drop()
    # then the foreign keys' own triggers will check the rows
    assert held is False and replication_role() == "origin"


# --- the work tables ------------------------------------------------------------------------


def work_tables() -> list[tuple[str, str]]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT relname, relpersistence FROM pg_class WHERE relname LIKE 'import_order_%%'")
        return cursor.fetchall()


@pytest.mark.parametrize("kind", ["UNLOGGED", "TEMPORARY"])
def test_the_work_tables_are_unlogged_or_temporary_and_gone_after(shop, monkeypatch, kind):
    # given a connection that may create tables (unlogged work tables), or one that may not
    seen: list[str] = []

    def chosen(cursor):
        seen.append(kind)
        return kind

    monkeypatch.setattr(imports._OrderStaging, "_work_table_kind", staticmethod(chosen))
    text = HEADER + (
        "A-1,13800138000,S001,2025-05-11 15:46:46,972.96\n"
        "A-2, 139 0013 9000 ,S001,2025/05/12 09:30,¥12.50\n"  # parsed in Python
        "A-1,13800138000,S001,2025-05-11 15:46:46,972.96\n"  # repeated: unchanged
    )
    # when
    result, bad = run(text)
    # then the same answer either way, and nothing left behind
    assert seen == [kind] and bad == [] and (result.created, result.unchanged) == (2, 1)
    assert work_tables() == []


def test_the_default_work_tables_are_unlogged(shop):
    staging = imports._OrderStaging(batch_size=10, on_rows=None)
    assert staging.kind == "UNLOGGED"  # the test database's owner may create tables
    assert dict(work_tables()) == {staging.staging: "u"}
    staging.drop()
    assert work_tables() == []


def test_repeated_ids_through_the_database_are_compared_with_their_first_row(shop, paths):
    # given ids repeated in a file in the tills' spelling: the same order, and another amount
    text = HEADER + (
        "A-1,13800138000,S001,2025-05-11 15:46:46,972.96\n"  # 2
        "A-2,13900139000,S001,2025-05-12 10:00,10\n"  # 3
        "A-1,13800138000,S001,2025-05-11 15:46:46,972.96\n"  # 4: the same as line 2
        "A-2,13900139000,S001,2025-05-12 10:00,11\n"  # 5: another amount than line 3
        "A-2,13900139000,S002,2025-05-12 10:00,11\n"  # 6: another store's A-2
    )
    # when
    result, bad = run(text, dry_run=True)
    # then
    assert paths == ["database"]
    assert [line for line, _message in bad] == [5] and "amount" in bad[0][1]
    assert (result.created, result.unchanged) == (3, 1)
    assert (bad, result.created) == (run_in_python(text)[1], run_in_python(text)[0].created)


# --- large historical files: the indexes built again ---------------------------------------

ORDER_TABLE = Order._meta.db_table


def order_indexes() -> list[tuple]:
    """Every index and constraint of the orders table, as PostgreSQL would write it again."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexrelid::regclass::text, pg_get_indexdef(indexrelid), indisvalid, indisready, indisunique "
            "FROM pg_index WHERE indrelid = %s::regclass ORDER BY 1",
            [ORDER_TABLE],
        )
        indexes = cursor.fetchall()
        cursor.execute(
            "SELECT conname, pg_get_constraintdef(oid), convalidated FROM pg_constraint "
            "WHERE conrelid = %s::regclass ORDER BY 1",
            [ORDER_TABLE],
        )
        return indexes + cursor.fetchall()


@pytest.fixture
def rebuilds(monkeypatch):
    """Whether each historical insert dropped the orders' indexes and built them again; any
    file of new orders is large enough, and the table is taken for empty (the test database's
    table keeps the pages of other tests' rolled-back orders)."""
    monkeypatch.setattr(imports, "INDEX_REBUILD_MIN_ROWS", 1)
    monkeypatch.setattr(imports._OrderStaging, "_orders_held", staticmethod(lambda: 0))
    return watch_inserts(monkeypatch, "indexes_rebuilt")


FILE = HEADER + (
    "A-1,13800138000,S001,2025-05-11 15:46:46,972.96\n"
    "A-2,13900139000,S002,2025-05-12,10\n"
    "A-3, 139 0013 9000 ,S001,2025/05/12 09:30,¥12.50\n"
)


def test_a_large_file_goes_in_without_the_indexes_which_come_back_as_they_were(shop, rebuilds):
    # given
    before = order_indexes()
    assert len(before) >= 6  # the primary key, four indexes, a unique constraint and the checks
    # when
    result, bad = run(FILE)
    # then the orders are written, and every index and constraint is back, valid
    assert rebuilds == [True] and bad == [] and result.created == 3
    assert order_indexes() == before
    assert sorted(Order.objects.values_list("external_id", "store__code")) == [
        ("A-1", "S001"),
        ("A-2", "S002"),
        ("A-3", "S001"),
    ]
    # and the unique constraint holds again
    order = Order.objects.get(external_id="A-1")
    with pytest.raises(IntegrityError), transaction.atomic():
        Order.objects.create(
            external_id="A-1", member=order.member, store=order.store, paid_at=order.paid_at, amount=Decimal(1)
        )


def test_a_reimport_of_a_large_file_changes_nothing(shop, rebuilds):
    run(FILE)
    result, bad = run(FILE)
    assert (result.created, result.unchanged, bad) == (0, 3, [])
    assert rebuilds == [True] and Order.objects.count() == 3  # nothing new: no insert the second time


def test_a_large_file_with_a_bad_row_writes_nothing_and_keeps_the_indexes(shop, rebuilds):
    before = order_indexes()
    result, bad = run(FILE + "A-4,13700137000,S001,2025-05-12,10\n")  # no such member
    assert [line for line, _message in bad] == [5] and not result.ok
    assert rebuilds == [] and Order.objects.count() == 0 and order_indexes() == before


def test_only_a_file_at_least_as_large_as_the_table_rebuilds(shop, rebuilds, monkeypatch):
    # given a minimum of two rows, and a table of five orders
    monkeypatch.setattr(imports, "INDEX_REBUILD_MIN_ROWS", 2)
    monkeypatch.setattr(imports._OrderStaging, "_orders_held", staticmethod(lambda: Order.objects.count()))
    run(HEADER + "".join(f"B-{n},13800138000,S001,2025-05-1{n} 10:00,10\n" for n in range(5)))
    # when a file of one order (under the minimum) and one of three (fewer than the table's) come
    run(HEADER + "C-1,13800138000,S001,2025-05-11 10:00,10\n")
    run(FILE)
    # then only the first file, of five against none, went in without the indexes
    assert rebuilds == [True, False, False] and Order.objects.count() == 9


def test_the_orders_held_follow_the_tables_size_not_its_statistics(shop):
    # given the estimate now, and an ANALYZE that saw many more orders (rolled back since)
    before = imports._OrderStaging._orders_held()
    with transaction.atomic():
        orders_written(20_000)
        with connection.cursor() as cursor:
            cursor.execute(f"ANALYZE {ORDER_TABLE}")
        transaction.set_rollback(True)
    # when 4,000 orders are written
    held = imports._OrderStaging._orders_held()
    orders_written(4_000)
    # then the estimate grew by about that much (the rolled-back rows' pages count: a bloated
    # table keeps its indexes), whatever the statistics say
    assert held >= before + 10_000
    assert 2_400 <= imports._OrderStaging._orders_held() - held <= 6_400


def orders_written(count: int) -> None:
    member, store = Member.objects.first(), Store.objects.first()
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {ORDER_TABLE} (created_at, updated_at, external_id, member_id, store_id, paid_at, amount, "
            "refunded_amount, status) SELECT now(), now(), 'X-' || i, %s, %s, now(), 10, 0, "
            "'paid' FROM generate_series(1, %s) i",
            [member.pk, store.pk, count],
        )


def test_a_table_another_transaction_reads_keeps_its_indexes(shop, rebuilds, monkeypatch):
    # given another connection reading the orders table, in a transaction still open
    monkeypatch.setattr(imports, "INDEX_REBUILD_LOCK_TIMEOUT_MS", 200)
    params = {
        key: value
        for key, value in connection.get_connection_params().items()
        if key in ("dbname", "user", "password", "host", "port")
    }
    with psycopg.connect(**params) as reader:
        reader.execute(f"SELECT count(*) FROM {ORDER_TABLE}")
        before = order_indexes()
        # when
        result, bad = run(FILE)
        # then the import did not wait for it: the rows went in with the indexes in place
        assert rebuilds == [False] and bad == [] and result.created == 3
        assert order_indexes() == before
        reader.rollback()


@pytest.mark.parametrize(("amount", "outcome"), [("972.96", "unchanged"), ("40.00", "conflict")])
def test_a_till_recording_a_row_of_a_large_file_meanwhile(shop, rebuilds, monkeypatch, amount, outcome):
    # given: after the check, a till records A-1 (the same order, or another amount)
    check = imports._OrderStaging.check

    def check_then_a_till_records(staging):
        counts = check(staging)
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {ORDER_TABLE} (created_at, updated_at, external_id, member_id, store_id, paid_at, "
                "amount, refunded_amount, status) SELECT now(), now(), 'A-1', m.id, %s, %s, %s, 0, 'paid' "
                "FROM members_member m WHERE m.mobile = '13800138000'",
                [shop.pk, dt.datetime(2025, 5, 11, 15, 46, 46, tzinfo=timezone.get_default_timezone()), amount],
            )
        return counts

    monkeypatch.setattr(imports._OrderStaging, "check", check_then_a_till_records)
    before = order_indexes()
    # when
    result, bad = run(FILE)
    # then the unique index would not build again: the rows went in the usual way
    assert rebuilds == [False] and order_indexes() == before
    if outcome == "unchanged":
        assert (result.created, result.unchanged, bad) == (2, 1, []) and Order.objects.count() == 3
    else:
        assert [line for line, _message in bad] == [2] and "amount" in bad[0][1]
