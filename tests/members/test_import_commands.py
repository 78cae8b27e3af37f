"""The ``import_stores``, ``import_members`` and ``import_orders`` commands: what is particular to the command
line and the files it reads. What both import paths share is in ``test_imports.py``."""

import datetime as dt
import io
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from members.csv_import import detect_encoding
from members.events import order_recorded, orders_imported
from members.models import Member, Order, PointsEntry, Store
from members.services import imports
from members.services.imports import members_import, orders_import
from tests.factories import MemberFactory, OrderFactory, StoreFactory

pytestmark = pytest.mark.django_db

SHANGHAI = ZoneInfo("Asia/Shanghai")


def write(tmp_path, text: str, *, name: str = "data.csv", encoding: str = "utf-8"):
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


def run(command: str, path, *args) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command(command, str(path), *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def run_failing(command: str, path, *args) -> tuple[str, str]:
    err = io.StringIO()
    with pytest.raises(CommandError) as failure:
        call_command(command, str(path), *args, stdout=io.StringIO(), stderr=err)
    return str(failure.value), err.getvalue()


def order_rows():
    return list(
        Order.objects.order_by("external_id").values_list(
            "external_id", "member__mobile", "store__code", "paid_at", "amount", "updated_at"
        )
    )


@pytest.fixture
def stores():
    return StoreFactory(code="SH01", name="静安店"), StoreFactory(code="SH02", name="徐汇店")


@pytest.fixture
def members(stores):
    return (
        MemberFactory(mobile="13800138000", home_store=stores[0]),
        MemberFactory(mobile="13900139000", home_store=stores[1]),
    )


# --- Stores ---------------------------------------------------------------------------------


def test_import_stores_creates_new_stores_and_updates_known_ones(tmp_path):
    # given
    StoreFactory(code="SH01", name="旧名字", city="上海")
    path = write(tmp_path, "code,name,city\nSH01,静安店,上海\nBJ01,国贸店,北京\n")

    # when
    out, err = run("import_stores", path)

    # then
    assert "1 created, 0 unchanged, 1 updated" in out
    assert err == ""
    assert list(Store.objects.order_by("code").values_list("code", "name", "city")) == [
        ("BJ01", "国贸店", "北京"),
        ("SH01", "静安店", "上海"),
    ]


def test_import_stores_twice_changes_nothing(tmp_path):
    # given
    path = write(tmp_path, "code,name,city\nSH01,静安店,上海\nBJ01,国贸店,北京\n")
    run("import_stores", path)
    before = list(Store.objects.order_by("code").values_list("code", "name", "city", "updated_at"))

    # when
    out, _ = run("import_stores", path)

    # then
    assert "0 created, 2 unchanged, 0 updated" in out
    assert list(Store.objects.order_by("code").values_list("code", "name", "city", "updated_at")) == before


def test_import_stores_refuses_a_code_repeated_with_another_name(tmp_path):
    # given
    path = write(tmp_path, "code,name,city\nSH01,静安店,上海\nSH01,别的店,上海\n")

    # when
    message, err = run_failing("import_stores", path)

    # then
    assert "line 3: code: Store SH01 appears on line 2 with a different name or city." in err
    assert "1 bad row" in message
    assert not Store.objects.exists()


# --- Members --------------------------------------------------------------------------------


def test_import_members_creates_members_with_normalised_mobiles_and_referral_codes(tmp_path, stores):
    # given
    path = write(
        tmp_path,
        "mobile,name,registered_at,store_code\n"
        "+86 138-0013-8000,王芳,2023-05-01 10:30:00,SH01\n"
        "13900139000,李雷,2023-06-02T08:00:00+00:00,\n",
    )

    # when
    out, _ = run("import_members", path)

    # then
    assert "2 created, 0 unchanged" in out
    wang = Member.objects.get(mobile="13800138000")
    assert (wang.name, wang.home_store, wang.channel) == ("王芳", stores[0], Member.Channel.IMPORT)
    assert wang.registered_at == dt.datetime(2023, 5, 1, 10, 30, tzinfo=SHANGHAI)
    li = Member.objects.get(mobile="13900139000")
    assert li.home_store is None
    assert li.registered_at == dt.datetime(2023, 6, 2, 8, 0, tzinfo=dt.UTC)
    codes = set(Member.objects.values_list("referral_code", flat=True))
    assert len(codes) == 2
    assert all(len(code) == 8 for code in codes)


def test_import_members_reads_the_optional_columns(tmp_path, stores):
    # given
    path = write(
        tmp_path,
        "mobile,name,registered_at,store_code,gender,birthday,channel,openid\n"
        "13800138000,王芳,2023-05-01,SH01,女,1990-05-17,mini_program,oABC123\n",
    )

    # when
    run("import_members", path)

    # then
    member = Member.objects.get()
    assert (member.gender, member.birthday, member.channel, member.openid) == (
        Member.Gender.FEMALE,
        dt.date(1990, 5, 17),
        Member.Channel.MINI_PROGRAM,
        "oABC123",
    )


def test_import_members_leaves_known_mobiles_and_repeated_rows_alone(tmp_path, stores):
    # given
    existing = MemberFactory(mobile="13800138000", name="原名")
    path = write(
        tmp_path,
        "mobile,name,registered_at,store_code\n"
        "13800138000,新名,2023-05-01,SH01\n"
        "13700137000,张三,2023-05-01,SH01\n"
        "137-0013-7000,张三,2023-05-01,SH01\n",
    )

    # when
    out, _ = run("import_members", path)

    # then
    assert "1 created, 2 unchanged" in out
    existing.refresh_from_db()
    assert existing.name == "原名"
    assert Member.objects.count() == 2


def test_import_members_twice_changes_nothing(tmp_path, stores):
    # given
    path = write(tmp_path, "mobile,name,registered_at,store_code\n13800138000,王芳,2023-05-01,SH01\n")
    run("import_members", path)
    before = list(Member.objects.values_list("mobile", "name", "referral_code", "registered_at", "updated_at"))

    # when
    out, _ = run("import_members", path)

    # then
    assert "0 created, 1 unchanged" in out
    assert list(Member.objects.values_list("mobile", "name", "referral_code", "registered_at", "updated_at")) == before


def test_import_members_reports_every_bad_row_and_writes_nothing(tmp_path, stores):
    # given
    path = write(
        tmp_path,
        "mobile,name,registered_at,store_code\n"
        "13800138000,好人,2023-05-01,SH01\n"
        "12345,坏号码,2023-05-01,SH01\n"
        "13900139000,无店,2023-05-01,NOPE\n"
        "13700137000,坏日期,2023-13-45,SH01\n",
    )

    # when
    message, err = run_failing("import_members", path)

    # then
    assert "line 3: mobile: “12345” is not a valid mainland China mobile number." in err
    assert "line 4: store_code: No store has the code “NOPE”." in err
    assert "line 5: registered_at:" in err
    assert "line 2" not in err
    assert "3 bad row" in message
    assert not Member.objects.exists()


def test_import_members_draws_again_referral_codes_that_collide(tmp_path, stores, monkeypatch):
    # given a generator whose first draws collide with an existing member and with each other
    MemberFactory(referral_code="AAAAAAAA")
    draws = iter(["AAAAAAAA", "BBBBBBBB", "BBBBBBBB", "CCCCCCCC", "DDDDDDDD", "EEEEEEEE"])
    monkeypatch.setattr(imports, "new_referral_code", lambda: next(draws))
    path = write(
        tmp_path,
        "mobile,name,registered_at,store_code\n"
        "13800138000,甲,2023-05-01,SH01\n13700137000,乙,2023-05-01,SH01\n13600136000,丙,2023-05-01,SH01\n",
    )

    # when
    run("import_members", path, "--historical")

    # then
    codes = list(Member.objects.values_list("referral_code", flat=True))
    assert len(codes) == len(set(codes)) == 4


def test_import_members_refuses_an_openid_of_another_member(tmp_path, stores):
    # given
    MemberFactory(mobile="13900139000", openid="oTAKEN")
    path = write(
        tmp_path,
        "mobile,name,registered_at,store_code,openid\n13800138000,王芳,2023-05-01,SH01,oTAKEN\n",
    )

    # when
    _, err = run_failing("import_members", path)

    # then
    assert "line 2: openid: This openid belongs to the member with mobile 13900139000." in err
    assert not Member.objects.filter(mobile="13800138000").exists()


# --- Orders ---------------------------------------------------------------------------------


def test_historical_import_orders_inserts_orders_and_publishes_one_batch_event(
    tmp_path, members, django_capture_on_commit_callbacks
):
    # given
    wang, li = members
    imported, recorded = [], []
    orders_imported.subscribe(collect := lambda **payload: imported.append(payload))
    order_recorded.subscribe(collect_one := lambda **payload: recorded.append(payload))
    path = write(
        tmp_path,
        "order_id,member_mobile,store_code,paid_at,amount\n"
        "A-1,13800138000,SH01,2024-03-01 12:00:00,38.50\n"
        "A-2,+86 139 0013 9000,SH02,2024-03-02T09:15:00+08:00,120\n",
    )

    # when
    try:
        with django_capture_on_commit_callbacks(execute=True):
            out, _ = run("import_orders", path, "--historical")
    finally:
        orders_imported.unsubscribe(collect)
        order_recorded.unsubscribe(collect_one)

    # then
    assert "2 created, 0 unchanged" in out
    first, second = Order.objects.order_by("external_id")
    assert (first.member, first.store.code, first.amount) == (wang, "SH01", Decimal("38.50"))
    assert first.paid_at == dt.datetime(2024, 3, 1, 12, 0, tzinfo=SHANGHAI)
    assert (second.member, second.amount, second.status) == (li, Decimal("120.00"), Order.Status.PAID)
    assert imported == [{"count": 2, "member_ids_from": min(wang.pk, li.pk), "member_ids_to": max(wang.pk, li.pk)}]
    assert recorded == []


def test_import_orders_reports_every_bad_row_with_its_line_and_writes_nothing(tmp_path, members):
    # given
    path = write(
        tmp_path,
        "order_id,member_mobile,store_code,paid_at,amount\n"
        "OK-1,13800138000,SH01,2024-03-01 12:00,10.00\n"  # 2: fine
        "B-3,12345,SH01,2024-03-01 12:00,10.00\n"  # 3
        "B-4,13800138000,NOPE,2024-03-01 12:00,10.00\n"  # 4
        "B-5,13800138000,SH01,2024-03-01 12:00,0\n"  # 5
        "B-6,13800138000,SH01,2024-03-01 12:00,-3\n"  # 6
        "B-7,13800138000,SH01,2024-03-01 12:00,1.005\n"  # 7
        "B-8,13800138000,SH01,yesterday,10.00\n"  # 8
        "B-9,13700137000,SH01,2024-03-01 12:00,10.00\n",  # 9: nobody has this mobile
    )

    # when
    message, err = run_failing("import_orders", path)

    # then
    assert "line 3: member_mobile: “12345” is not a valid mainland China mobile number." in err
    assert "line 4: store_code: No store has the code “NOPE”." in err
    assert "line 5: amount: An amount must be greater than zero." in err
    assert "line 6: amount: An amount must be greater than zero." in err
    assert "line 7: amount: An amount has at most two decimal places." in err
    assert "line 8: paid_at: “yesterday” is not an ISO 8601 date and time" in err
    assert "line 9: member_mobile: No member has the mobile number 13700137000." in err
    assert "line 2:" not in err
    assert "7 bad row(s)" in message
    assert not Order.objects.exists()


def test_import_orders_twice_changes_nothing(tmp_path, members):
    # given
    path = write(
        tmp_path,
        "order_id,member_mobile,store_code,paid_at,amount\n"
        "A-1,13800138000,SH01,2024-03-01 12:00:00,38.50\n"
        "A-2,13900139000,SH02,2024-03-02 09:15:00,120.00\n",
    )
    run("import_orders", path)
    before = order_rows()

    # when
    out, _ = run("import_orders", path)

    # then
    assert "0 created, 2 unchanged" in out
    assert order_rows() == before


def test_import_orders_refuses_an_order_id_recorded_with_other_content(tmp_path, members):
    # given
    OrderFactory(external_id="A-1", member=members[0], amount=Decimal("38.50"))
    path = write(
        tmp_path,
        "order_id,member_mobile,store_code,paid_at,amount\nA-1,13800138000,SH01,2024-03-01 12:00:00,40.00\n",
    )

    # when
    _, err = run_failing("import_orders", path)

    # then
    assert "line 2: order_id: Order A-1 was already recorded with a different paid_at, amount." in err
    assert Order.objects.get().amount == Decimal("38.50")


def test_import_orders_accepts_a_row_repeated_with_the_same_content(tmp_path, members):
    # given
    row = "A-1,13800138000,SH01,2024-03-01 12:00:00,38.50\n"
    path = write(tmp_path, "order_id,member_mobile,store_code,paid_at,amount\n" + row + row)

    # when
    out, _ = run("import_orders", path)

    # then
    assert "1 created, 1 unchanged" in out
    assert Order.objects.count() == 1


def test_import_orders_finds_repeated_rows_across_batches(tmp_path, members):
    # given a file whose repeated order ids fall in different batches of two rows
    path = write(
        tmp_path,
        "order_id,member_mobile,store_code,paid_at,amount\n"
        "A-1,13800138000,SH01,2024-03-01 12:00:00,38.50\n"
        "A-2,13800138000,SH01,2024-03-01 13:00:00,10.00\n"
        "A-1,13800138000,SH01,2024-03-01T04:00:00Z,38.5\n"  # the same order, written differently
        "A-2,13800138000,SH01,2024-03-01 13:00:00,11.00\n",
    )

    # when
    with path.open("rb") as file:
        result = orders_import(file=file, batch_size=2, historical=True)

    # then
    assert (result.created, result.unchanged, result.error_count) == (2, 1, 1)
    assert result.errors == ["line 5: order_id: Order A-2 was already recorded with a different amount."]
    assert not Order.objects.exists()


def test_import_orders_records_each_order_through_the_service_by_default(
    tmp_path, members, django_capture_on_commit_callbacks
):
    # given
    wang, li = members
    imported, recorded = [], []
    orders_imported.subscribe(collect := lambda **payload: imported.append(payload))
    order_recorded.subscribe(collect_one := lambda **payload: recorded.append(payload))
    path = write(
        tmp_path,
        "order_id,member_mobile,store_code,paid_at,amount\n"
        "A-1,13800138000,SH01,2024-03-01 12:00:00,38.50\n"
        "A-2,13900139000,SH02,2024-03-02 09:15:00,120\n",
    )

    # when
    try:
        with django_capture_on_commit_callbacks(execute=True):
            out, _ = run("import_orders", path)
    finally:
        orders_imported.unsubscribe(collect)
        order_recorded.unsubscribe(collect_one)

    # then
    assert "2 created, 0 unchanged" in out
    assert "158 points earned" in out
    assert sorted(payload["member_id"] for payload in recorded) == sorted([wang.pk, li.pk])
    assert imported == []
    assert PointsEntry.objects.filter(order__external_id="A-2").get().points == 120


def test_a_loyalty_import_goes_on_checking_after_a_bad_row_without_writing(tmp_path, members):
    # given a bad row, then rows that repeat and contradict an earlier one, in batches of two
    path = write(
        tmp_path,
        "order_id,member_mobile,store_code,paid_at,amount\n"
        "A-1,13800138000,SH01,2024-03-01 12:00:00,38.50\n"
        "A-2,13800138000,NOPE,2024-03-01 13:00:00,10.00\n"
        "A-3,13800138000,SH01,2024-03-01 14:00:00,10.00\n"
        "A-3,13800138000,SH01,2024-03-01 14:00:00,10.00\n"
        "A-3,13800138000,SH01,2024-03-01 14:00:00,12.00\n",
    )

    # when
    result = orders_import(file=path, batch_size=2)

    # then
    assert result.errors == [
        "line 3: store_code: No store has the code “NOPE”.",
        "line 6: order_id: Order A-3 was already recorded with a different amount.",
    ]
    assert (result.created, result.unchanged) == (2, 1)
    assert not Order.objects.exists()
    assert not PointsEntry.objects.exists()


def test_a_dry_run_reports_what_would_change_and_writes_nothing(tmp_path, members):
    # given
    path = write(
        tmp_path,
        "order_id,member_mobile,store_code,paid_at,amount\nA-1,13800138000,SH01,2024-03-01 12:00:00,38.50\n",
    )

    # when
    out, _ = run("import_orders", path, "--dry-run")

    # then
    assert out.startswith("Dry run, nothing written.")
    assert "1 created" in out
    assert "38 points earned" in out
    assert not Order.objects.exists()
    assert not PointsEntry.objects.exists()


# --- Files ----------------------------------------------------------------------------------


def test_import_reads_gbk_files_with_chinese_names(tmp_path, stores):
    # given
    path = write(
        tmp_path, "mobile,name,registered_at,store_code\n13800138000,欧阳娜娜,2023-05-01,SH01\n", encoding="gbk"
    )

    # when
    run("import_members", path)

    # then
    assert Member.objects.get().name == "欧阳娜娜"


def test_import_reads_utf8_files_with_a_byte_order_mark(tmp_path):
    # given
    path = write(tmp_path, "code,name,city\r\nSH01,静安店,上海\r\n", encoding="utf-8-sig")

    # when
    run("import_stores", path)

    # then
    assert list(Store.objects.values_list("code", "name", "city")) == [("SH01", "静安店", "上海")]


def test_import_ignores_extra_columns_in_any_order(tmp_path, members):
    # given
    path = write(
        tmp_path,
        "Amount,note,ORDER_ID,paid_at,store_code,member_mobile,cashier\n"
        "38.50,生日,A-1,2024-03-01 12:00:00,SH01,13800138000,小王\n",
    )

    # when
    run("import_orders", path)

    # then
    assert list(Order.objects.values_list("external_id", "amount")) == [("A-1", Decimal("38.50"))]


def test_import_reads_chinese_column_names_and_spreadsheet_cells(tmp_path, members):
    # given: Chinese headers, a formula-guarded order id as our exports write it, a currency sign
    path = write(
        tmp_path,
        "订单号,手机号,门店编码,支付时间,金额\n'-7,13800138000,SH01,2024/03/01 12:00,￥38.50\n",
        encoding="gbk",
    )

    # when
    run("import_orders", path)

    # then
    order = Order.objects.get()
    assert (order.external_id, order.amount) == ("-7", Decimal("38.50"))
    assert order.paid_at == dt.datetime(2024, 3, 1, 12, 0, tzinfo=SHANGHAI)


def test_import_members_reads_labels_in_either_language(tmp_path, stores):
    # given
    path = write(
        tmp_path,
        "手机号,姓名,性别,注册渠道\n13800138000,王芳,Female,小程序\n13700137000,李雷,男,In store\n",
    )

    # when
    run("import_members", path)

    # then
    assert dict(Member.objects.values_list("mobile", "gender")) == {
        "13800138000": Member.Gender.FEMALE,
        "13700137000": Member.Gender.MALE,
    }
    assert dict(Member.objects.values_list("mobile", "channel")) == {
        "13800138000": Member.Channel.MINI_PROGRAM,
        "13700137000": Member.Channel.STORE,
    }


def test_import_refuses_a_file_missing_a_required_column(tmp_path, members):
    # given
    path = write(tmp_path, "order_id,member_mobile,paid_at,amount\nA-1,13800138000,2024-03-01 12:00:00,38.50\n")

    # when
    message, _ = run_failing("import_orders", path)

    # then
    assert "Missing required column(s): store_code." in message
    assert not Order.objects.exists()


def test_import_reports_the_physical_line_after_a_multi_line_field(tmp_path, stores):
    # given a quoted name spanning lines 2–3, a blank line 4, then a bad row on line 5
    path = write(
        tmp_path,
        'mobile,name,registered_at,store_code\n13800138000,"王\n芳",2023-05-01,SH01\n\n1,李雷,2023-05-01,SH01\n',
    )

    # when
    _, err = run_failing("import_members", path)

    # then
    assert err.startswith("line 5: mobile:")


def test_import_shows_a_progress_bar_on_request(tmp_path):
    # given
    path = write(tmp_path, "code,name,city\nSH01,静安店,上海\n")

    # when
    _, err = run("import_stores", path, "--progress")

    # then
    assert "100%" in err


def test_import_refuses_a_file_that_does_not_exist(tmp_path):
    message, _ = run_failing("import_stores", tmp_path / "missing.csv")
    assert "Cannot open" in message


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"\xef\xbb\xbfcode,name\n", "utf-8-sig"),
        ("code,name\nSH01,静安店\n".encode(), "utf-8"),
        ("code,name\nSH01,静安店\n".encode("gbk"), "gb18030"),
        (b"code\n" + "店".encode() * 40_000 + "店".encode("gbk"), "gb18030"),  # GBK only far into the file
    ],
)
def test_detect_encoding_streams_the_whole_file_and_rewinds(data, expected):
    # given
    file = io.BytesIO(data)

    # when
    encoding = detect_encoding(file, chunk_size=1000)

    # then
    assert encoding == expected
    assert file.tell() == 0


@pytest.mark.parametrize(
    ("command", "header", "row"),
    [
        ("import_orders", "order_id,member_mobile,store_code,paid_at,amount", "A-{n},13800138000,SH01,2024-03-01,1"),
        ("import_members", "mobile,name", "138{n:08d},Wang"),
    ],
)
@pytest.mark.parametrize("historical", [False, True])
def test_bytes_that_are_not_text_far_into_a_file_are_refused_with_their_line(
    tmp_path, members, command, header, row, historical
):
    # given a file of valid UTF-8 but for two bytes on line 2,997: the text is decoded ahead of the
    # rows read, so the decoder meets them before the CSV reader reaches their line
    lines = [line.encode() for line in (header, *(row.format(n=n) for n in range(3_000)))]
    lines[2_996] += b"\xff\xfe"
    path = tmp_path / "data.csv"
    path.write_bytes(b"\n".join(lines) + b"\n")

    # when
    message, _ = run_failing(command, path, *(["--historical"] if historical else []))

    # then
    assert message == "Line 2997: the file is neither UTF-8 nor GBK text."
    assert not Order.objects.exists() and Member.objects.count() == len(members)


def test_members_import_keeps_a_bounded_number_of_messages_but_counts_all(tmp_path, stores, monkeypatch):
    # given
    monkeypatch.setattr(imports, "MAX_KEPT_ERRORS", 2)
    reported = []
    path = write(tmp_path, "mobile,name,registered_at,store_code\n" + "1,x,2023-05-01,SH01\n" * 5)

    # when
    result = members_import(file=path, on_error=reported.append)

    # then
    assert (result.error_count, len(result.errors), len(reported)) == (5, 2, 5)
    assert reported[-1].startswith("line 6: mobile:")


# --- Orders: the set-based path (issue 22) and per-store ids (issue 20) ----------------------


def test_import_orders_takes_an_order_id_per_store(tmp_path, members):
    # given store SH02 recorded its own order 1001 before
    li = members[1]
    OrderFactory(external_id="1001", member=li, store=li.home_store, amount=Decimal("99.00"))
    path = write(
        tmp_path,
        "order_id,member_mobile,store_code,paid_at,amount\n"
        "1001,13800138000,SH01,2024-03-01 12:00:00,38.50\n"  # SH01's 1001: another order
        "1001,13900139000,SH02,2024-03-02 09:00:00,99.00\n",  # SH02's, with other content: a conflict
    )

    # when
    _, err = run_failing("import_orders", path)
    fixed = write(
        tmp_path,
        "order_id,member_mobile,store_code,paid_at,amount\n1001,13800138000,SH01,2024-03-01 12:00:00,38.50\n",
        name="fixed.csv",
    )
    out, _ = run("import_orders", fixed)
    again, _ = run("import_orders", fixed)

    # then: the conflict compares with SH02's order only; SH01's 1001 is new, then unchanged
    assert err.strip() == "line 3: order_id: Order 1001 was already recorded with a different paid_at."
    assert "1 created, 0 unchanged" in out
    assert "0 created, 1 unchanged" in again
    assert sorted(Order.objects.values_list("store__code", "external_id", "amount")) == [
        ("SH01", "1001", Decimal("38.50")),
        ("SH02", "1001", Decimal("99.00")),
    ]


@pytest.mark.parametrize(
    ("amount", "message"),
    [
        ("1e309", "The amount is too large."),
        ("-1e309", "An amount must be greater than zero."),
        ("1" * 40, "The amount is too large."),
        ("0." + "1" * 40, "An amount has at most two decimal places."),
        ("nan", "An amount must be a finite number."),
        ("inf", "An amount must be a finite number."),
        ("12345678901", "The amount is too large."),
    ],
)
def test_import_orders_reports_an_impossible_amount_on_its_line(tmp_path, members, amount, message):
    # given
    path = write(
        tmp_path,
        "order_id,member_mobile,store_code,paid_at,amount\n"
        "A-1,13800138000,SH01,2024-03-01 12:00:00,38.50\n"
        f"A-2,13800138000,SH01,2024-03-01 12:00:00,{amount}\n",
    )

    # when
    result = orders_import(file=path, historical=True)

    # then
    assert result.errors == [f"line 3: amount: {message}"]
    assert not Order.objects.exists()


def test_import_orders_reports_bad_rows_of_every_kind_in_line_order(tmp_path, members):
    # given: a conflict, an unknown member and cells that do not parse, interleaved
    OrderFactory(external_id="OLD", member=members[0], store=members[0].home_store, amount=Decimal("1.00"))
    path = write(
        tmp_path,
        "order_id,member_mobile,store_code,paid_at,amount\n"
        "OLD,13800138000,SH01,2024-03-01 12:00:00,2.00\n"  # 2: conflict with the recorded order
        "A-1,13700137000,SH01,2024-03-01 12:00:00,1.00\n"  # 3: nobody has this mobile
        "A-2,13800138000,SH01,2024-02-30 12:00,1.00\n"  # 4: no such day
        ",13800138000,SH01,2024-03-01 12:00,abc\n"  # 5: two problems of one row
        "A-3,13800138000,SH01,2024-03-01 12:00,1.00\n",  # 6: fine
    )

    # when
    result = orders_import(file=path, historical=True)

    # then
    assert [error.split(":")[0] + ":" + error.split(":")[1] for error in result.errors] == [
        "line 2: order_id",
        "line 3: member_mobile",
        "line 4: paid_at",
        "line 5: order_id",
    ]
    assert result.errors[3].startswith("line 5: order_id: This value is required.; amount: ")
    assert (result.created, result.error_count) == (1, 4)
    assert list(Order.objects.values_list("external_id", flat=True)) == ["OLD"]


def test_import_orders_compares_rows_in_any_spelling_with_the_recorded_order(tmp_path, members):
    # given an order recorded over the API, and the same order in a file in other spellings
    wang = members[0]
    OrderFactory(
        external_id="A-1",
        member=wang,
        store=wang.home_store,
        paid_at=dt.datetime(2024, 3, 1, 12, 0, tzinfo=SHANGHAI),
        amount=Decimal("38.50"),
    )
    path = write(
        tmp_path,
        "order_id,member_mobile,store_code,paid_at,amount\n"
        "A-1,+86 138-0013-8000,SH01,2024-03-01T04:00:00Z,￥38.5\n"
        "A-1,13800138000,SH01,2024/03/01 12:00,38.50\n",
        encoding="gbk",
    )

    # when
    result = orders_import(file=path, historical=True)

    # then
    assert (result.created, result.unchanged, result.errors) == (0, 2, [])


def test_import_orders_leaves_no_staging_tables_behind(tmp_path, members):
    # given
    path = write(
        tmp_path, "order_id,member_mobile,store_code,paid_at,amount\nA-1,13800138000,SH01,2024-03-01 12:00,1.00\n"
    )

    # when: a dry run, a refused file and an import, in one transaction
    orders_import(file=path, dry_run=True)
    orders_import(file=write(tmp_path, path.read_text().replace("SH01", "NOPE"), name="bad.csv"))
    result = orders_import(file=path, historical=True)

    # then
    assert result.created == 1
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_class WHERE relname LIKE 'import_order_%%'")
        assert cursor.fetchone() == (0,)


@pytest.mark.parametrize(("amount", "outcome"), [("38.50", "unchanged"), ("40.00", "conflict")])
def test_an_order_recorded_by_a_till_between_check_and_insert(tmp_path, members, monkeypatch, amount, outcome):
    # given: while the file is checked, a till records A-1 (the same order, or another amount)
    wang = members[0]
    check = imports._OrderStaging.check

    def check_then_a_till_records(staging):
        counts = check(staging)
        OrderFactory(
            external_id="A-1",
            member=wang,
            store=wang.home_store,
            paid_at=dt.datetime(2024, 3, 1, 12, 0, tzinfo=SHANGHAI),
            amount=Decimal(amount),
        )
        return counts

    monkeypatch.setattr(imports._OrderStaging, "check", check_then_a_till_records)
    path = write(
        tmp_path,
        "order_id,member_mobile,store_code,paid_at,amount\n"
        "A-1,13800138000,SH01,2024-03-01 12:00:00,38.50\n"
        "A-2,13800138000,SH01,2024-03-01 13:00:00,10.00\n",
    )

    # when
    result = orders_import(file=path, historical=True)

    # then
    if outcome == "unchanged":
        assert (result.created, result.unchanged, result.errors) == (1, 1, [])
        assert Order.objects.count() == 2
    else:
        assert result.errors == ["line 2: order_id: Order A-1 was already recorded with a different amount."]
        assert not Order.objects.filter(external_id="A-2").exists()  # the file is not kept
