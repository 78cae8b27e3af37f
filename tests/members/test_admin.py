"""The admin for stores, members and orders, and its CSV import and export, as staff use it."""

import csv
import datetime as dt
import io
from decimal import Decimal

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Permission
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone, translation

from members.events import order_recorded
from members.models import Member, Order, Store
from members.resources import MEMBER_COLUMNS
from tests.factories import MemberFactory, OrderFactory, RefundFactory, StoreFactory

pytestmark = pytest.mark.django_db

SHANGHAI = dt.timezone(dt.timedelta(hours=8))


@pytest.fixture(autouse=True)
def _uploads_in_tmp(settings, tmp_path):
    """Files uploaded for import are kept under ``VAR_DIR/imports`` until confirmed: here, a temporary one."""
    settings.VAR_DIR = tmp_path / "var"


def changelist(model: str) -> str:
    return reverse(f"admin:members_{model}_changelist")


def import_preview(
    client, model: str, text: str, *, name: str = "upload.csv", encoding: str = "utf-8", historical: bool = False
):
    """Upload a file on the import page: the check, which writes nothing. It runs in the worker
    (eagerly here), and the upload leads to the job's page, which shows its result."""
    upload = SimpleUploadedFile(name, text.encode(encoding), content_type="text/csv")
    data = {"import_file": upload} | ({"historical": "on"} if historical else {})
    return client.post(reverse(f"admin:members_{model}_import"), data, follow=True)


def import_confirm(client, model: str, preview, *, follow: bool = False):
    return client.post(
        reverse(f"admin:members_{model}_import"),
        {**preview.context["confirm_form"].initial, "confirm": "1"},
        follow=follow,
    )


def import_file(client, model: str, text: str):
    preview = import_preview(client, model, text)
    assert preview.status_code == 200
    assert preview.context["confirm_form"] is not None, preview.context["result"].errors
    return import_confirm(client, model, preview)


def export_members(client) -> str:
    data = {"format": "0", "resource": "0"} | {f"memberresource_{name}": "on" for name in MEMBER_COLUMNS}
    response = client.post(reverse("admin:members_member_export"), data)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    return response.content


@pytest.fixture
def recorded_orders(monkeypatch):
    """Payloads of ``order_recorded`` (only our handler listens during the test)."""
    payloads: list[dict] = []
    monkeypatch.setattr(order_recorded, "_handlers", [lambda **payload: payloads.append(payload)])
    return payloads


# --- pages --------------------------------------------------------------------------------


def test_every_store_member_and_order_page_renders_for_staff(staff_client):
    # given
    order = OrderFactory()
    RefundFactory(order=order)
    member, store = order.member, order.store
    urls = [
        changelist("store"),
        reverse("admin:members_store_add"),
        reverse("admin:members_store_change", args=[store.pk]),
        changelist("member"),
        reverse("admin:members_member_add"),
        reverse("admin:members_member_change", args=[member.pk]),
        reverse("admin:members_member_import"),
        reverse("admin:members_member_export"),
        changelist("order"),
        reverse("admin:members_order_change", args=[order.pk]),
        reverse("admin:members_order_import"),
        reverse("admin:members_order_export"),
    ]
    # when
    statuses = {url: staff_client.get(url).status_code for url in urls}
    # then
    assert statuses == dict.fromkeys(urls, 200)


def test_orders_cannot_be_added_changed_or_deleted_by_hand(staff_client):
    # given
    order = OrderFactory(amount=Decimal("38.00"))
    RefundFactory(order=order, external_id="REF-1")
    change_url = reverse("admin:members_order_change", args=[order.pk])
    # when
    add = staff_client.get(reverse("admin:members_order_add"))
    page = staff_client.get(change_url)
    post = staff_client.post(change_url, {"amount": "1.00"})
    delete = staff_client.get(reverse("admin:members_order_delete", args=[order.pk]))
    # then
    assert add.status_code == 403
    assert delete.status_code == 403
    assert post.status_code == 403
    assert 'name="amount"' not in page.content.decode()
    assert "REF-1" in page.content.decode()
    order.refresh_from_db()
    assert order.amount == Decimal("38.00")


def test_import_and_export_need_the_model_permissions(client, django_user_model):
    # given: a staff user who may only view members
    user = django_user_model.objects.create_user("clerk", password="pw-clerk-1", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_member"))
    client.force_login(user)
    # when
    member_import = client.get(reverse("admin:members_member_import"))
    member_export = client.get(reverse("admin:members_member_export"))
    order_export = client.get(reverse("admin:members_order_export"))
    # then
    assert (member_import.status_code, member_export.status_code, order_export.status_code) == (403, 200, 403)


# --- search -------------------------------------------------------------------------------


@pytest.mark.parametrize("term", ["+86 138-0013-8000", "１３８００１３８０００", "8613800138000"])
def test_member_search_finds_a_mobile_number_in_any_spelling(staff_client, term):
    # given
    wanted = MemberFactory(mobile="13800138000", name="张三")
    MemberFactory(mobile="13800138001", name="李四")
    # when
    response = staff_client.get(changelist("member"), {"q": term})
    # then
    assert list(response.context["cl"].result_list) == [wanted]


def test_member_search_by_first_digits_or_name(staff_client):
    # given
    zhang = MemberFactory(mobile="13800138000", name="张三")
    li = MemberFactory(mobile="13800238001", name="李四")
    MemberFactory(mobile="13900138000", name="王五")
    # when
    by_prefix = staff_client.get(changelist("member"), {"q": "138 00"})
    by_name = staff_client.get(changelist("member"), {"q": "李"})
    # then
    assert set(by_prefix.context["cl"].result_list) == {zhang, li}
    assert list(by_name.context["cl"].result_list) == [li]


def test_order_search_by_order_id_or_member_mobile(staff_client):
    # given
    member = MemberFactory(mobile="13800138000")
    theirs = OrderFactory(member=member, external_id="POS-1")
    other = OrderFactory(external_id="POS-2")
    # when
    by_mobile = staff_client.get(changelist("order"), {"q": "+86 138 0013 8000"})
    by_id = staff_client.get(changelist("order"), {"q": "POS-2"})
    # then
    assert list(by_mobile.context["cl"].result_list) == [theirs]
    assert list(by_id.context["cl"].result_list) == [other]


# --- member page --------------------------------------------------------------------------


def test_member_page_shows_recent_orders_totals_and_a_link_to_all_of_them(staff_client):
    # given: 25 orders, the first one refunded in part, and someone else's order
    member = MemberFactory()
    store = StoreFactory(code="SH01", name="静安店")
    start = dt.datetime(2024, 1, 1, 12, tzinfo=SHANGHAI)
    orders = [
        OrderFactory(
            member=member, store=store, external_id=f"M-{i:02d}", paid_at=start + dt.timedelta(days=i), amount="10.00"
        )
        for i in range(25)
    ]
    Order.objects.filter(pk=orders[0].pk).update(
        refunded_amount=Decimal("4.00"), status=Order.Status.PARTIALLY_REFUNDED
    )
    OrderFactory(external_id="NOT-MINE")
    # when
    response = staff_client.get(reverse("admin:members_member_change", args=[member.pk]))
    # then
    page = response.content.decode()
    shown = [order.external_id for order in response.context["recent_orders"]]
    assert shown == [f"M-{i:02d}" for i in range(24, 4, -1)]
    assert "M-24" in page and "M-05" in page and "M-04" not in page and "NOT-MINE" not in page
    assert "静安店" in page
    summary = response.context["order_summary"]
    assert (summary.count, summary.total_paid, summary.total_refunded) == (25, Decimal("250.00"), Decimal("4.00"))
    assert '<td class="total-paid">250.00</td>' in page
    assert '<td class="net-paid">246.00</td>' in page
    assert "2024-01-01 12:00" in page and "2024-01-25 12:00" in page
    assert "all 25 orders →" in page
    all_orders = staff_client.get(response.context["all_orders_url"])
    assert all_orders.status_code == 200
    assert {order.external_id for order in all_orders.context["cl"].result_list} == {o.external_id for o in orders}


def test_member_page_of_a_member_without_orders_says_so(staff_client):
    member = MemberFactory()
    response = staff_client.get(reverse("admin:members_member_change", args=[member.pk]))
    assert "No orders yet." in response.content.decode()


def _member_form(**overrides) -> dict:
    data = {
        "mobile": "+86 138-0013-8000",
        "name": "张三",
        "gender": Member.Gender.FEMALE,
        "birthday": "",
        "registered_at_0": "2024-03-01",
        "registered_at_1": "10:00:00",
        "channel": Member.Channel.STORE,
        "home_store": "",
        "tier": "",
        "referrer": "",
    }
    return data | overrides


def test_adding_a_member_normalises_the_mobile_and_registers_them(staff_client):
    # when
    response = staff_client.post(reverse("admin:members_member_add"), _member_form())
    # then
    assert response.status_code == 302
    member = Member.objects.get()
    assert member.mobile == "13800138000"
    assert member.referral_code
    assert member.registered_at == dt.datetime(2024, 3, 1, 10, tzinfo=SHANGHAI)


def test_a_mobile_number_already_taken_in_another_spelling_is_a_field_error(staff_client):
    # given
    MemberFactory(mobile="13800138000")
    other = MemberFactory(mobile="13900139000")
    # when
    added = staff_client.post(reverse("admin:members_member_add"), _member_form(mobile="8613800138000"))
    changed = staff_client.post(
        reverse("admin:members_member_change", args=[other.pk]), _member_form(mobile="１３８００１３８０００")
    )
    # then
    for response in (added, changed):
        assert response.status_code == 200
        assert response.context["adminform"].form.errors["mobile"] == [
            "A member with this mobile number already exists."
        ]
    assert Member.objects.count() == 2
    other.refresh_from_db()
    assert other.mobile == "13900139000"


# --- query counts -------------------------------------------------------------------------


def _queries_for(client, url: str) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert client.get(url).status_code == 200
    return len(queries)


@pytest.mark.parametrize(
    ("model", "make"),
    [
        ("store", lambda n: StoreFactory.create_batch(n)),
        ("member", lambda n: MemberFactory.create_batch(n)),
        ("order", lambda n: OrderFactory.create_batch(n)),
    ],
)
def test_changelist_queries_do_not_grow_with_rows(staff_client, django_assert_max_num_queries, model, make):
    # given
    url = changelist(model)
    staff_client.get(url)  # session and content types warm up
    make(5)
    with django_assert_max_num_queries(10):
        few = _queries_for(staff_client, url)
    # when
    make(45)
    with django_assert_max_num_queries(10):
        many = _queries_for(staff_client, url)
    # then
    assert many == few


# --- member import ------------------------------------------------------------------------

MEMBERS_CSV = """mobile,name,gender,birthday,registered_at,channel,store_code,ignored
+86 138-0013-8000,张三,female,1990-05-01,2023-01-02 10:00:00,store,S001,x
１３９００１３９０００,李四,,,2023-02-03T09:30:00+08:00,,S001,y
"""


def test_members_import_checks_the_file_then_imports_it_on_confirm(staff_client):
    # given
    store = StoreFactory(code="S001")
    # when
    preview = import_preview(staff_client, "member", MEMBERS_CSV)
    created_by_preview = Member.objects.count()
    confirmed = import_confirm(staff_client, "member", preview)
    # then
    assert preview.status_code == 200
    assert [(row.line, row.outcome, row.cells[0]) for row in preview.context["result"].shown] == [
        (2, "new", "13800138000"),
        (3, "new", "13900139000"),
    ]
    assert '<td class="outcome">New</td>' in preview.content.decode()
    assert created_by_preview == 0
    assert confirmed.status_code == 302
    zhang = Member.objects.get(mobile="13800138000")
    assert (zhang.name, zhang.gender, zhang.birthday, zhang.home_store) == (
        "张三",
        Member.Gender.FEMALE,
        dt.date(1990, 5, 1),
        store,
    )
    assert zhang.registered_at == dt.datetime(2023, 1, 2, 10, tzinfo=SHANGHAI)
    li = Member.objects.get(mobile="13900139000")
    assert (li.gender, li.channel, li.birthday) == (Member.Gender.UNKNOWN, Member.Channel.IMPORT, None)
    assert li.registered_at == dt.datetime(2023, 2, 3, 9, 30, tzinfo=SHANGHAI)
    assert LogEntry.objects.get().change_message.startswith("Import finished: upload.csv. 2 created")


def test_members_import_reads_a_gbk_file_and_choice_labels(staff_client):
    # given: what Excel saves on a Chinese Windows, with a label instead of a value
    StoreFactory(code="S001")
    text = "mobile,name,gender,registered_at,store_code\n13800138000,王芳,女,2023-01-02,S001\n"
    # when
    preview = import_preview(staff_client, "member", text, encoding="gbk")
    import_confirm(staff_client, "member", preview)
    # then
    member = Member.objects.get()
    assert (member.name, member.gender) == ("王芳", Member.Gender.FEMALE)


def test_a_members_file_with_a_bad_row_imports_nothing_and_shows_each_bad_row(staff_client):
    # given
    StoreFactory(code="S001")
    text = (
        "mobile,name,registered_at,store_code\n"
        "13800138000,好的,2023-01-01,S001\n"
        "12345,坏号码,2023-01-01,S001\n"
        "13700137000,坏门店,2023-01-01,NOPE\n"
        "13600136000,坏日期,2023-13-45,S001\n"
    )
    # when
    preview = import_preview(staff_client, "member", text)
    # then
    assert Member.objects.count() == 0
    assert preview.context["confirm_form"] is None
    errors = preview.context["result"].errors
    assert errors[0] == "line 3: mobile: “12345” is not a valid mainland China mobile number."
    assert errors[1] == "line 4: store_code: No store has the code “NOPE”."
    assert errors[2].startswith("line 5: registered_at:")
    page = preview.content.decode()
    assert "line 4: store_code: No store has the code “NOPE”." in page
    assert "Nothing was imported." in page


def test_a_file_without_the_required_columns_is_a_form_error(staff_client):
    # when
    preview = import_preview(staff_client, "order", "order_id,amount\nA-1,10.00\n")
    # then
    assert (
        "Missing required column(s): member_mobile, store_code, paid_at."
        in preview.context["form"].errors["import_file"][0]
    )
    assert preview.context["result"] is None


def test_the_confirm_step_only_imports_a_file_this_session_uploaded(staff_client, client, django_user_model):
    # given: a checked file, and another staff member who learns its token
    StoreFactory(code="S001")
    preview = import_preview(staff_client, "member", MEMBERS_CSV)
    other = django_user_model.objects.create_superuser("other", "other@example.com", "pw-other-1")
    client.force_login(other)
    # when
    stolen = import_confirm(client, "member", preview)
    # then
    assert stolen.status_code == 302
    assert Member.objects.count() == 0


def test_a_historical_members_import_is_chosen_on_the_page_and_kept_to_the_confirm(staff_client):
    # given
    StoreFactory(code="S001")
    # when
    preview = import_preview(staff_client, "member", MEMBERS_CSV, historical=True)
    confirmed = import_confirm(staff_client, "member", preview)
    # then
    assert "Historical import: no loyalty effects" in preview.content.decode()
    assert preview.context["job"].historical is True  # the mode is kept with the job to the confirm
    assert confirmed.status_code == 302
    assert Member.objects.count() == 2


def test_the_historical_choice_is_worded_in_chinese(staff_client):
    # when
    with translation.override("zh-hans"):
        page = staff_client.get(reverse("admin:members_order_import"), HTTP_ACCEPT_LANGUAGE="zh-hans", follow=True)
    # then
    assert "历史导入：不产生积分、等级等会员权益" in page.content.decode()


# --- order import -------------------------------------------------------------------------

ORDERS_CSV = """order_id,member_mobile,store_code,paid_at,amount
A-1,+86 138-0013-8000,S001,2024-05-01 12:00:00,38.00
A-2,13800138000,S001,2024-05-02T12:00:00+08:00,12.5
"""


@pytest.fixture
def buyer():
    StoreFactory(code="S001")
    return MemberFactory(mobile="13800138000")


def test_orders_import_records_orders_through_the_service(
    staff_client, buyer, recorded_orders, django_capture_on_commit_callbacks
):
    # when
    with django_capture_on_commit_callbacks(execute=True):
        preview = import_preview(staff_client, "order", ORDERS_CSV)
    published_by_preview = list(recorded_orders)
    with django_capture_on_commit_callbacks(execute=True):
        confirmed = import_confirm(staff_client, "order", preview)
    # then
    assert published_by_preview == []
    assert "these orders earn 50 points" in preview.content.decode()
    assert confirmed.status_code == 302
    orders = {order.external_id: order for order in Order.objects.all()}
    assert set(orders) == {"A-1", "A-2"}
    assert orders["A-1"].paid_at == dt.datetime(2024, 5, 1, 12, tzinfo=SHANGHAI)
    assert orders["A-2"].amount == Decimal("12.50")
    assert all(order.member == buyer for order in orders.values())
    assert sorted(p["order_id"] for p in recorded_orders) == sorted(o.pk for o in orders.values())


def test_orders_file_sent_again_is_unchanged_and_a_conflicting_resend_is_refused(staff_client, buyer):
    # given
    import_file(staff_client, "order", ORDERS_CSV)
    # when
    again = import_preview(staff_client, "order", ORDERS_CSV)
    conflicting = import_preview(staff_client, "order", ORDERS_CSV.replace("38.00", "40.00"))
    # then
    assert [row.outcome for row in again.context["result"].shown] == ["unchanged", "unchanged"]
    assert conflicting.context["confirm_form"] is None
    assert conflicting.context["result"].errors == [
        "line 2: order_id: Order A-1 was already recorded with a different amount."
    ]
    assert Order.objects.get(external_id="A-1").amount == Decimal("38.00")
    assert Order.objects.count() == 2


def test_orders_with_an_unknown_store_or_member_are_bad_rows(staff_client, buyer):
    # given
    text = (
        "order_id,member_mobile,store_code,paid_at,amount\n"
        "B-1,13800138000,S001,2024-05-01 12:00,10.00\n"
        "B-2,13999999999,S001,2024-05-01 12:00,10.00\n"
        "B-3,13800138000,NOPE,2024-05-01 12:00,10.00\n"
        "B-4,13800138000,S001,yesterday,10.001\n"
    )
    # when
    preview = import_preview(staff_client, "order", text)
    # then
    errors = preview.context["result"].errors
    assert errors[0] == "line 3: member_mobile: No member has the mobile number 13999999999."
    assert errors[1] == "line 4: store_code: No store has the code “NOPE”."
    assert errors[2].startswith("line 5: paid_at: “yesterday” is not an ISO 8601 date and time")
    assert errors[2].endswith("amount: An amount has at most two decimal places.")
    assert preview.context["confirm_form"] is None
    assert Order.objects.count() == 0


def test_a_conflict_arising_between_preview_and_confirm_imports_nothing(staff_client, buyer):
    # given: a valid preview, then another channel records A-2 with a different amount
    preview = import_preview(staff_client, "order", ORDERS_CSV)
    OrderFactory(external_id="A-2", member=buyer, store=Store.objects.get(code="S001"), amount=Decimal("99.00"))
    # when
    confirmed = import_confirm(staff_client, "order", preview, follow=True)
    # then
    assert confirmed.status_code == 200
    assert confirmed.context["job"].status == "failed"
    assert "Nothing was imported" in confirmed.content.decode()
    assert confirmed.context["result"].errors == [
        "line 3: order_id: Order A-2 was already recorded with a different paid_at, amount."
    ]
    assert list(Order.objects.values_list("external_id", flat=True)) == ["A-2"]


def test_stores_import_in_the_admin_updates_known_codes(staff_client):
    # given
    StoreFactory(code="SH01", name="旧名字", city="上海")
    # when
    import_file(staff_client, "store", "code,name,city\nSH01,静安店,上海\nBJ01,国贸店,北京\n")
    # then
    assert list(Store.objects.order_by("code").values_list("code", "name")) == [("BJ01", "国贸店"), ("SH01", "静安店")]


# --- export -------------------------------------------------------------------------------


def test_member_export_neutralises_spreadsheet_formulae_and_reimports_unchanged(staff_client):
    # given
    names = ['=HYPERLINK("http://evil.example","点我")', "+1+1", "-2+3", "@SUM(A1)", "普通"]
    for i, name in enumerate(names):
        MemberFactory(mobile=f"1380013800{i}", name=name, registered_at=timezone.now() - dt.timedelta(days=i))
    # when
    content = export_members(staff_client)
    # then
    assert content.startswith("\ufeff".encode())
    assert b"'=HYPERLINK(" in content
    rows = list(csv.DictReader(io.StringIO(content.decode("utf-8-sig"))))
    assert list(rows[0]) == [*MEMBER_COLUMNS, "tags"]  # the tags go out too, and are not imported
    exported = {row["mobile"]: row["name"] for row in rows}
    assert exported["13800138000"] == "'" + names[0]
    assert all(not cell.startswith(("=", "+", "-", "@")) for row in rows for cell in row.values())
    preview = import_preview(staff_client, "member", content.decode("utf-8-sig"))
    assert {row.outcome for row in preview.context["result"].shown} == {"unchanged"}


def test_order_export_has_the_import_columns_and_the_refund_state(staff_client, buyer):
    # given
    order = OrderFactory(external_id="-7", member=buyer, amount=Decimal("38.00"))
    Order.objects.filter(pk=order.pk).update(refunded_amount=Decimal("8.00"), status=Order.Status.PARTIALLY_REFUNDED)
    fields = ("external_id", "member", "store", "paid_at", "amount", "refunded_amount", "status")
    data = {"format": "0", "resource": "0"} | {f"orderresource_{name}": "on" for name in fields}
    # when
    response = staff_client.post(reverse("admin:members_order_export"), data)
    # then
    [row] = csv.DictReader(io.StringIO(response.content.decode("utf-8-sig")))
    assert row["order_id"] == "'-7"
    assert (row["member_mobile"], row["amount"], row["refunded_amount"], row["status"]) == (
        "13800138000",
        "38.00",
        "8.00",
        "partially_refunded",
    )


def test_the_member_page_shows_points_and_stored_value_with_links_to_the_ledgers(staff_client):
    # given
    from members.models import PointsEntry
    from members.services.points import points_grant
    from members.services.wallet import wallet_spend, wallet_top_up

    member = MemberFactory()
    points_grant(member=member, points=300, kind=PointsEntry.Kind.CAMPAIGN_REWARD, reason="gift", idempotency_key="g1")
    wallet_top_up(member=member, amount_paid="100.00", bonus="10.00", idempotency_key="t1")
    wallet_spend(member=member, amount="11.00", idempotency_key="s1")
    # when
    response = staff_client.get(reverse("admin:members_member_change", args=[member.pk]))
    # then: a proportional spend took 10.00 from principal and 1.00 from bonus
    page = response.content.decode()
    assert '<td class="points-balance">300</td>' in page
    assert '<td class="wallet-principal">90.00</td>' in page
    assert '<td class="wallet-bonus">9.00</td>' in page
    for url in (response.context["points_entries_url"], response.context["wallet_entries_url"]):
        ledger = staff_client.get(url)
        assert ledger.status_code == 200
        assert len(ledger.context["cl"].result_list) >= 1
