"""One import path: the same file gives the same members, tiers and points whether it is uploaded
in the admin or given to the ``import_*`` commands, in loyalty mode (as over the API) and in
historical mode (no loyalty effects)."""

import datetime as dt
import io
from decimal import Decimal

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse
from django.utils import timezone

from members.events import order_recorded, orders_imported
from members.models import Member, Order, PointsEntry, TierChange
from members.services.orders import order_record
from segmentation.tasks import segment_recompute_task
from tests.factories import MemberFactory, StoreFactory

pytestmark = pytest.mark.django_db

PATHS = ("command", "admin")


@pytest.fixture(autouse=True)
def _uploads_in_tmp(settings, tmp_path):
    """Files uploaded for import are kept under ``VAR_DIR/imports`` until confirmed: here, a temporary one."""
    settings.VAR_DIR = tmp_path / "var"


@pytest.fixture
def store():
    return StoreFactory(code="S001")


def ago(**delta) -> str:
    return (timezone.localtime() - dt.timedelta(**delta)).replace(microsecond=0).isoformat(sep=" ")


MEMBERS = "mobile,name,registered_at,store_code\n13800138000,王芳,2024-05-01 10:00,S001\n+86 139 0013 9000,李雷,,S001\n"


def orders_file() -> str:
    return (
        "order_id,member_mobile,store_code,paid_at,amount\n"
        f"A-1,13800138000,S001,{ago(days=2)},300.00\n"
        f"A-2,138-0013-8000,S001,{ago(days=1)},250.00\n"  # ¥550 in 30 days: silver, then points ×1.5
        f"A-3,13900139000,S001,{ago(hours=3)},38.50\n"
    )


def import_through(path: str, client, kind: str, text: str, *, historical: bool = False, tmp_path=None) -> str:
    """Import ``text`` as a user of ``path`` would; what they are told. A refused file raises
    ``Refused`` with the bad rows."""
    if path == "command":
        file = tmp_path / f"{kind}.csv"
        file.write_text(text, encoding="utf-8")
        out, err = io.StringIO(), io.StringIO()
        try:
            call_command(f"import_{kind}", str(file), *(["--historical"] if historical else []), stdout=out, stderr=err)
        except CommandError:
            raise Refused(err.getvalue().splitlines()) from None
        return out.getvalue()
    url = reverse(f"admin:members_{'member' if kind == 'members' else 'order'}_import")
    data = {"import_file": SimpleUploadedFile(f"{kind}.csv", text.encode(), content_type="text/csv")}
    if historical:
        data["historical"] = "on"
    check = client.post(url, data, follow=True)  # the check runs in the worker (eagerly here)
    assert check.status_code == 200
    if check.context["confirm_form"] is None:
        raise Refused(check.context["result"].errors)
    confirmed = client.post(url, {**check.context["confirm_form"].initial, "confirm": "1"}, follow=True)
    assert confirmed.context["job"].status == "succeeded", confirmed.context["result"].errors
    return confirmed.context["summary"]


class Refused(Exception):
    def __init__(self, errors):
        super().__init__(errors)
        self.errors = list(errors)


def loyalty_state() -> dict:
    """mobile → (name, tier code, points balance, tier change reasons), and the orders."""
    members = {
        member.mobile: (
            member.name,
            member.tier.code if member.tier else None,
            getattr(getattr(member, "points_account", None), "balance", 0),
            sorted(TierChange.objects.filter(member=member).values_list("reason", flat=True)),
        )
        for member in Member.objects.select_related("tier", "points_account")
    }
    orders = sorted(Order.objects.values_list("external_id", "member__mobile", "amount"))
    return {"members": members, "orders": orders}


@pytest.mark.parametrize("path", PATHS)
def test_loyalty_import_earns_what_the_same_orders_earn_over_the_api(
    path, staff_client, ladder, store, tmp_path, django_capture_on_commit_callbacks
):
    # when
    with django_capture_on_commit_callbacks(execute=True):
        import_through(path, staff_client, "members", MEMBERS, tmp_path=tmp_path)
    with django_capture_on_commit_callbacks(execute=True):
        told = import_through(path, staff_client, "orders", orders_file(), tmp_path=tmp_path)

    # then: registered with the entry tier; A-2 upgrades 王芳 and earns at silver's ×1.5
    assert loyalty_state() == {
        "members": {
            "13800138000": ("王芳", "silver", 300 + 375, ["initial", "upgrade_on_order"]),
            "13900139000": ("李雷", "basic", 38, ["initial"]),
        },
        "orders": [
            ("A-1", "13800138000", Decimal("300.00")),
            ("A-2", "13800138000", Decimal("250.00")),
            ("A-3", "13900139000", Decimal("38.50")),
        ],
    }
    assert "3 created" in told
    assert "713 points earned, 1 tier changes" in told
    assert Member.objects.get(mobile="13900139000").channel == Member.Channel.IMPORT


def test_an_imported_order_earns_exactly_what_order_record_gives_the_same_order(
    staff_client, ladder, store, tmp_path, django_capture_on_commit_callbacks
):
    # given two members with the same history; one's orders will come over the API
    for mobile in ("13800138000", "13700137000"):
        MemberFactory(mobile=mobile, home_store=store, tier=ladder["entry"])
    rows = [(ago(days=3), "120.00"), (ago(days=2), "400.00"), (ago(days=1), "99.99")]
    via_api = Member.objects.get(mobile="13700137000")
    # when
    with django_capture_on_commit_callbacks(execute=True):
        for index, (paid_at, amount) in enumerate(rows):
            order_record(
                external_id=f"API-{index}",
                member=via_api,
                store=store,
                paid_at=dt.datetime.fromisoformat(paid_at),
                amount=amount,
            )
    text = "order_id,member_mobile,store_code,paid_at,amount\n" + "".join(
        f"F-{index},13800138000,S001,{paid_at},{amount}\n" for index, (paid_at, amount) in enumerate(rows)
    )
    with django_capture_on_commit_callbacks(execute=True):
        import_through("command", staff_client, "orders", text, tmp_path=tmp_path)
    # then
    earned = {
        mobile: sorted(PointsEntry.objects.filter(member__mobile=mobile).values_list("kind", "points"))
        for mobile in ("13800138000", "13700137000")
    }
    assert earned["13800138000"] == earned["13700137000"]
    assert Member.objects.get(mobile="13800138000").tier == Member.objects.get(mobile="13700137000").tier


@pytest.mark.parametrize("path", PATHS)
def test_historical_import_has_no_loyalty_effects_but_recomputes_segments(
    path, staff_client, ladder, store, tmp_path, monkeypatch, django_capture_on_commit_callbacks
):
    # given
    recomputes, recorded, imported = [], [], []
    monkeypatch.setattr(segment_recompute_task, "apply_async", lambda *a, **k: recomputes.append(k))
    monkeypatch.setattr(order_recorded, "_handlers", [lambda **payload: recorded.append(payload)])
    monkeypatch.setattr(
        orders_imported, "_handlers", [*orders_imported.handlers, lambda **payload: imported.append(payload)]
    )

    # when
    with django_capture_on_commit_callbacks(execute=True):
        import_through(path, staff_client, "members", MEMBERS, historical=True, tmp_path=tmp_path)
    with django_capture_on_commit_callbacks(execute=True):
        told = import_through(path, staff_client, "orders", orders_file(), historical=True, tmp_path=tmp_path)

    # then: the entry tier for the new members (they had no tier), no upgrade, no points
    assert loyalty_state()["members"] == {
        "13800138000": ("王芳", "basic", 0, ["initial"]),
        "13900139000": ("李雷", "basic", 0, ["initial"]),
    }
    assert not PointsEntry.objects.exists()
    assert Order.objects.count() == 3
    assert recorded == []
    wang, li = (Member.objects.get(mobile=mobile).pk for mobile in ("13800138000", "13900139000"))
    assert imported == [{"count": 3, "member_ids_from": min(wang, li), "member_ids_to": max(wang, li)}]
    assert len(recomputes) == 1
    assert "Historical import: no loyalty effects" in told


@pytest.mark.parametrize("path", PATHS)
def test_historical_orders_leave_existing_tiers_and_points_alone(path, staff_client, ladder, store, tmp_path):
    # given a member on the entry tier whose imported history would qualify for silver
    member = MemberFactory(mobile="13800138000", home_store=store, tier=ladder["entry"])
    # when
    import_through(
        path,
        staff_client,
        "orders",
        orders_file().replace("13900139000", "13800138000"),
        historical=True,
        tmp_path=tmp_path,
    )
    # then
    member.refresh_from_db()
    assert member.tier == ladder["entry"]
    assert not TierChange.objects.exists()
    assert not PointsEntry.objects.exists()


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("historical", [False, True])
def test_importing_the_same_files_again_changes_nothing(path, historical, staff_client, ladder, store, tmp_path):
    # given
    orders = orders_file()
    import_through(path, staff_client, "members", MEMBERS, historical=historical, tmp_path=tmp_path)
    import_through(path, staff_client, "orders", orders, historical=historical, tmp_path=tmp_path)
    before = (
        list(Member.objects.order_by("pk").values()),
        list(Order.objects.order_by("pk").values()),
        list(PointsEntry.objects.order_by("pk").values()),
        list(TierChange.objects.order_by("pk").values()),
    )
    # when: again, and again in the other mode
    told = import_through(path, staff_client, "members", MEMBERS, historical=historical, tmp_path=tmp_path)
    told += import_through(path, staff_client, "orders", orders, historical=historical, tmp_path=tmp_path)
    import_through(path, staff_client, "orders", orders, historical=not historical, tmp_path=tmp_path)
    # then
    assert "0 created, 2 unchanged" in told
    assert "0 created, 3 unchanged" in told
    after = (
        list(Member.objects.order_by("pk").values()),
        list(Order.objects.order_by("pk").values()),
        list(PointsEntry.objects.order_by("pk").values()),
        list(TierChange.objects.order_by("pk").values()),
    )
    assert after == before


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("historical", [False, True])
def test_a_time_in_the_future_is_refused_with_its_line(path, historical, staff_client, store, tmp_path):
    # given
    MemberFactory(mobile="13800138000", home_store=store)
    soon, later = timezone.localtime() + dt.timedelta(minutes=5), timezone.localtime() + dt.timedelta(hours=1)
    orders = (
        "order_id,member_mobile,store_code,paid_at,amount\n"
        f"OK-1,13800138000,S001,{soon.isoformat()},10.00\n"  # a till's clock a little fast
        f"F-1,13800138000,S001,{later.isoformat()},10.00\n"
    )
    members = f"mobile,registered_at\n13700137000,{later.isoformat()}\n"
    # when
    with pytest.raises(Refused) as orders_refused:
        import_through(path, staff_client, "orders", orders, historical=historical, tmp_path=tmp_path)
    with pytest.raises(Refused) as members_refused:
        import_through(path, staff_client, "members", members, historical=historical, tmp_path=tmp_path)
    # then
    assert orders_refused.value.errors == ["line 3: paid_at: This time is in the future."]
    assert members_refused.value.errors == ["line 2: registered_at: This time is in the future."]
    assert not Order.objects.exists()
    assert Member.objects.count() == 1


@pytest.mark.parametrize("path", PATHS)
def test_an_existing_member_is_left_as_they_are(path, staff_client, ladder, store, tmp_path):
    # given
    member = MemberFactory(mobile="13800138000", name="原名", gender=Member.Gender.MALE, tier=ladder["entry"])
    before = Member.objects.filter(pk=member.pk).values().get()
    # when
    told = import_through(
        path, staff_client, "members", "mobile,name,gender\n8613800138000,新名,female\n", tmp_path=tmp_path
    )
    # then
    assert "0 created, 1 unchanged" in told
    assert Member.objects.filter(pk=member.pk).values().get() == before


@pytest.mark.parametrize("path", PATHS)
def test_a_bad_row_in_loyalty_mode_writes_nothing_and_earns_nothing(
    path, staff_client, ladder, store, tmp_path, django_capture_on_commit_callbacks
):
    # given
    MemberFactory(mobile="13800138000", home_store=store, tier=ladder["entry"])
    text = orders_file().replace("13900139000", "13999999999")
    # when
    with django_capture_on_commit_callbacks(execute=True), pytest.raises(Refused) as refused:
        import_through(path, staff_client, "orders", text, tmp_path=tmp_path)
    # then
    assert refused.value.errors == ["line 4: member_mobile: No member has the mobile number 13999999999."]
    assert not Order.objects.exists()
    assert not PointsEntry.objects.exists()
    assert not TierChange.objects.exists()
